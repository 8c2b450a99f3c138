//! How customers live in a store (whichever backend), plus validation and
//! sample data.

use api::customer::v1::Customer;
use prost_types::Timestamp;
use resource_store::{
    Resource,
    mask::UpdateMask,
    store::Schema,
    validate::{self, Violations},
};

pub const RESOURCE_TYPE: &str = "customer.v1.Customer";

/// [`Schema`] of the customer table: ids `cus_…`, email unique case-insensitively.
#[derive(Debug)]
pub struct Customers;

impl Schema for Customers {
    type Record = Customer;
    const ID_PREFIX: &'static str = "cus";
    const RESOURCE_TYPE: &'static str = RESOURCE_TYPE;

    fn id(record: &Customer) -> &str {
        &record.id
    }
    fn set_id(record: &mut Customer, id: String) {
        record.id = id;
    }
    fn set_create_time(record: &mut Customer, time: Timestamp) {
        record.create_time = Some(time);
    }
    fn set_update_time(record: &mut Customer, time: Timestamp) {
        record.update_time = Some(time);
    }
    fn etag(record: &Customer) -> &str {
        &record.etag
    }
    fn set_etag(record: &mut Customer, etag: String) {
        record.etag = etag;
    }
    fn unique_keys(record: &Customer) -> Vec<(&'static str, String)> {
        vec![("customer.email", record.email.to_lowercase())]
    }
}

impl Resource for Customers {
    const FIELD: &'static str = "customer";
    const UPDATABLE: &'static [&'static str] = &["name", "email", "phone"];

    fn normalize(customer: &mut Customer) {
        customer.name = customer.name.trim().to_owned();
        customer.email = customer.email.trim().to_owned();
        customer.phone = customer.phone.trim().to_owned();
    }

    fn validate(customer: &Customer) -> Violations {
        let mut v = Violations::new();
        v.check("customer.name", validate::name(&customer.name));
        v.check("customer.email", validate::email(&customer.email));
        v.check("customer.phone", validate::phone(&customer.phone));
        v
    }

    fn apply(current: &mut Customer, patch: &Customer, mask: &UpdateMask) {
        if mask.includes("name", !patch.name.is_empty()) {
            current.name.clone_from(&patch.name);
        }
        if mask.includes("email", !patch.email.is_empty()) {
            current.email.clone_from(&patch.email);
        }
        if mask.includes("phone", !patch.phone.is_empty()) {
            current.phone.clone_from(&patch.phone);
        }
    }
}

fn customer(name: &str, email: &str, phone: &str) -> Customer {
    Customer {
        name: name.into(),
        email: email.into(),
        phone: phone.into(),
        ..Customer::default()
    }
}

/// The sample customers a fresh server starts with.
pub fn samples() -> Vec<Customer> {
    vec![
        customer("Ada Lovelace", "ada@example.com", "+44 20 7946 0018"),
        customer(
            "Grace Hopper",
            "grace.hopper@example.com",
            "+1 202-555-0143",
        ),
        customer("Alan Turing", "alan.turing@example.org", ""),
        customer(
            "Katherine Johnson",
            "kjohnson@example.net",
            "+1 757-555-0199",
        ),
        customer("Linus Torvalds", "linus@example.fi", "+358 9 555 0101"),
    ]
}

const FIRST: &[&str] = &[
    "Maria", "Jon", "Aiko", "Omar", "Lena", "Ravi", "Chloé", "Tomás", "Ngozi", "Sven",
];
const LAST: &[&str] = &[
    "Garcia", "Smith", "Tanaka", "Haddad", "Novak", "Iyer", "Dubois", "Silva", "Okafor", "Berg",
];

/// `n` generated customers with unique e-mail addresses (for benchmarks).
pub fn synthetic(n: usize) -> impl Iterator<Item = Customer> {
    (0..n).map(|i| {
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i / FIRST.len()) % LAST.len()];
        let phone = if i % 3 == 0 {
            String::new()
        } else {
            format!("+1 555-{:04}", i % 10_000)
        };
        Customer {
            name: format!("{first} {last}"),
            email: format!(
                "{}.{}.{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            ),
            phone,
            ..Customer::default()
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

    async fn seeded(seed: SeedArgs) -> Crud<Customers> {
        let flags = StoreArgs {
            seed,
            ..StoreArgs::default()
        };
        let store = crate::open_store(&flags).await.expect("in-memory store");
        Crud::new(store, PageTokens::new("test"))
    }

    const UPDATABLE: &[&str] = Customers::UPDATABLE;

    fn validate(c: &Customer) -> Violations {
        Customers::validate(c)
    }

    fn apply(current: &mut Customer, patch: &Customer, mask: &UpdateMask) {
        Customers::apply(current, patch, mask);
    }

    fn mask(paths: &[&str]) -> UpdateMask {
        let m = FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        UpdateMask::parse(Some(&m), UPDATABLE, OUTPUT_ONLY).expect("valid mask")
    }

    #[tokio::test]
    async fn samples_and_synthetic_records_are_valid_and_unique() {
        let crud = seeded(SeedArgs {
            empty: false,
            synthetic_records: 1000,
        })
        .await;
        assert_eq!(crud.store().len().await, Ok(1005));
        for c in samples()
            .iter()
            .chain(synthetic(1000).collect::<Vec<_>>().iter())
        {
            assert!(validate(c).is_empty(), "{c:?}: {}", validate(c));
        }
        let empty = seeded(SeedArgs {
            empty: true,
            synthetic_records: 0,
        })
        .await;
        assert_eq!(empty.store().len().await, Ok(0));
    }

    #[test]
    fn validation_reports_field_paths() {
        let bad = customer(" ", "nope", "12");
        assert_eq!(
            validate(&bad).fields(),
            ["customer.name", "customer.email", "customer.phone"]
        );
        let mut padded = customer("  Ada  ", " ada@example.com ", "");
        Customers::normalize(&mut padded);
        assert_eq!(
            (padded.name.as_str(), padded.email.as_str()),
            ("Ada", "ada@example.com")
        );
    }

    #[test]
    fn update_without_mask_only_touches_set_fields() {
        let mut current = customer("Ada", "ada@example.com", "+1 555-0100");
        apply(
            &mut current,
            &customer("Ada L.", "", ""),
            &UpdateMask::Implicit,
        );
        assert_eq!(
            current,
            customer("Ada L.", "ada@example.com", "+1 555-0100")
        );
    }

    #[test]
    fn update_with_mask_can_clear_and_ignores_unlisted() {
        let mut current = customer("Ada", "ada@example.com", "+1 555-0100");
        apply(
            &mut current,
            &customer("Ignored", "", ""),
            &mask(&["phone"]),
        );
        assert_eq!(current, customer("Ada", "ada@example.com", ""));
    }

    #[tokio::test]
    async fn email_uniqueness_is_case_insensitive_on_update() {
        let crud = seeded(SeedArgs::default()).await;
        let grace = crud.list(10, "", None).await.expect("list").0[1].clone();
        let patch = Customer {
            id: grace.id.clone(),
            email: "ADA@example.com".into(),
            ..Customer::default()
        };
        let err = crud.update(Some(patch), None).await.expect_err("taken");
        assert!(
            matches!(
                err,
                CrudError::AlreadyExists {
                    resource_type: RESOURCE_TYPE,
                    field: "customer.email",
                    ..
                }
            ),
            "{err:?}"
        );
        let stored = crud.get(&grace.id).await.expect("exists");
        assert_eq!(stored.email, grace.email, "unchanged");
    }
}
