//! Native gRPC through the gateway's GRPCRoutes, with tonic clients.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use api::{
    customer::v1::{
        CreateCustomerRequest, Customer, DeleteCustomerRequest, GetCustomerRequest,
        ListCustomersRequest, customer_service_client::CustomerServiceClient,
    },
    product::v1::{
        CreateProductRequest, GetProductRequest, ListProductsRequest, Product,
        product_service_client::ProductServiceClient,
    },
};
use e2e::{fresh_client_ip, grpc_channel, unique_suffix};
use service_testing::{reflection_services_v1, reflection_services_v1alpha, violation_fields};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn customer_round_trip_and_errors_keep_their_details() {
    let mut customers = CustomerServiceClient::new(grpc_channel(fresh_client_ip()).await.unwrap());
    let created = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                name: "Grpc Through Gateway".into(),
                email: format!("grpc-{}@example.com", unique_suffix()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let fetched = customers
        .get_customer(GetCustomerRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);

    // Page by page: on a PostgreSQL store (the cluster) earlier runs' rows
    // are still there, so the new customer need not be on the first page.
    let mut page_token = String::new();
    let listed = loop {
        let page = customers
            .list_customers(ListCustomersRequest {
                page_size: 1000,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        if page.customers.iter().any(|c| c.id == created.id) {
            break true;
        }
        if page.next_page_token.is_empty() {
            break false;
        }
        page_token = page.next_page_token;
    };
    assert!(listed, "{} is on no page of the list", created.id);

    customers
        .delete_customer(DeleteCustomerRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap();
    let missing = customers
        .get_customer(GetCustomerRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let resource = missing
        .get_details_resource_info()
        .expect("ResourceInfo survives the gateway");
    assert_eq!(resource.resource_name, created.id);

    let invalid = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                name: String::new(),
                email: "nope".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(
        violation_fields(&invalid),
        ["customer.name", "customer.email"]
    );
}

#[tokio::test]
async fn product_service_is_routed_separately() {
    let mut products = ProductServiceClient::new(grpc_channel(fresh_client_ip()).await.unwrap());
    let created = products
        .create_product(CreateProductRequest {
            product: Some(Product {
                name: "Gateway Gadget".into(),
                sku: format!("GW-{}", unique_suffix()),
                price_minor_units: 4999,
                currency_code: "USD".into(),
                stock_quantity: 3,
                category: "gadgets".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let fetched = products
        .get_product(GetProductRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);

    let bad = products
        .list_products(ListProductsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn reflection_resolves_both_services_behind_one_address() {
    let expected = [
        api::customer::v1::SERVICE_NAME,
        api::product::v1::SERVICE_NAME,
    ];
    // Several streams, so both reflection backends get asked.
    for _ in 0..4 {
        let channel = grpc_channel(fresh_client_ip()).await.unwrap();
        for services in [
            reflection_services_v1(channel.clone()).await.unwrap(),
            reflection_services_v1alpha(channel).await.unwrap(),
        ] {
            for service in expected {
                assert!(
                    services.iter().any(|s| s == service),
                    "{service} missing from {services:?}"
                );
            }
        }
    }
}

/// The REST extension leaves gRPC alone: a create is a plain gRPC success
/// (tonic refuses any HTTP status but 200, so a 201 would fail here), with
/// no Location; errors keep their code. Like REST answers, every gRPC answer
/// carries the request id the service logs.
#[tokio::test]
async fn grpc_answers_are_unchanged_but_for_the_request_id() {
    let mut customers = CustomerServiceClient::new(grpc_channel(fresh_client_ip()).await.unwrap());
    let created = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                name: "Grpc Unchanged".into(),
                email: format!("grpc-unchanged-{}@example.com", unique_suffix()),
                ..Default::default()
            }),
        })
        .await
        .expect("a gRPC create is an HTTP 200 gRPC success");
    let metadata = created.metadata();
    assert_eq!(
        metadata.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/grpc"),
        "{metadata:?}"
    );
    assert!(metadata.get("location").is_none(), "{metadata:?}");
    assert!(
        metadata
            .get("x-request-id")
            .is_some_and(|id| !id.is_empty()),
        "{metadata:?}"
    );

    let missing = customers
        .get_customer(GetCustomerRequest {
            id: "cus_999999999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing
            .metadata()
            .get("x-request-id")
            .is_some_and(|id| !id.is_empty()),
        "{:?}",
        missing.metadata()
    );
    customers
        .delete_customer(DeleteCustomerRequest {
            id: created.into_inner().id,
        })
        .await
        .unwrap();
}
