//! Starts the real server on 127.0.0.1:0 and drives every RPC through the
//! generated tonic client, including the error paths.

use api::product::v1::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, ListProductsRequest, Product,
    UpdateProductRequest, product_service_client::ProductServiceClient,
};
use postgres_store::{DatabaseArgs, StoreArgs};
use prost_types::FieldMask;
use resource_store::{SeedArgs, paging::PageTokenKey};
use service_runtime::{RunningServer, ServerConfig};
use service_testing::{self as testing, assert_invalid, postgres::Backend};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

async fn start_with(
    backend: Backend,
    configure: impl FnOnce(&mut ServerConfig),
    seed: SeedArgs,
) -> (RunningServer, ProductServiceClient<Channel>) {
    let database_url = tokio::task::spawn_blocking(move || backend.database_url())
        .await
        .expect("task")
        .expect("database");
    let flags = StoreArgs {
        seed,
        database: DatabaseArgs {
            database_url,
            ..DatabaseArgs::default()
        },
        ..StoreArgs::default()
    };
    let store = product_service::open_store(&flags)
        .await
        .expect("store opens");
    let (server, channel) = testing::start_connected(&product_service::SPEC, configure, |config| {
        product_service::api_routes(config, store, PageTokenKey::default())
    })
    .await
    .expect("server starts");
    (server, ProductServiceClient::new(channel))
}

async fn start(backend: Backend) -> (RunningServer, ProductServiceClient<Channel>) {
    start_with(backend, |_| {}, SeedArgs::default()).await
}

fn product(sku: &str, category: &str) -> Product {
    Product {
        name: format!("Product {sku}"),
        sku: sku.into(),
        price_minor_units: 1999,
        currency_code: "EUR".into(),
        stock_quantity: 3,
        category: category.into(),
        ..Product::default()
    }
}

fn create(p: Product) -> CreateProductRequest {
    CreateProductRequest { product: Some(p) }
}

fn list(page_size: i32, page_token: &str, category: &str) -> ListProductsRequest {
    ListProductsRequest {
        page_size,
        page_token: page_token.into(),
        category: category.into(),
    }
}

async fn crud_round_trip(backend: Backend) {
    let (server, mut client) = start(backend).await;
    let created = client
        .create_product(create(product("TEST-1", "garden")))
        .await
        .expect("created")
        .into_inner();
    assert!(created.id.starts_with("prd_"));
    let got = client
        .get_product(GetProductRequest {
            id: created.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, created);

    let updated = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                id: created.id.clone(),
                price_minor_units: 2500,
                ..Product::default()
            }),
            update_mask: None,
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(
        (updated.price_minor_units, updated.stock_quantity),
        (2500, 3)
    );
    assert_eq!(updated.create_time, created.create_time);
    assert_ne!(updated.update_time, created.update_time);

    let zeroed = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                id: created.id.clone(),
                ..Product::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["stock_quantity".into(), "description".into()],
            }),
        })
        .await
        .expect("update with mask")
        .into_inner();
    assert_eq!((zeroed.stock_quantity, zeroed.price_minor_units), (0, 2500));

    client
        .delete_product(DeleteProductRequest {
            id: created.id.clone(),
        })
        .await
        .expect("delete");
    let err = client
        .delete_product(DeleteProductRequest { id: created.id })
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    server.shutdown().await.expect("clean shutdown");
}

