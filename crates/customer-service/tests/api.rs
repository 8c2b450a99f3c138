//! Starts the real server on 127.0.0.1:0 and drives every RPC through the
//! generated tonic client, including the error paths.

use api::customer::v1::{
    CreateCustomerRequest, Customer, DeleteCustomerRequest, GetCustomerRequest,
    ListCustomersRequest, UpdateCustomerRequest, customer_service_client::CustomerServiceClient,
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
) -> (RunningServer, CustomerServiceClient<Channel>) {
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
    let store = customer_service::open_store(&flags)
        .await
        .expect("store opens");
    let (server, channel) =
        testing::start_connected(&customer_service::SPEC, configure, |config| {
            customer_service::api_routes(config, store, PageTokenKey::default())
        })
        .await
        .expect("server starts");
    (server, CustomerServiceClient::new(channel))
}

async fn start(backend: Backend, empty: bool) -> (RunningServer, CustomerServiceClient<Channel>) {
    let seed = SeedArgs {
        empty,
        ..SeedArgs::default()
    };
    start_with(backend, |_| {}, seed).await
}

fn customer(name: &str, email: &str) -> Customer {
    Customer {
        name: name.into(),
        email: email.into(),
        ..Customer::default()
    }
}

fn create(c: Customer) -> CreateCustomerRequest {
    CreateCustomerRequest { customer: Some(c) }
}

