//! Authentication and roles at the gateway, against a real Keycloak.
//!
//! Runs only in `just test-auth` (`test = false` in Cargo.toml, so `cargo
//! test -p e2e` leaves it out): the stack with the
//! auth layer (k8s/overlays/local-auth) and Keycloak on 127.0.0.1:8180, whose
//! address the recipe passes in `E2E_KEYCLOAK`. Without it every test fails:
//! this suite is never skipped silently.
//!
//! Every case is checked on REST (transcoded, so it rides the GRPCRoutes) and
//! on native gRPC: the SecurityPolicies on the two GRPCRoutes cover both.
//! Bad tokens are made here from real ones: claims changed (signature no
//! longer matches), `alg: none`, tokens of another realm (other issuer, other
//! key) or of another client (other audience).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{net::IpAddr, time::Duration};

use api::{
    customer::v1::{
        CreateCustomerRequest, Customer, DeleteCustomerRequest, GetCustomerRequest,
        ListCustomersRequest, UpdateCustomerRequest,
        customer_service_client::CustomerServiceClient,
    },
    product::v1::{ListProductsRequest, product_service_client::ProductServiceClient},
};
use e2e::{fresh_client_ip, grpc_channel, rest_client, unique_suffix, url};
use reqwest::StatusCode;
use serde_json::{Value, json};
use service_testing::reflection_services_v1;
use tonic::{Code, Request};

const ISSUER_PATH: &str = "/realms/envoy-poc";

fn keycloak() -> String {
    std::env::var("E2E_KEYCLOAK")
        .unwrap_or_else(|_| panic!("E2E_KEYCLOAK is not set: run this suite with `just test-auth`"))
}

/// An access token from Keycloak (password grant, the test users' password
/// is their name). Fails the test when Keycloak does not answer.
async fn token_for(realm: &str, client_id: &str, user: &str) -> String {
    let endpoint = format!(
        "{}/realms/{realm}/protocol/openid-connect/token",
        keycloak()
    );
    let response = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "password"),
            ("client_id", client_id),
            ("username", user),
            ("password", user),
        ]))
        .send()
        .await
        .unwrap_or_else(|err| panic!("Keycloak not reachable at {endpoint}: {err}"));
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "token for {user}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A form body; every value here is URL-safe already (names, ids, secrets
/// of letters, digits and dashes), which the assertion keeps true.
fn form(fields: &[(&str, &str)]) -> String {
    for (_, value) in fields {
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{value}"
        );
    }
    fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

async fn token(user: &str) -> String {
    token_for("envoy-poc", "envoy-poc-cli", user).await
}

