//! Bad input through the real gateway: oversized bodies, broken JSON, wrong
//! types and unknown fields (400 naming the field), invalid UTF-8, odd ids, huge page sizes, unmapped
//! methods, oversized gRPC messages. Every answer must be a 4xx (or the
//! documented gRPC code) with the usual JSON error body: never a 5xx, never a
//! hang, never a non-JSON REST body.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use api::customer::v1::{
    CreateCustomerRequest, Customer, customer_service_client::CustomerServiceClient,
};
use e2e::{assert_error, call, fresh_client_ip, grpc_channel, rest_client, unique_suffix, url};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;

/// The gateway's per-connection buffer limit (k8s/gateway/client-traffic.yaml).
const GATEWAY_BUFFER_LIMIT: usize = 8 * 1024 * 1024;
/// The services' --max-message-bytes default (docs/services.md).
const SERVICE_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// The gateway's cap on REST request bodies.
const REST_BODY_LIMIT_BYTES: usize = envoy_ext::REST_BODY_LIMIT_BYTES as usize;
// The gateway must be able to buffer (and print as JSON) any response the
// services may send.
const _: () = assert!(GATEWAY_BUFFER_LIMIT > SERVICE_MAX_MESSAGE_BYTES);

fn client() -> Client {
    rest_client(fresh_client_ip())
}

/// Sends the request and asserts a google.rpc.Status JSON error with this
/// HTTP status and gRPC code; returns the body.
async fn expect_error(
    request: reqwest::RequestBuilder,
    http: StatusCode,
    grpc_code: i64,
    what: &str,
) -> Value {
    let (status, body) = call(request).await;
    assert_eq!(status, http, "{what}: {body:.300}");
    assert_error(&body, grpc_code);
    body
}

/// POST /customers with a raw JSON body.
fn post_customers(http: &Client, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    http.post(url("/customers"))
        .header("content-type", "application/json")
        .body(body)
}

