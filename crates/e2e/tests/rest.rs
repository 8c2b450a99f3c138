//! REST through the gateway: Envoy's gRPC-JSON transcoder in front of the
//! real services, and the REST extension (k8s/gateway/rest-extension.yaml)
//! before it. JSON in, JSON out, errors as google.rpc.Status JSON, creates as
//! 201 with a Location, no gRPC-only headers, a request id on every answer.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use e2e::{assert_error, call, fresh_client_ip, rest_client, unique_suffix, url};
use reqwest::{Client, RequestBuilder, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

fn client() -> Client {
    rest_client(fresh_client_ip())
}

/// Sends a REST request; the status, the headers and the JSON body.
async fn exchange(request: RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let response = request.send().await.expect("the gateway answers");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.expect("a readable body");
    let body = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{status}: {err}: {text}"));
    (status, headers, body)
}

/// A REST answer has no gRPC-only header (grpc-status, grpc-message, ...)
/// and carries the request id the services log.
fn assert_rest_headers(what: &str, headers: &HeaderMap) {
    let grpc: Vec<&str> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with("grpc-"))
        .collect();
    assert!(
        grpc.is_empty(),
        "{what}: gRPC headers {grpc:?} in {headers:?}"
    );
    assert!(
        headers.get("x-request-id").is_some_and(|id| !id.is_empty()),
        "{what}: no x-request-id in {headers:?}"
    );
}