// JWT parts are base64url without padding (RFC 7515); a few lines here keep
// the suite free of a crypto or encoding dependency.
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(B64URL[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn b64url_decode(text: &str) -> Vec<u8> {
    let sextets: Vec<u32> = text
        .bytes()
        .map(|c| B64URL.iter().position(|b| *b == c).expect("base64url") as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in sextets.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, s| acc << 6 | s) << (6 * (4 - chunk.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&b64url_decode(part)).unwrap()
}

fn encode(value: &Value) -> String {
    b64url_encode(&serde_json::to_vec(value).unwrap())
}

/// `token` with its payload changed by `edit`, the signature kept as it was.
fn with_claims(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = decode(parts[1]);
    edit(&mut claims);
    format!("{}.{}.{}", parts[0], encode(&claims), parts[2])
}

// ---- clients -----------------------------------------------------------------

/// A REST call with an optional bearer token: (status, WWW-Authenticate, JSON body).
async fn rest(
    ip: IpAddr,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = rest_client(ip).request(method, url(path));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, challenge, body)
}

fn authorized<T>(message: T, bearer: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = bearer {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

async fn customers(ip: IpAddr) -> CustomerServiceClient<tonic::transport::Channel> {
    CustomerServiceClient::new(grpc_channel(ip).await.unwrap())
}

/// gRPC ListCustomers with an optional token: the status code it ends with.
async fn grpc_list(ip: IpAddr, bearer: Option<&str>) -> (Code, String) {
    let result = customers(ip)
        .await
        .list_customers(authorized(
            ListCustomersRequest {
                page_size: 1,
                ..Default::default()
            },
            bearer,
        ))
        .await;
    match result {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

fn new_customer(tag: &str) -> Customer {
    Customer {
        name: format!("Auth {tag}"),
        email: format!("auth-{tag}-{}@example.com", unique_suffix()),
        ..Default::default()
    }
}

// ---- roles -------------------------------------------------------------------

/// What each role may do, on REST: reads for reader and up, writes for
/// writer and admin, nothing for a user without a role.
#[tokio::test]
async fn roles_decide_what_rest_callers_may_do() {
    let ip = fresh_client_ip();
    let admin = token("carol").await;
    // A customer to read, update and delete, made by the admin.
    let (status, _, created) = rest(
        ip,
        reqwest::Method::POST,
        "/customers",
        Some(json!({"name": "Auth Rest", "email": format!("auth-rest-{}@example.com", unique_suffix())})),
        Some(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // user, may read, may write
    for (user, read, write) in [
        ("alice", true, false),
        ("bob", true, true),
        ("carol", true, true),
        ("dave", false, false),
    ] {
        let bearer = token(user).await;
        let expect = |allowed: bool, method: &reqwest::Method| {
            if !allowed {
                StatusCode::FORBIDDEN
            } else if *method == reqwest::Method::POST {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            }
        };
        for (method, path, body, allowed) in [
            (
                reqwest::Method::GET,
                "/customers?page_size=1".to_owned(),
                None,
                read,
            ),
            (reqwest::Method::GET, format!("/customers/{id}"), None, read),
            (
                reqwest::Method::GET,
                "/products?page_size=1".to_owned(),
                None,
                read,
            ),
            (
                reqwest::Method::POST,
                "/customers".to_owned(),
                Some(
                    json!({"name": "Auth", "email": format!("auth-{user}-{}@example.com", unique_suffix())}),
                ),
                write,
            ),
            (
                reqwest::Method::PATCH,
                format!("/customers/{id}?update_mask=name"),
                Some(json!({"name": format!("Renamed by {user}")})),
                write,
            ),
            (
                reqwest::Method::POST,
                "/products".to_owned(),
                Some(
                    json!({"name": "Auth", "sku": format!("AUTH-{}", unique_suffix()), "price_minor_units": 100, "currency_code": "EUR"}),
                ),
                write,
            ),
        ] {
            let (status, _, body) = rest(ip, method.clone(), &path, body, Some(&bearer)).await;
            assert_eq!(
                status,
                expect(allowed, &method),
                "{user} {method} {path}: {body}"
            );
            if !allowed {
                assert_eq!(
                    body["code"], 7,
                    "PERMISSION_DENIED in the JSON body: {body}"
                );
            }
        }
    }
    // Delete last: alice (reader) may not, bob (writer) may.
    let path = format!("/customers/{id}");
    let (status, _, _) = rest(
        ip,
        reqwest::Method::DELETE,
        &path,
        None,
        Some(&token("alice").await),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = rest(
        ip,
        reqwest::Method::DELETE,
        &path,
        None,
        Some(&token("bob").await),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The same decisions for native gRPC callers: PERMISSION_DENIED instead of 403.
#[tokio::test]
async fn roles_decide_what_grpc_callers_may_do() {
    let ip = fresh_client_ip();
    let mut client = customers(ip).await;
    let mut products = ProductServiceClient::new(grpc_channel(ip).await.unwrap());
    for (user, read, write) in [
        ("alice", true, false),
        ("bob", true, true),
        ("carol", true, true),
        ("dave", false, false),
    ] {
        let bearer = token(user).await;
        let t = Some(bearer.as_str());
        let code = |result: Result<Code, tonic::Status>| match result {
            Ok(code) => code,
            Err(status) => status.code(),
        };
        let want = |allowed: bool| {
            if allowed {
                Code::Ok
            } else {
                Code::PermissionDenied
            }
        };

        let list = client
            .list_customers(authorized(
                ListCustomersRequest {
                    page_size: 1,
                    ..Default::default()
                },
                t,
            ))
            .await
            .map(|_| Code::Ok);
        assert_eq!(code(list), want(read), "{user} ListCustomers");
        let list = products
            .list_products(authorized(
                ListProductsRequest {
                    page_size: 1,
                    ..Default::default()
                },
                t,
            ))
            .await
            .map(|_| Code::Ok);
        assert_eq!(code(list), want(read), "{user} ListProducts");

        let created = client
            .create_customer(authorized(
                CreateCustomerRequest {
                    customer: Some(new_customer(user)),
                },
                t,
            ))
            .await;
        match (&created, write) {
            (Ok(_), true) => {}
            (Err(status), false) => {
                assert_eq!(status.code(), Code::PermissionDenied, "{user}: {status:?}")
            }
            _ => panic!("{user} CreateCustomer: {created:?}"),
        }
        if let Ok(created) = created {
            let created = created.into_inner();
            let id = created.id.clone();
            let get = client
                .get_customer(authorized(GetCustomerRequest { id: id.clone() }, t))
                .await
                .map(|_| Code::Ok);
            assert_eq!(code(get), Code::Ok, "{user} GetCustomer");
            let update = client
                .update_customer(authorized(
                    UpdateCustomerRequest {
                        customer: Some(Customer {
                            name: "Renamed".into(),
                            ..created.clone()
                        }),
                        update_mask: None,
                    },
                    t,
                ))
                .await
                .map(|_| Code::Ok);
            assert_eq!(code(update), Code::Ok, "{user} UpdateCustomer");
            let delete = client
                .delete_customer(authorized(DeleteCustomerRequest { id }, t))
                .await
                .map(|_| Code::Ok);
            assert_eq!(code(delete), Code::Ok, "{user} DeleteCustomer");
        } else {
            // Denied before the service is asked: the id need not exist.
            let delete = client
                .delete_customer(authorized(
                    DeleteCustomerRequest {
                        id: "cus_000001".into(),
                    },
                    t,
                ))
                .await
                .map(|_| Code::Ok);
            assert_eq!(
                code(delete),
                Code::PermissionDenied,
                "{user} DeleteCustomer"
            );
        }
    }
}

/// The confidential client (client credentials, service-to-service) acts
/// with its service account's role: writer.
#[tokio::test]
async fn service_account_token_can_write() {
    let endpoint = format!(
        "{}/realms/envoy-poc/protocol/openid-connect/token",
        keycloak()
    );
    let body: Value = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "envoy-poc-service"),
            ("client_secret", "dev-only-envoy-poc-service-secret"),
        ]))
        .send()
        .await
        .unwrap_or_else(|err| panic!("Keycloak not reachable at {endpoint}: {err}"))
        .json()
        .await
        .unwrap();
    let bearer = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    let created = customers(fresh_client_ip())
        .await
        .create_customer(authorized(
            CreateCustomerRequest {
                customer: Some(new_customer("service")),
            },
            Some(bearer),
        ))
        .await;
    assert!(created.is_ok(), "{created:?}");
}

// ---- authentication ----------------------------------------------------------

/// No token, or a bad one: 401 with a Bearer challenge and a JSON body on
/// REST, UNAUTHENTICATED on gRPC. `why` is Envoy's reason, which it puts in
/// the body and the gRPC message.
async fn assert_rejected(case: &str, bearer: Option<&str>, why: &str) {
    assert_refused(
        case,
        bearer,
        why,
        StatusCode::UNAUTHORIZED,
        Code::Unauthenticated,
    )
    .await;
}

async fn assert_refused(case: &str, bearer: Option<&str>, why: &str, http: StatusCode, grpc: Code) {
    let ip = fresh_client_ip();
    let (status, challenge, body) = rest(
        ip,
        reqwest::Method::GET,
        "/customers?page_size=1",
        None,
        bearer,
    )
    .await;
    assert_eq!(status, http, "{case}: REST {body}");
    let challenge = challenge.unwrap_or_else(|| panic!("{case}: no WWW-Authenticate"));
    assert!(
        challenge.starts_with("Bearer realm="),
        "{case}: {challenge}"
    );
    assert_eq!(
        body["code"], grpc as i32,
        "{case}: {grpc:?} in the JSON body: {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(why),
        "{case}: REST message {message:?}, want {why:?}"
    );

    let (code, message) = grpc_list(ip, bearer).await;
    assert_eq!(code, grpc, "{case}: gRPC {message}");
    assert!(
        message.contains(why),
        "{case}: gRPC message {message:?}, want {why:?}"
    );
    println!("{case}: REST {status} ({challenge}), gRPC {code:?} ({message})");
}

#[test]
fn base64url_round_trips() {
    for input in ["", "a", "ab", "abc", "abcd", "{\"alg\":\"RS256\"}"] {
        assert_eq!(
            b64url_decode(&b64url_encode(input.as_bytes())),
            input.as_bytes()
        );
    }
    assert_eq!(b64url_encode(b"{\"alg\":\"none\"}"), "eyJhbGciOiJub25lIn0");
}

#[tokio::test]
async fn missing_token_is_unauthenticated() {
    assert_rejected("missing token", None, "Jwt is missing").await;
}

#[tokio::test]
async fn expired_token_is_unauthenticated() {
    // A real token whose `exp` lies in the past. Envoy checks the times
    // before the signature, so the reason is the expiry. (A token that
    // simply ages out is refused 60 s after `exp`: Envoy's clock skew.)
    let expired = with_claims(&token("carol").await, |c| {
        let exp = c["exp"].as_i64().unwrap();
        c["exp"] = json!(exp - 3600);
        c["iat"] = json!(exp - 3900);
    });
    assert_rejected("expired token", Some(&expired), "Jwt is expired").await;
}

#[tokio::test]
async fn wrong_issuer_is_unauthenticated() {
    let forged = with_claims(&token("carol").await, |c| {
        c["iss"] = json!("http://127.0.0.1:8180/realms/elsewhere");
    });
    assert_rejected(
        "wrong issuer",
        Some(&forged),
        "Jwt issuer is not configured",
    )
    .await;
}

#[tokio::test]
async fn wrong_audience_is_forbidden() {
    // A genuine token of this realm, for a client without the gateway audience.
    let other_app = token_for("envoy-poc", "other-app", "carol").await;
    let claims = decode(other_app.split('.').nth(1).unwrap());
    assert_ne!(claims["aud"], json!("envoy-poc-gateway"), "{claims}");
    // Envoy's JWT filter answers an audience mismatch with 403, not 401: the
    // token is genuine, just not meant for this gateway.
    assert_refused(
        "wrong audience",
        Some(&other_app),
        "Audiences in Jwt are not allowed",
        StatusCode::FORBIDDEN,
        Code::PermissionDenied,
    )
    .await;
}

#[tokio::test]
async fn tampered_token_is_unauthenticated() {
    // alice (reader) makes herself admin: the signature no longer matches.
    let tampered = with_claims(&token("alice").await, |c| {
        c["realm_access"]["roles"] = json!(["admin"]);
    });
    assert_rejected("tampered claims", Some(&tampered), "Jwt verification fails").await;
}

#[tokio::test]
async fn alg_none_is_unauthenticated() {
    let real = token("carol").await;
    let parts: Vec<&str> = real.split('.').collect();
    let header = encode(&json!({"alg": "none", "typ": "JWT"}));
    // Unsigned, as `alg: none` means: Envoy wants three non-empty parts.
    for unsigned in [
        format!("{header}.{}.", parts[1]),
        format!("{header}.{}", parts[1]),
    ] {
        assert_rejected(
            "alg none, unsigned",
            Some(&unsigned),
            "Jwt is not in the form of Header.Payload.Signature",
        )
        .await;
    }
    // `alg: none` in front of the real signature: not an algorithm the keys allow.
    let relabelled = format!("{header}.{}.{}", parts[1], parts[2]);
    assert_rejected(
        "alg none, signature kept",
        Some(&relabelled),
        "Jwt header [alg] is not supported",
    )
    .await;
}

#[tokio::test]
async fn token_of_another_realm_is_unauthenticated() {
    // A genuine token of realm `other` (same client id, same audience, role
    // admin): another issuer ...
    let other = token_for("other", "envoy-poc-cli", "mallory").await;
    let claims = decode(other.split('.').nth(1).unwrap());
    assert_eq!(claims["aud"], json!("envoy-poc-gateway"), "{claims}");
    assert_rejected(
        "another realm",
        Some(&other),
        "Jwt issuer is not configured",
    )
    .await;
    // ... and relabelled with our issuer, still signed with that realm's key.
    let relabelled = with_claims(&other, |c| {
        c["iss"] = json!(format!("{}{ISSUER_PATH}", keycloak()));
    });
    assert_rejected(
        "another realm's key",
        Some(&relabelled),
        "Jwks doesn't have key to match kid or alg from Jwt",
    )
    .await;
}

/// Reflection stays open (grpcurl list works without a token); health is not
/// routed through the gateway at all.
#[tokio::test]
async fn reflection_needs_no_token() {
    let services = reflection_services_v1(grpc_channel(fresh_client_ip()).await.unwrap())
        .await
        .unwrap();
    assert!(
        services.iter().any(|s| s == "customer.v1.CustomerService"),
        "{services:?}"
    );
}

// ---- per-user rate limit -----------------------------------------------------

/// Each user has a bucket of its own, next to the per-IP one: from ONE
/// address, erin runs hers dry while frank still gets through; erin stays
/// limited from a fresh address (the bucket follows the user, not the IP),
/// and cannot escape it by sending an x-user-id of her own.
#[tokio::test]
async fn per_user_limit_keeps_users_apart() {
    let ip = fresh_client_ip();
    // erin and frank (readers) serve only this test: the per-user bucket
    // follows the user everywhere, so no other test may spend theirs.
    let (alice, bob) = (token("erin").await, token("frank").await);
    // The per-user limit is global: its count starts again at each minute,
    // so the whole test must fit in one window.
    if e2e::tier() == e2e::Tier::Global {
        e2e::start_of_a_window(Duration::from_secs(20)).await;
    }
    let burst = e2e::Burst::start();
    let mut admitted = 0;
    loop {
        let (status, _, body) = rest(
            ip,
            reqwest::Method::GET,
            "/customers?page_size=1",
            None,
            Some(&alice),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["code"], 8, "{body}");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        admitted += 1;
        assert!(
            admitted <= 2 * e2e::limits::customers_per_user_per_minute(),
            "erin never limited"
        );
    }
    // At most the limit (plus the local tier's refill); fewer when a run in
    // the last minute against the same (reused) stack spent part of it.
    let bound = *burst
        .admits(e2e::limits::customers_per_user_per_minute())
        .end();
    assert!(
        admitted <= bound,
        "erin admitted {admitted}, want at most {bound}"
    );
    // gRPC draws from the same per-user bucket.
    assert_eq!(grpc_list(ip, Some(&alice)).await.0, Code::ResourceExhausted);

    // Same address, other user: through.
    let (status, _, body) = rest(
        ip,
        reqwest::Method::GET,
        "/customers?page_size=1",
        None,
        Some(&bob),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "frank from erin's address: {body}");
    assert_eq!(grpc_list(ip, Some(&bob)).await.0, Code::Ok);

    // Other address, same user: still limited.
    let elsewhere = fresh_client_ip();
    let (status, _, _) = rest(
        elsewhere,
        reqwest::Method::GET,
        "/customers?page_size=1",
        None,
        Some(&alice),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "erin from a fresh address"
    );

    // A forged x-user-id is overwritten by the token's subject.
    let spoofed = rest_client(elsewhere)
        .get(url("/customers?page_size=1"))
        .bearer_auth(&alice)
        .header("x-user-id", format!("not-erin-{}", unique_suffix()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        spoofed.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "x-user-id sent by erin herself"
    );
    println!(
        "per-user limit: erin admitted {admitted}, then 429 (also from a fresh address and with a forged x-user-id); frank 200 from erin's address"
    );
}