fn violation_fields(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["field_violations"].as_array().into_iter().flatten())
        .map(|v| v["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// REST bodies over the gateway's limit (envoy_ext::REST_BODY_LIMIT_BYTES,
/// a guard that runs before the transcoder) are refused there: 413 with a
/// JSON body, code RESOURCE_EXHAUSTED. Under it, the JSON becomes a smaller
/// protobuf message that fits the service's limit, and the service judges
/// the content.
#[tokio::test]
async fn rest_bodies_over_the_gateway_limit_are_413() {
    let http = client();
    let huge =
        json!({"name": "x".repeat(REST_BODY_LIMIT_BYTES + 1024), "email": "huge@example.com"});
    expect_error(
        post_customers(&http, huge.to_string()),
        StatusCode::PAYLOAD_TOO_LARGE,
        8,
        "4 MiB + 1 KiB POST /customers",
    )
    .await;
    expect_error(
        http.patch(url("/products/prd_000001"))
            .header("content-type", "application/json")
            .body(json!({"description": "d".repeat(SERVICE_MAX_MESSAGE_BYTES + 1)}).to_string()),
        StatusCode::PAYLOAD_TOO_LARGE,
        8,
        "4 MiB + 1 PATCH /products/prd_000001",
    )
    .await;
    // Under the limit: the service judges the content.
    let big = json!({"name": "x".repeat(2 * 1024 * 1024), "email": "big@example.com"});
    let body = expect_error(
        post_customers(&http, big.to_string()),
        StatusCode::BAD_REQUEST,
        3,
        "2 MiB POST /customers",
    )
    .await;
    assert_eq!(violation_fields(&body), ["customer.name"], "{body:.300}");
}

/// REST responses are buffered whole by the transcoder (protobuf -> JSON),
/// up to the gateway's buffer limit, which must hold anything the services
/// may send (4 MiB): with 1 MiB, the 1.2 MB page below was a 500.
#[tokio::test]
async fn large_list_pages_are_transcoded_up_to_the_service_limit() {
    let http = client();
    let suffix = unique_suffix();
    let category = format!("big-{suffix}");
    let description = "d".repeat(100 * 1024);
    let mut ids = Vec::new();
    for n in 0..45 {
        let (status, created) = call(http.post(url("/products"))
                .json(&json!({"name": "Big", "sku": format!("BIG-{suffix}-{n}"), "currency_code": "EUR", "category": category, "description": description}))).await;
        assert_eq!(status, StatusCode::CREATED, "{created:.300}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // 1.2 MB of JSON: over the old 1 MiB limit, well under the service's.
    let (status, page) =
        call(http.get(url(&format!("/products?category={category}&page_size=12")))).await;
    assert_eq!(status, StatusCode::OK, "{page:.300}");
    assert_eq!(page["products"].as_array().unwrap().len(), 12);
    // 4.5 MiB: the service refuses to send it (--max-message-bytes), a JSON
    // OUT_OF_RANGE rather than a gateway failure.
    expect_error(
        http.get(url(&format!("/products?category={category}&page_size=45"))),
        StatusCode::BAD_REQUEST,
        11,
        "a 4.5 MiB page",
    )
    .await;
    for id in ids {
        http.delete(url(&format!("/products/{id}")))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let http = client();
    for body in [
        "{\"name\":",
        "{\"name\": \"a\",}",
        "{name: \"a\"}",
        "{} trailing",
        "[]",
        "\"a string\"",
        "not json at all",
        "{\"name\": \"\\uZZZZ\"}",
    ] {
        expect_error(
            post_customers(&http, body),
            StatusCode::BAD_REQUEST,
            3,
            &format!("POST /customers {body:?}"),
        )
        .await;
    }
}

/// Asserts a 400 whose google.rpc.BadRequest names exactly `fields`, in
/// order (the gateway's REST extension checks bodies against the schema).
async fn expect_violations(request: reqwest::RequestBuilder, fields: &[&str], what: &str) {
    let body = expect_error(request, StatusCode::BAD_REQUEST, 3, what).await;
    assert_eq!(
        body["details"][0]["@type"], "type.googleapis.com/google.rpc.BadRequest",
        "{what}: {body}"
    );
    assert_eq!(violation_fields(&body), fields, "{what}: {body}");
    for field in fields {
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{what}: the message names {field}: {body}"
        );
    }
}

/// A field of the wrong JSON type is a 400 naming the field; a value of the
/// right type that the field cannot hold (over int32, a bad timestamp) is
/// the transcoder's 400. Either way never a 5xx.
#[tokio::test]
async fn wrong_types_are_400() {
    let http = client();
    let email = format!("types-{}@example.com", unique_suffix());
    for (body, field) in [
        (json!({"name": 5, "email": email}), "customer.name"),
        (json!({"name": ["a"], "email": email}), "customer.name"),
        (
            json!({"name": {"first": "a"}, "email": email}),
            "customer.name",
        ),
        (json!({"name": "Typed", "email": true}), "customer.email"),
        (
            json!({"name": "Typed", "email": email, "createTime": {"seconds": 1}}),
            "customer.create_time",
        ),
    ] {
        expect_violations(
            post_customers(&http, body.to_string()),
            &[field],
            &format!("POST /customers {body}"),
        )
        .await;
    }
    let sku = format!("TYPES-{}", unique_suffix());
    for (field, value) in [
        ("stock_quantity", json!("many")),
        ("stock_quantity", json!(true)),
        ("price_minor_units", json!("12.50")),
        ("price_minor_units", json!({"units": 12})),
        ("category", json!(["a", "b"])),
    ] {
        let mut product = json!({"name": "Typed", "sku": sku, "currency_code": "EUR"});
        product[field] = value.clone();
        expect_violations(
            http.post(url("/products")).json(&product),
            &[&format!("product.{field}")],
            &format!("POST /products {field}: {value}"),
        )
        .await;
    }
    for (field, value) in [
        ("stock_quantity", json!(1.5)),
        ("stock_quantity", json!(3_000_000_000_i64)), // over int32
        ("price_minor_units", json!("9223372036854775808")), // over int64
        ("create_time", json!("yesterday")),
    ] {
        let mut product = json!({"name": "Typed", "sku": sku, "currency_code": "EUR"});
        product[field] = value.clone();
        expect_error(
            http.post(url("/products")).json(&product),
            StatusCode::BAD_REQUEST,
            3,
            &format!("POST /products {field}: {value}"),
        )
        .await;
    }
    // Numeric query parameters too.
    for query in ["page_size=ten", "page_size=1.5", "page_size=99999999999"] {
        expect_error(
            http.get(url(&format!("/customers?{query}"))),
            StatusCode::BAD_REQUEST,
            3,
            &format!("GET /customers?{query}"),
        )
        .await;
    }
}

/// An unknown field in a JSON body is a 400 naming it (and every other
/// wrong field), on creates and updates alike, and nothing is written;
/// unknown query parameters are 400 too (reject_unknown_query_parameters).
#[tokio::test]
async fn unknown_fields_are_400_naming_them() {
    let http = client();
    let email = format!("unknown-{}@example.com", unique_suffix());
    // In the body's order (json! would sort the keys).
    let body = format!(r#"{{"nmae": "Unknown", "email": "{email}", "nickname": "u", "phone": 5}}"#);
    expect_violations(
        post_customers(&http, body),
        &["customer.nmae", "customer.nickname", "customer.phone"],
        "POST /customers with typos",
    )
    .await;
    // Nothing was created: the same e-mail is still free.
    let (status, created) = call(post_customers(
        &http,
        json!({"name": "Known", "email": email}).to_string(),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();

    expect_violations(
        http.patch(url(&format!("/customers/{id}")))
            .json(&json!({"name": "Renamed", "emial": "x@example.com"})),
        &["customer.emial"],
        "PATCH /customers/{id} with a typo",
    )
    .await;
    let (status, unchanged) = call(http.get(url(&format!("/customers/{id}")))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        unchanged["name"], "Known",
        "the refused PATCH wrote nothing"
    );

    let sku = format!("UNKNOWN-{}", unique_suffix());
    expect_violations(
        http.post(url("/products"))
            .json(&json!({"name": "P", "sku": sku, "currency_code": "EUR", "colour": "red"})),
        &["product.colour"],
        "POST /products with an unknown field",
    )
    .await;

    let body = expect_error(
        http.get(url("/products?page_size=1&colour=red")),
        StatusCode::BAD_REQUEST,
        3,
        "GET /products with an unknown query parameter",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("colour"),
        "{body}"
    );
    http.delete(url(&format!("/customers/{id}")))
        .send()
        .await
        .unwrap();
}

/// What proto3 JSON allows stays allowed: lowerCamel names, escaped keys,
/// null for a field's default, 64-bit integers as strings, output-only
/// fields (ignored), whitespace. A client-chosen field name with quotes or
/// control characters comes back escaped, still JSON.
#[tokio::test]
async fn every_proto3_json_form_is_still_accepted() {
    let http = client();
    let email = format!("forms-{}@example.com", unique_suffix());
    let body = format!(
        r#"  {{ "n\u0061me" : "Forms", "email": "{email}", "phone": null,
              "createTime": "2020-01-01T00:00:00Z", "etag": "" }}  "#
    );
    let (status, created) = call(post_customers(&http, body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Forms", "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let sku = format!("FORMS-{}", unique_suffix());
    let (status, product) = call(http.post(url("/products")).json(&json!({
        "name": "Forms", "sku": sku, "currencyCode": "EUR",
        "priceMinorUnits": "1250", "stockQuantity": 3, "category": null,
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{product}");
    assert_eq!(product["price_minor_units"], "1250", "{product}");
    assert_eq!(product["stock_quantity"], 3, "{product}");

    expect_violations(
        post_customers(&http, r#"{"na\"me\u0001": 1}"#),
        &["customer.na\"me\u{1}"],
        "a field name with a quote and a control character",
    )
    .await;
    // Escaped surrogate pairs are one character, lone ones and raw bytes
    // that are not UTF-8 come back as U+FFFD: the answer stays valid JSON.
    expect_violations(
        post_customers(&http, r#"{"\ud83d\ude00\udf6f": 1}"#),
        &["customer.\u{1F600}\u{FFFD}"],
        "a field name with a surrogate pair and a lone surrogate",
    )
    .await;
    expect_violations(
        post_customers(&http, b"{\"a\xff\": 1}".to_vec()),
        &["customer.a\u{FFFD}"],
        "a field name with a byte that is not UTF-8",
    )
    .await;
    for path in [
        format!("/customers/{id}"),
        format!("/products/{}", product["id"].as_str().unwrap()),
    ] {
        http.delete(url(&path)).send().await.unwrap();
    }
}

#[tokio::test]
async fn invalid_utf8_is_400_never_500() {
    let http = client();
    // In a JSON body.
    let mut body = b"{\"name\": \"".to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0x41]);
    body.extend_from_slice(b"\", \"email\": \"utf8@example.com\"}");
    expect_error(
        post_customers(&http, body),
        StatusCode::BAD_REQUEST,
        3,
        "POST /customers with invalid UTF-8 in the body",
    )
    .await;
    // Percent-encoded in a path variable and in query parameters: the
    // transcoder copies the bytes into a protobuf string field.
    for path in [
        "/customers/%FF",
        "/products/%C3%28",
        "/customers?page_token=%FF%FE",
        "/products?category=%ED%A0%80",
    ] {
        let (status, body) = call(http.get(url(path))).await;
        assert!(status.is_client_error(), "GET {path}: {status}");
        assert!(
            matches!(body["code"].as_i64(), Some(3 | 5)),
            "GET {path}: {body}"
        );
    }
    let (status, _) = call(
        http.patch(url("/customers/%FF%FE"))
            .json(&json!({"name": "x"})),
    )
    .await;
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test]
async fn huge_page_size_is_clamped_to_the_maximum() {
    let http = client();
    let (status, page) = call(http.get(url("/customers?page_size=2147483647"))).await;
    assert_eq!(status, StatusCode::OK, "{page:.300}");
    let n = page["customers"].as_array().unwrap().len();
    assert!((1..=1000).contains(&n), "{n} customers on one page");
    expect_error(
        http.get(url("/customers?page_size=-2147483648")),
        StatusCode::BAD_REQUEST,
        3,
        "negative page_size",
    )
    .await;
}

#[tokio::test]
async fn odd_ids_are_404_or_400_json_never_5xx() {
    let http = client();
    let long = "a".repeat(8 * 1024);
    // (id as sent in the path, expected HTTP status)
    let cases = [
        ("a%2Fb", StatusCode::NOT_FOUND),
        ("..%2F..%2Fetc%2Fpasswd", StatusCode::NOT_FOUND),
        ("%E2%9C%93", StatusCode::NOT_FOUND),
        ("%F0%9F%98%80", StatusCode::NOT_FOUND),
        // Trimmed to nothing by the service: a violation on `id`.
        ("%20", StatusCode::BAD_REQUEST),
        ("cus_000001'--", StatusCode::NOT_FOUND),
        ("%7B%7D", StatusCode::NOT_FOUND),
        (long.as_str(), StatusCode::NOT_FOUND),
        // A NUL byte: refused by the gateway itself before transcoding.
        ("cus_000001%00", StatusCode::BAD_REQUEST),
    ];
    for (id, want) in cases {
        for base in ["/customers", "/products"] {
            let path = format!("{base}/{id}");
            let shown = &path[..path.len().min(60)];
            for method in [Method::GET, Method::DELETE] {
                let (status, body) = call(http.request(method.clone(), url(&path))).await;
                assert_eq!(status, want, "{method} {shown}: {body:.300}");
                let code = if want == StatusCode::NOT_FOUND { 5 } else { 3 };
                assert_eq!(body["code"], code, "{method} {shown}: {body:.300}");
                assert!(body["details"].is_array(), "{method} {shown}: {body:.300}");
            }
        }
    }
    // Over Envoy's request header limit (60 KiB by default; the client's own
    // URI limit is 64 KiB): refused by the gateway's HTTP codec with a 4xx,
    // never a 5xx, and the gateway keeps serving.
    let huge = format!("/customers/{}", "a".repeat(62 * 1024));
    let status = http
        .get(url(&huge))
        .send()
        .await
        .expect("a 62 KiB path is sent")
        .status();
    assert!(status.is_client_error(), "GET of a 62 KiB path: {status}");
    let status = client()
        .get(url("/customers?page_size=1"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK, "the gateway after a 62 KiB path");
}

#[tokio::test]
async fn unmapped_methods_are_404_json() {
    let http = client();
    for (method, path) in [
        (Method::PUT, "/customers/cus_000001"),
        (Method::POST, "/customers/cus_000001"),
        (Method::DELETE, "/customers"),
        (Method::PATCH, "/customers"),
        (Method::PUT, "/products"),
        (Method::OPTIONS, "/products"),
        (Method::TRACE, "/products/prd_000001"),
        (Method::from_bytes(b"PURGE").unwrap(), "/customers"),
        (Method::GET, "/customers/cus_000001/extra"),
        (Method::GET, "/customer.v1.CustomerService/ListCustomers"),
    ] {
        expect_error(
            http.request(method.clone(), url(path))
                .header("content-type", "application/json")
                .body("{}"),
            StatusCode::NOT_FOUND,
            5,
            &format!("{method} {path}"),
        )
        .await;
    }
}

#[tokio::test]
async fn grpc_messages_over_the_service_limit_are_out_of_range() {
    let channel = grpc_channel(fresh_client_ip()).await.unwrap();
    let mut customers = CustomerServiceClient::new(channel);
    let create = |name: String| CreateCustomerRequest {
        customer: Some(Customer {
            name,
            email: format!("grpc-big-{}@example.com", unique_suffix()),
            ..Default::default()
        }),
    };
    // Over --max-message-bytes: the service refuses to decode it.
    let err = customers
        .create_customer(create("x".repeat(SERVICE_MAX_MESSAGE_BYTES + 1)))
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    // Under the service's limit (2 MiB, over Envoy Gateway's default 32 KiB
    // buffer): streamed through the gateway, judged by the service.
    let err = customers
        .create_customer(create("x".repeat(2 * 1024 * 1024)))
        .await
        .expect_err("name too long");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}