async fn crud_round_trip(backend: Backend) {
    let (server, mut client) = start(backend, false).await;

    let created = client
        .create_customer(create(Customer {
            id: "ignored".into(),
            phone: "+1 555-0100".into(),
            ..customer("  Barbara Liskov ", "barbara@example.com")
        }))
        .await
        .expect("created")
        .into_inner();
    assert!(created.id.starts_with("cus_") && created.id != "ignored");
    assert_eq!(created.name, "Barbara Liskov", "trimmed");
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);

    let got = client
        .get_customer(GetCustomerRequest {
            id: created.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, created);

    // Without a mask only the set fields change.
    let updated = client
        .update_customer(UpdateCustomerRequest {
            customer: Some(Customer {
                id: created.id.clone(),
                name: "B. Liskov".into(),
                ..Customer::default()
            }),
            update_mask: None,
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(
        (updated.name.as_str(), updated.phone.as_str()),
        ("B. Liskov", "+1 555-0100")
    );
    assert_eq!(updated.create_time, created.create_time);
    assert_ne!(updated.update_time, created.update_time);

    // With a mask a field can be cleared.
    let cleared = client
        .update_customer(UpdateCustomerRequest {
            customer: Some(Customer {
                id: created.id.clone(),
                name: "not applied".into(),
                ..Customer::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["phone".into()],
            }),
        })
        .await
        .expect("update with mask")
        .into_inner();
    assert_eq!(
        (cleared.name.as_str(), cleared.phone.as_str()),
        ("B. Liskov", "")
    );

    client
        .delete_customer(DeleteCustomerRequest {
            id: created.id.clone(),
        })
        .await
        .expect("delete");
    let again = client
        .delete_customer(DeleteCustomerRequest {
            id: created.id.clone(),
        })
        .await
        .expect_err("gone");
    assert_eq!(again.code(), Code::NotFound);
    let get = client
        .get_customer(GetCustomerRequest {
            id: created.id.clone(),
        })
        .await
        .expect_err("gone");
    assert_eq!(get.code(), Code::NotFound);
    let info = get.get_details_resource_info().expect("resource info");
    assert_eq!(
        (info.resource_type.as_str(), info.resource_name.as_str()),
        ("customer.v1.Customer", created.id.as_str())
    );

    server.shutdown().await.expect("clean shutdown");
}

async fn validation_errors_carry_field_violations(backend: Backend) {
    let (server, mut client) = start(backend, false).await;

    let err = client
        .create_customer(create(customer("", "ok@example.com")))
        .await
        .expect_err("empty name");
    assert_invalid(&err, &["customer.name"]);
    let err = client
        .create_customer(create(customer("Ann", "not-an-email")))
        .await
        .expect_err("bad email");
    assert_invalid(&err, &["customer.email"]);
    let err = client
        .create_customer(create(Customer {
            phone: "call me".into(),
            ..customer(" ", "x")
        }))
        .await
        .expect_err("three at once");
    assert_invalid(&err, &["customer.name", "customer.email", "customer.phone"]);
    let err = client
        .create_customer(CreateCustomerRequest { customer: None })
        .await
        .expect_err("missing");
    assert_invalid(&err, &["customer"]);

    let err = client
        .get_customer(GetCustomerRequest { id: String::new() })
        .await
        .expect_err("empty id");
    assert_invalid(&err, &["id"]);
    let err = client
        .get_customer(GetCustomerRequest {
            id: "cus_999999".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);

    let err = client
        .update_customer(UpdateCustomerRequest {
            customer: Some(Customer {
                id: "cus_000001".into(),
                ..Customer::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["nickname".into(), "create_time".into()],
            }),
        })
        .await
        .expect_err("bad mask");
    assert_invalid(&err, &["update_mask.paths", "update_mask.paths"]);
    let err = client
        .update_customer(UpdateCustomerRequest {
            customer: Some(Customer {
                id: "cus_000001".into(),
                ..Customer::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["name".into()],
            }),
        })
        .await
        .expect_err("clearing a required field");
    assert_invalid(&err, &["customer.name"]);
    let err = client
        .update_customer(UpdateCustomerRequest {
            customer: Some(customer("A", "")),
            update_mask: None,
        })
        .await
        .expect_err("no id");
    assert_invalid(&err, &["customer.id"]);

    let err = client
        .list_customers(ListCustomersRequest {
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .expect_err("negative page size");
    assert_invalid(&err, &["page_size"]);
    let err = client
        .list_customers(ListCustomersRequest {
            page_size: 2,
            page_token: "garbage".into(),
        })
        .await
        .expect_err("garbage token");
    assert_invalid(&err, &["page_token"]);

    server.shutdown().await.expect("clean shutdown");
}

async fn duplicate_email_is_already_exists_on_create_and_update(backend: Backend) {
    let (server, mut client) = start(backend, false).await;
    let err = client
        .create_customer(create(customer("Ada Again", "ADA@example.com")))
        .await
        .expect_err("dup");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let info = err.get_details_error_info().expect("error info");
    assert_eq!(info.reason, "EMAIL_ALREADY_EXISTS");
    assert_eq!(
        err.get_details_resource_info()
            .expect("resource info")
            .resource_name,
        "cus_000001"
    );

    let other = client
        .create_customer(create(customer("Bob", "bob@example.com")))
        .await
        .expect("created");
    let err = client
        .update_customer(UpdateCustomerRequest {
            customer: Some(Customer {
                id: other.into_inner().id,
                email: "grace.hopper@example.com".into(),
                ..Customer::default()
            }),
            update_mask: None,
        })
        .await
        .expect_err("dup on update");
    assert_eq!(err.code(), Code::AlreadyExists);
    server.shutdown().await.expect("clean shutdown");
}

async fn paging_visits_every_record_exactly_once(backend: Backend) {
    let (server, mut client) = start(backend, true).await;
    for i in 0..23 {
        client
            .create_customer(create(customer(
                &format!("C {i}"),
                &format!("c{i}@example.com"),
            )))
            .await
            .expect("created");
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_customers(ListCustomersRequest {
                page_size: 5,
                page_token: token,
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.customers.len() <= 5);
        seen.extend(page.customers.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 5);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (23, 23));
    assert_eq!(seen, unique, "creation order");

    let all = client
        .list_customers(ListCustomersRequest {
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("default page")
        .into_inner();
    assert_eq!(all.customers.len(), 23);
    assert!(all.next_page_token.is_empty(), "last page has no token");
    server.shutdown().await.expect("clean shutdown");
}

async fn messages_over_max_message_bytes_are_rejected(backend: Backend) {
    let (server, mut client) = start_with(
        backend,
        |config| config.max_message_bytes = 1024,
        SeedArgs::default(),
    )
    .await;
    let big = customer(&"x".repeat(2000), "big@example.com");
    let err = client
        .create_customer(create(big))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    // A response over the limit fails too: 5 samples are fine, 30 records are not.
    client
        .list_customers(ListCustomersRequest::default())
        .await
        .expect("small page");
    for i in 0..30 {
        client
            .create_customer(create(customer(
                &format!("Customer number {i}"),
                &format!("c{i}@example.com"),
            )))
            .await
            .expect("created");
    }
    let err = client
        .list_customers(ListCustomersRequest::default())
        .await
        .expect_err("response too large");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    server.shutdown().await.expect("clean shutdown");
}

async fn a_stale_etag_is_aborted_and_no_etag_overwrites(backend: Backend) {
    let (server, mut client) = start(backend, true).await;
    let created = client
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                etag: "made up by the client".into(),
                ..customer("Edsger Dijkstra", "edsger@example.com")
            }),
        })
        .await
        .expect("created")
        .into_inner();
    assert!(!created.etag.is_empty() && created.etag != "made up by the client");
    let update = |etag: &str, name: &str| UpdateCustomerRequest {
        customer: Some(Customer {
            id: created.id.clone(),
            name: name.into(),
            etag: etag.into(),
            ..Customer::default()
        }),
        update_mask: None,
    };
    let first = client
        .update_customer(update(&created.etag, "First Writer"))
        .await
        .expect("current etag")
        .into_inner();
    assert_ne!(first.etag, created.etag);
    let stale = client
        .update_customer(update(&created.etag, "Second Writer"))
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let info = stale.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "ETAG_MISMATCH");
    let blind = client
        .update_customer(update("", "Blind Writer"))
        .await
        .expect("no etag: last writer wins")
        .into_inner();
    assert_eq!(blind.name, "Blind Writer");
    let got = client
        .get_customer(GetCustomerRequest {
            id: created.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, blind, "get returns the current etag");
    server.shutdown().await.expect("shutdown");
}

/// Two instances on one store with one key (`--page-token-key-file`, as
/// every replica on the cluster gets it) continue each other's listings; an
/// instance with another key rejects the token as an invalid `page_token`.
async fn page_tokens_work_across_instances_sharing_the_key(backend: Backend) {
    let database_url = tokio::task::spawn_blocking(move || backend.database_url())
        .await
        .expect("task")
        .expect("database");
    let dir = std::env::temp_dir().join(format!(
        "customer-page-token-{}-{}",
        std::process::id(),
        database_url.is_some()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let (key_a, key_b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&key_a, format!("{}\n", "a".repeat(64))).expect("key a");
    std::fs::write(&key_b, "b".repeat(64)).expect("key b");
    let flags = |key: &std::path::Path| StoreArgs {
        database: DatabaseArgs {
            database_url: database_url.clone(),
            ..DatabaseArgs::default()
        },
        page_tokens: resource_store::paging::PageTokenArgs {
            page_token_key_file: Some(key.to_path_buf()),
        },
        ..StoreArgs::default()
    };
    // One store shared by every instance, as one database is on the cluster.
    let store = customer_service::open_store(&flags(&key_a))
        .await
        .expect("store opens");
    let mut instances = Vec::new();
    for key in [&key_a, &key_a, &key_b] {
        let key = flags(key).page_token_key().expect("key file");
        let store = std::sync::Arc::clone(&store);
        instances.push(
            testing::start_connected(
                &customer_service::SPEC,
                |_| {},
                move |config| customer_service::api_routes(config, store, key),
            )
            .await
            .expect("server starts"),
        );
    }
    let mut clients: Vec<_> = instances
        .iter()
        .map(|(_, channel)| CustomerServiceClient::new(channel.clone()))
        .collect();
    let first = clients[0]
        .list_customers(ListCustomersRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .expect("first page")
        .into_inner();
    assert!(
        !first.next_page_token.is_empty(),
        "the seed has more than 2"
    );

    let second = clients[1]
        .list_customers(ListCustomersRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .expect("the other instance with the same key continues")
        .into_inner();
    assert!(second.customers[0].id > first.customers[1].id);

    let err = clients[2]
        .list_customers(ListCustomersRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .expect_err("an instance with another key rejects the token");
    assert_invalid(&err, &["page_token"]);

    for (server, _) in instances {
        server.shutdown().await.expect("clean shutdown");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
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
    validation_errors_carry_field_violations,
    duplicate_email_is_already_exists_on_create_and_update,
    paging_visits_every_record_exactly_once,
    page_tokens_work_across_instances_sharing_the_key,
    messages_over_max_message_bytes_are_rejected
);