async fn validation_and_conflicts(backend: Backend) {
    let (server, mut client) = start(backend).await;
    let err = client
        .create_product(create(Product {
            price_minor_units: -1,
            ..product("NEG-1", "x")
        }))
        .await
        .expect_err("negative price");
    assert_invalid(&err, &["product.price_minor_units"]);
    let err = client
        .create_product(create(Product {
            name: String::new(),
            sku: " ".into(),
            currency_code: "usd".into(),
            stock_quantity: -1,
            ..product("", "x")
        }))
        .await
        .expect_err("many");
    assert_invalid(
        &err,
        &[
            "product.name",
            "product.sku",
            "product.currency_code",
            "product.stock_quantity",
        ],
    );

    let err = client
        .create_product(create(product("KB-MX-001", "x")))
        .await
        .expect_err("dup sku");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        err.get_details_error_info().expect("error info").reason,
        "SKU_ALREADY_EXISTS"
    );
    let err = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                id: "prd_000002".into(),
                sku: "KB-MX-001".into(),
                ..Product::default()
            }),
            update_mask: None,
        })
        .await
        .expect_err("dup sku on update");
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                id: "prd_000002".into(),
                ..Product::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["id".into()],
            }),
        })
        .await
        .expect_err("output-only in mask");
    assert_invalid(&err, &["update_mask.paths"]);

    let err = client
        .get_product(GetProductRequest {
            id: "prd_424242".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .list_products(list(-1, "", ""))
        .await
        .expect_err("negative page size");
    assert_invalid(&err, &["page_size"]);
    let err = client
        .list_products(list(1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""))
        .await
        .expect_err("garbage");
    assert_invalid(&err, &["page_token"]);
    server.shutdown().await.expect("clean shutdown");
}

async fn category_paging_visits_each_product_once_and_tokens_are_bound_to_the_filter(
    backend: Backend,
) {
    let (server, mut client) = start_with(
        backend,
        |_| {},
        SeedArgs {
            synthetic_records: 500,
            ..SeedArgs::default()
        },
    )
    .await;

    let mut total = 0;
    for category in [
        "electronics",
        "books",
        "kitchen",
        "home",
        "office",
        "outdoor",
    ] {
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_products(list(7, &token, category))
                .await
                .expect("page")
                .into_inner();
            assert!(page.products.iter().all(|p| p.category == category));
            seen.extend(page.products.into_iter().map(|p| p.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(seen.len(), unique.len(), "{category}");
        total += seen.len();
    }
    assert_eq!(total, 508);

    let first = client
        .list_products(list(2, "", "books"))
        .await
        .expect("page")
        .into_inner();
    let err = client
        .list_products(list(2, &first.next_page_token, "kitchen"))
        .await
        .expect_err("other filter");
    assert_invalid(&err, &["page_token"]);
    let err = client
        .list_products(list(2, &first.next_page_token, ""))
        .await
        .expect_err("no filter");
    assert_invalid(&err, &["page_token"]);

    let clamped = client
        .list_products(list(5000, "", ""))
        .await
        .expect("clamped")
        .into_inner();
    assert_eq!(clamped.products.len(), 508, "fewer than the 1000 maximum");
    let default = client
        .list_products(list(0, "", ""))
        .await
        .expect("default")
        .into_inner();
    assert_eq!(default.products.len(), 50);
    server.shutdown().await.expect("clean shutdown");
}

async fn reflection_lists_only_the_product_service_by_default(backend: Backend) {
    let (server, _client) = start(backend).await;
    let channel = testing::channel(&server.endpoint())
        .await
        .expect("connects");
    let v1 = testing::reflection_services_v1(channel.clone())
        .await
        .expect("v1");
    assert!(
        v1.contains(&"product.v1.ProductService".to_owned()),
        "{v1:?}"
    );
    assert!(
        !v1.contains(&"customer.v1.CustomerService".to_owned()),
        "{v1:?}"
    );
    let v1alpha = testing::reflection_services_v1alpha(channel)
        .await
        .expect("v1alpha");
    assert!(
        v1alpha.contains(&"product.v1.ProductService".to_owned()),
        "{v1alpha:?}"
    );
    server.shutdown().await.expect("clean shutdown");
}

async fn a_stale_etag_is_aborted_and_no_etag_overwrites(backend: Backend) {
    let (server, mut client) = start(backend).await;
    let created = client
        .create_product(CreateProductRequest {
            product: Some(Product {
                etag: "made up by the client".into(),
                ..product("ETAG-1", "books")
            }),
        })
        .await
        .expect("created")
        .into_inner();
    assert!(!created.etag.is_empty() && created.etag != "made up by the client");
    let update = |etag: &str, name: &str| UpdateProductRequest {
        product: Some(Product {
            id: created.id.clone(),
            name: name.into(),
            etag: etag.into(),
            ..Product::default()
        }),
        update_mask: None,
    };
    let first = client
        .update_product(update(&created.etag, "First Writer"))
        .await
        .expect("current etag")
        .into_inner();
    assert_ne!(first.etag, created.etag);
    let stale = client
        .update_product(update(&created.etag, "Second Writer"))
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let info = stale.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "ETAG_MISMATCH");
    let blind = client
        .update_product(update("", "Blind Writer"))
        .await
        .expect("no etag: last writer wins")
        .into_inner();
    assert_eq!(blind.name, "Blind Writer");
    let got = client
        .get_product(GetProductRequest {
            id: created.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, blind, "get returns the current etag");
    server.shutdown().await.expect("shutdown");
}

/// Every test above, once per store backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend::Memory).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_stale_etag_is_aborted_and_no_etag_overwrites,
    crud_round_trip,
    validation_and_conflicts,
    category_paging_visits_each_product_once_and_tokens_are_bound_to_the_filter,
    reflection_lists_only_the_product_service_by_default
);
