//! How products live in a store, whichever backend (SKU unique, indexed by
//! category), plus validation and sample data.

use api::product::v1::Product;
use prost_types::Timestamp;
use resource_store::{
    Resource,
    mask::UpdateMask,
    store::Schema,
    validate::{self, Violations},
};

pub const RESOURCE_TYPE: &str = "product.v1.Product";

/// [`Schema`] of the product table: ids `prd_…`, SKU unique (exact match),
/// secondary index by category so a filtered list is a range scan.
#[derive(Debug)]
pub struct Products;

impl Schema for Products {
    type Record = Product;
    const ID_PREFIX: &'static str = "prd";
    const RESOURCE_TYPE: &'static str = RESOURCE_TYPE;

    fn id(record: &Product) -> &str {
        &record.id
    }
    fn set_id(record: &mut Product, id: String) {
        record.id = id;
    }
    fn set_create_time(record: &mut Product, time: Timestamp) {
        record.create_time = Some(time);
    }
    fn set_update_time(record: &mut Product, time: Timestamp) {
        record.update_time = Some(time);
    }
    fn etag(record: &Product) -> &str {
        &record.etag
    }
    fn set_etag(record: &mut Product, etag: String) {
        record.etag = etag;
    }
    fn unique_keys(record: &Product) -> Vec<(&'static str, String)> {
        vec![("product.sku", record.sku.clone())]
    }
    fn group(record: &Product) -> Option<&str> {
        Some(&record.category)
    }
}

impl Resource for Products {
    const FIELD: &'static str = "product";
    const UPDATABLE: &'static [&'static str] = &[
        "name",
        "sku",
        "description",
        "price_minor_units",
        "currency_code",
        "stock_quantity",
        "category",
    ];

    fn normalize(product: &mut Product) {
        product.name = product.name.trim().to_owned();
        product.sku = product.sku.trim().to_owned();
        product.category = product.category.trim().to_owned();
    }

    fn validate(product: &Product) -> Violations {
        let mut v = Violations::new();
        v.check("product.name", validate::name(&product.name));
        v.check("product.sku", validate::required(&product.sku));
        v.check(
            "product.price_minor_units",
            validate::non_negative(product.price_minor_units),
        );
        v.check(
            "product.currency_code",
            validate::currency_code(&product.currency_code),
        );
        v.check(
            "product.stock_quantity",
            validate::non_negative(product.stock_quantity.into()),
        );
        v
    }

    fn apply(current: &mut Product, patch: &Product, mask: &UpdateMask) {
        if mask.includes("name", !patch.name.is_empty()) {
            current.name.clone_from(&patch.name);
        }
        if mask.includes("sku", !patch.sku.is_empty()) {
            current.sku.clone_from(&patch.sku);
        }
        if mask.includes("description", !patch.description.is_empty()) {
            current.description.clone_from(&patch.description);
        }
        if mask.includes("price_minor_units", patch.price_minor_units != 0) {
            current.price_minor_units = patch.price_minor_units;
        }
        if mask.includes("currency_code", !patch.currency_code.is_empty()) {
            current.currency_code.clone_from(&patch.currency_code);
        }
        if mask.includes("stock_quantity", patch.stock_quantity != 0) {
            current.stock_quantity = patch.stock_quantity;
        }
        if mask.includes("category", !patch.category.is_empty()) {
            current.category.clone_from(&patch.category);
        }
    }
}

struct Sample(
    &'static str,
    &'static str,
    &'static str,
    i64,
    i32,
    &'static str,
);

const SAMPLES: &[Sample] = &[
    Sample(
        "Mechanical Keyboard",
        "KB-MX-001",
        "Tenkeyless, brown switches",
        8999,
        42,
        "electronics",
    ),
    Sample(
        "USB-C Hub",
        "HUB-C7-002",
        "7 ports, 100 W passthrough",
        3499,
        120,
        "electronics",
    ),
    Sample(
        "Noise-Cancelling Headphones",
        "HP-NC-003",
        "Over-ear, 30 h battery",
        19900,
        15,
        "electronics",
    ),
    Sample(
        "The Rust Programming Language",
        "BK-RUST-001",
        "2nd edition, paperback",
        3995,
        60,
        "books",
    ),
    Sample(
        "Designing Data-Intensive Applications",
        "BK-DDIA-002",
        "Paperback",
        4499,
        33,
        "books",
    ),
    Sample(
        "Site Reliability Engineering",
        "BK-SRE-003",
        "Paperback",
        3850,
        0,
        "books",
    ),
    Sample(
        "Pour-Over Coffee Kettle",
        "KT-PO-001",
        "1 l, gooseneck, stainless steel",
        4599,
        25,
        "kitchen",
    ),
    Sample(
        "Cast Iron Skillet",
        "KT-CI-002",
        "26 cm, pre-seasoned",
        2999,
        48,
        "kitchen",
    ),
];

fn product(s: &Sample) -> Product {
    Product {
        name: s.0.into(),
        sku: s.1.into(),
        description: s.2.into(),
        price_minor_units: s.3,
        currency_code: "USD".into(),
        stock_quantity: s.4,
        category: s.5.into(),
        ..Product::default()
    }
}

/// The sample products a fresh server starts with (8 in 3 categories).
pub fn samples() -> Vec<Product> {
    SAMPLES.iter().map(product).collect()
}