#[tokio::test]
async fn create_is_201_with_the_location_of_the_new_resource() {
    let http = client();
    let suffix = unique_suffix();
    for (collection, resource) in [
        (
            "/customers",
            json!({"name": "Located", "email": format!("located-{suffix}@example.com")}),
        ),
        (
            "/products",
            json!({"name": "Located", "sku": format!("LOC-{suffix}"), "currency_code": "EUR"}),
        ),
    ] {
        let (status, headers, created) = exchange(http.post(url(collection)).json(&resource)).await;
        assert_eq!(status, StatusCode::CREATED, "{collection}: {created}");
        let id = created["id"].as_str().expect("server-assigned id");
        let location = headers
            .get("location")
            .unwrap_or_else(|| panic!("{collection}: no Location in {headers:?}"))
            .to_str()
            .unwrap();
        assert_eq!(location, format!("{collection}/{id}"));
        // The Location is where the new resource is read back.
        let (status, fetched) = call(http.get(url(location))).await;
        assert_eq!((status, &fetched), (StatusCode::OK, &created));
        let (status, _, _) = exchange(http.delete(url(location))).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn rest_answers_carry_no_grpc_headers_and_a_request_id() {
    let http = client();
    let email = format!("headers-{}@example.com", unique_suffix());
    let customer = json!({"name": "Headers", "email": email});
    let (status, headers, created) = exchange(http.post(url("/customers")).json(&customer)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_rest_headers("POST", &headers);
    let one = format!("/customers/{}", created["id"].as_str().unwrap());

    let checks = [
        // Successes, by the service.
        ("GET one", http.get(url(&one)), StatusCode::OK),
        (
            "GET list",
            http.get(url("/customers?page_size=2")),
            StatusCode::OK,
        ),
        (
            "PATCH",
            http.patch(url(&one)).json(&json!({"name": "Headers 2"})),
            StatusCode::OK,
        ),
        // Errors, by the service.
        (
            "duplicate",
            http.post(url("/customers")).json(&customer),
            StatusCode::CONFLICT,
        ),
        (
            "invalid",
            http.post(url("/customers"))
                .json(&json!({"name": "", "email": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        ("DELETE", http.delete(url(&one)), StatusCode::OK),
        ("GET deleted", http.get(url(&one)), StatusCode::NOT_FOUND),
        // Errors, by the transcoder.
        (
            "unknown path",
            http.get(url("/nope")),
            StatusCode::NOT_FOUND,
        ),
        (
            "unknown query parameter",
            http.get(url("/customers?pagesize=5")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "malformed JSON",
            http.post(url("/customers"))
                .header("content-type", "application/json")
                .body("{\"name\":"),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (what, request, expected) in checks {
        let (status, headers, body) = exchange(request).await;
        assert_eq!(status, expected, "{what}: {body}");
        assert_rest_headers(what, &headers);
        // Only a create's success is a 201 with a Location.
        assert!(headers.get("location").is_none(), "{what}: {headers:?}");
    }
}

#[tokio::test]
async fn customer_crud_round_trip() {
    let http = client();
    let email = format!("rest-{}@example.com", unique_suffix());

    let (status, created) = call(
        http.post(url("/customers"))
            .json(&json!({"name": "Rest Roundtrip", "email": email, "phone": "+1 555 0100"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"]
        .as_str()
        .expect("server-assigned id")
        .to_owned();
    assert_eq!(created["email"], email);
    assert!(created["create_time"].is_string());

    let (status, fetched) = call(http.get(url(&format!("/customers/{id}")))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);

    // PATCH without a mask changes only what the body sets.
    let (status, patched) = call(
        http.patch(url(&format!("/customers/{id}")))
            .json(&json!({"name": "Rest Renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Rest Renamed");
    assert_eq!(patched["phone"], "+1 555 0100");

    // With update_mask a field can be cleared.
    let (status, cleared) = call(
        http.patch(url(&format!("/customers/{id}?update_mask=phone")))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["phone"], "", "primitive fields are always printed");
    assert_eq!(cleared["name"], "Rest Renamed");

    let (status, empty) = call(http.delete(url(&format!("/customers/{id}")))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty, json!({}));

    let (status, gone) = call(http.get(url(&format!("/customers/{id}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&gone, 5);
    assert_eq!(
        gone["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ResourceInfo"
    );
}

#[tokio::test]
async fn product_crud_and_category_filter() {
    let http = client();
    let suffix = unique_suffix();
    let category = format!("e2e-{suffix}");
    let mut ids = Vec::new();
    for n in 0..3 {
        let (status, created) = call(http.post(url("/products")).json(&json!({
            "name": format!("Widget {n}"),
            "sku": format!("E2E-{suffix}-{n}"),
            "description": "made by the e2e suite",
            "price_minor_units": 1999 + n,
            "currency_code": "EUR",
            "stock_quantity": n,
            "category": category,
        })))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        // proto3 JSON prints int64 as a string, int32 as a number.
        assert_eq!(created["price_minor_units"], (1999 + n).to_string());
        assert_eq!(created["stock_quantity"], n);
        ids.push(created["id"].as_str().unwrap().to_owned());
    }

    // Page through the category two at a time: every product exactly once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = call(
            // Page tokens are base64url: safe in a query string as they are.
            http.get(url(&format!(
                "/products?category={category}&page_size=2&page_token={token}"
            ))),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for product in page["products"].as_array().unwrap() {
            assert_eq!(product["category"], category.as_str());
            seen.push(product["id"].as_str().unwrap().to_owned());
        }
        token = page["next_page_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ids);

    let (status, patched) = call(
        http.patch(url(&format!(
            "/products/{}?update_mask=stock_quantity",
            ids[2]
        )))
        .json(&json!({"stock_quantity": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["stock_quantity"], 0);

    for id in &ids {
        let response = http
            .delete(url(&format!("/products/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn validation_errors_are_400_with_field_violations() {
    let (status, body) = call(
        client()
            .post(url("/customers"))
            .json(&json!({"name": "  ", "email": "not-an-email"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 3);
    let detail = &body["details"][0];
    assert_eq!(detail["@type"], "type.googleapis.com/google.rpc.BadRequest");
    let fields: Vec<&str> = detail["field_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["customer.name", "customer.email"]);

    let (status, body) = call(client()
            .post(url("/products"))
            .json(&json!({"name": "Bad", "sku": format!("NEG-{}", unique_suffix()), "price_minor_units": -1, "currency_code": "USD"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 3);

    let (status, body) = call(client().get(url("/customers?page_size=-1"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 3);

    let (status, body) = call(client().get(url("/customers?page_token=garbage"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 3);
}

#[tokio::test]
async fn duplicate_email_is_409() {
    let http = client();
    let customer =
        json!({"name": "Twice", "email": format!("twice-{}@example.com", unique_suffix())});
    let (status, first) = call(http.post(url("/customers")).json(&customer)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(http.post(url("/customers")).json(&customer)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, 6);
    let id = first["id"].as_str().unwrap();
    http.delete(url(&format!("/customers/{id}")))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn gateway_errors_are_json_too() {
    let http = client();
    // A path no method maps to: 404, not 415 or 503.
    let (status, body) = call(http.get(url("/nope"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 5);

    // A method the API does not map on an existing path: 404, consistently.
    let (status, body) = call(http.put(url("/customers/cus_000001")).json(&json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 5);

    // Unknown query parameters are rejected rather than silently ignored.
    let (status, body) = call(http.get(url("/customers?pagesize=5"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 3);
    assert!(
        body["message"].as_str().unwrap().contains("pagesize"),
        "{body}"
    );

    // Malformed JSON.
    let (status, body) = call(
        http.post(url("/customers"))
            .header("content-type", "application/json")
            .body("{\"name\":"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 3);
}