const ADJECTIVES: &[&str] = &[
    "Compact", "Deluxe", "Eco", "Pro", "Classic", "Smart", "Travel", "Ultra",
];
const NOUNS: &[(&str, &str)] = &[
    ("Desk Lamp", "home"),
    ("Backpack", "outdoor"),
    ("Water Bottle", "outdoor"),
    ("Notebook", "office"),
    ("Monitor Stand", "office"),
    ("Chef's Knife", "kitchen"),
    ("Bluetooth Speaker", "electronics"),
    ("Throw Blanket", "home"),
];
const CURRENCIES: &[&str] = &["USD", "EUR", "GBP"];

/// `n` generated products with unique SKUs (for benchmarks).
pub fn synthetic(n: usize) -> impl Iterator<Item = Product> {
    (0..n).map(|i| {
        let adjective = ADJECTIVES[i % ADJECTIVES.len()];
        let (noun, category) = NOUNS[(i / ADJECTIVES.len()) % NOUNS.len()];
        let price = 499 + i64::try_from(i % 20_000).unwrap_or(0) * 7;
        Product {
            name: format!("{adjective} {noun}"),
            sku: format!("SYN-{i:08}"),
            description: format!("{adjective} {} for everyday use", noun.to_lowercase()),
            price_minor_units: price,
            currency_code: CURRENCIES[i % CURRENCIES.len()].into(),
            stock_quantity: i32::try_from(i % 500).unwrap_or(0),
            category: category.into(),
            ..Product::default()
        }
    })
}

#[cfg(test)]
mod tests {
    use postgres_store::StoreArgs;
    use prost_types::FieldMask;
    use resource_store::{
        Crud, SeedArgs,
        crud::{CrudError, OUTPUT_ONLY},
        paging::PageTokens,
    };

    use super::*;

    async fn seeded(seed: SeedArgs) -> Crud<Products> {
        let flags = StoreArgs {
            seed,
            ..StoreArgs::default()
        };
        let store = crate::open_store(&flags).await.expect("in-memory store");
        Crud::new(store, PageTokens::new("test"))
    }

    fn mask(paths: &[&str]) -> UpdateMask {
        let m = FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        UpdateMask::parse(Some(&m), Products::UPDATABLE, OUTPUT_ONLY).expect("valid mask")
    }

    #[tokio::test]
    async fn samples_and_synthetic_records_are_valid_and_unique() {
        let crud = seeded(SeedArgs {
            empty: false,
            synthetic_records: 1000,
        })
        .await;
        assert_eq!(crud.store().len().await, Ok(1008));
        for p in samples()
            .iter()
            .chain(synthetic(1000).collect::<Vec<_>>().iter())
        {
            assert!(Products::validate(p).is_empty(), "{p:?}");
        }
        let categories: std::collections::BTreeSet<_> =
            samples().into_iter().map(|p| p.category).collect();
        assert_eq!(categories.len(), 3);
        let empty = seeded(SeedArgs {
            empty: true,
            synthetic_records: 0,
        })
        .await;
        assert_eq!(empty.store().len().await, Ok(0));
    }

    #[test]
    fn validation_reports_field_paths() {
        let bad = Product {
            price_minor_units: -1,
            currency_code: "usd".into(),
            stock_quantity: -5,
            ..Product::default()
        };
        assert_eq!(
            Products::validate(&bad).fields(),
            [
                "product.name",
                "product.sku",
                "product.price_minor_units",
                "product.currency_code",
                "product.stock_quantity"
            ]
        );
    }

    #[test]
    fn update_mask_can_zero_numbers_and_clear_category() {
        let mut current = product(&SAMPLES[0]);
        let patch = Product {
            name: "ignored".into(),
            ..Product::default()
        };
        Products::apply(&mut current, &patch, &mask(&["stock_quantity", "category"]));
        assert_eq!(current.stock_quantity, 0);
        assert_eq!(current.category, "");
        assert_eq!(current.name, SAMPLES[0].0);

        let mut current = product(&SAMPLES[0]);
        Products::apply(&mut current, &patch, &UpdateMask::Implicit);
        assert_eq!(current.name, "ignored");
        assert_eq!(
            current.stock_quantity, SAMPLES[0].4,
            "zero means unset without a mask"
        );
    }

    #[tokio::test]
    async fn sku_uniqueness_on_update_and_category_index_follows() {
        let crud = seeded(SeedArgs::default()).await;
        let first = crud.list(1, "", None).await.expect("list").0[0].clone();
        let patch = Product {
            id: first.id.clone(),
            sku: SAMPLES[1].1.into(),
            ..Product::default()
        };
        let err = crud.update(Some(patch), None).await.expect_err("taken");
        assert!(
            matches!(
                err,
                CrudError::AlreadyExists {
                    resource_type: RESOURCE_TYPE,
                    field: "product.sku",
                    ..
                }
            ),
            "{err:?}"
        );

        let patch = Product {
            id: first.id.clone(),
            category: "garden".into(),
            ..Product::default()
        };
        crud.update(Some(patch), None).await.expect("moved");
        let count = async |category| {
            crud.list(10, "", Some(category))
                .await
                .expect("list")
                .0
                .len()
        };
        assert_eq!(count("garden").await, 1);
        assert_eq!(count("electronics").await, 2);
        let err = crud.delete("").await.expect_err("empty id");
        assert!(matches!(err, CrudError::Invalid(_)));
    }
}
