//! Faults of the scale profile (`just test-scale`): two instances of each
//! service on one PostgreSQL, through the gateway. Restarting the instances
//! one after another loses no request and no acknowledged write; a killed
//! database fails calls fast and the services reconnect by themselves; the
//! database, not an instance, decides duplicates and stale etags; SQL
//! metacharacters are data. docs/reliability-faults.md has the figures.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use api::{
    customer::v1::{
        CreateCustomerRequest, Customer, GetCustomerRequest, ListCustomersRequest,
        UpdateCustomerRequest, customer_service_client::CustomerServiceClient,
    },
    product::v1::{ListProductsRequest, product_service_client::ProductServiceClient},
};
use e2e::{
    assert_error, call, fresh_client_ip, grpc_channel,
    load::{
        Addresses, FAIL_FAST, grpc_answer, grpc_failure, is_unavailable, rest_answer, rest_result,
    },
    rest_client, stack, unique_suffix, url,
};
use reqwest::StatusCode;
use serde_json::json;
use tonic::{Code, transport::Channel};

/// After an instance is back, how long Envoy may take to route to it again:
/// one active health check (1 s interval) plus margin.
const SETTLE: Duration = Duration::from_secs(3);
/// The services' own ports (not the gateway): customer-service's two
/// instances.
const CUSTOMER_INSTANCES: [u16; 2] = [50051, 50061];
/// Every service instance of the profile, in the order a rolling update
/// restarts them.
const SERVICES: [&str; 4] = [
    "customer-service-2",
    "customer-service",
    "product-service-2",
    "product-service",
];

async fn blocking(f: impl FnOnce() -> Result<(), e2e::TestError> + Send + 'static) {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap()
        .unwrap_or_else(|err| panic!("{err}"));
}

/// A customer-service instance directly, not through the gateway.
async fn instance(port: u16) -> CustomerServiceClient<Channel> {
    let channel = service_testing::channel(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    CustomerServiceClient::new(channel)
}

/// One worker's clients, renewed with its address.
struct Clients {
    addresses: Addresses,
    http: reqwest::Client,
    customers: Option<CustomerServiceClient<Channel>>,
    products: Option<ProductServiceClient<Channel>>,
}

impl Clients {
    fn new() -> Self {
        let addresses = Addresses::new();
        let http = rest_client(addresses.current());
        Self {
            addresses,
            http,
            customers: None,
            products: None,
        }
    }

    fn rotate(&mut self) {
        let (ip, fresh) = self.addresses.for_next_call();
        if fresh {
            self.http = rest_client(ip);
            self.customers = None;
            self.products = None;
        }
    }

    async fn customers(&mut self) -> Result<&mut CustomerServiceClient<Channel>, String> {
        if self.customers.is_none() {
            let channel = grpc_channel(self.addresses.current())
                .await
                .map_err(|e| e.to_string())?;
            self.customers = Some(CustomerServiceClient::new(channel));
        }
        Ok(self.customers.as_mut().unwrap())
    }

    async fn products(&mut self) -> Result<&mut ProductServiceClient<Channel>, String> {
        if self.products.is_none() {
            let channel = grpc_channel(self.addresses.current())
                .await
                .map_err(|e| e.to_string())?;
            self.products = Some(ProductServiceClient::new(channel));
        }
        Ok(self.products.as_mut().unwrap())
    }
}

/// One step of the mixed load: which kind of call worker `w` makes as its
/// `n`th. Returns the acknowledged create (id, email), if it was one.
async fn mixed_call(
    clients: &mut Clients,
    w: usize,
    n: u32,
    last: Option<&(String, String)>,
) -> Result<Option<(String, String)>, String> {
    clients.rotate();
    let email = format!("roll-{}@example.com", unique_suffix());
    match (w + n as usize) % 8 {
        // Reads of this worker's last acknowledged write, from whichever
        // instance Envoy picks.
        6 | 7 if last.is_some() => {
            let (id, email) = last.unwrap();
            let got = if n.is_multiple_of(2) {
                rest_result(
                    clients
                        .http
                        .get(url(&format!("/customers/{id}")))
                        .send()
                        .await,
                )
                .await?["email"]
                    .as_str()
                    .map(str::to_owned)
            } else {
                Some(
                    clients
                        .customers()
                        .await?
                        .get_customer(GetCustomerRequest { id: id.clone() })
                        .await
                        .map_err(|s| grpc_failure(&s))?
                        .into_inner()
                        .email,
                )
            };
            if got.as_deref() != Some(email.as_str()) {
                return Err(format!("{id}: read {got:?}, wrote {email}"));
            }
            Ok(None)
        }
        0 => {
            let body = rest_result(
                clients
                    .http
                    .post(url("/customers"))
                    .json(&json!({"name": "Rolling Rest", "email": email}))
                    .send()
                    .await,
            )
            .await?;
            let id = body["id"].as_str().ok_or("no id")?.to_owned();
            Ok(Some((id, email)))
        }
        1 => {
            let created = clients
                .customers()
                .await?
                .create_customer(CreateCustomerRequest {
                    customer: Some(Customer {
                        name: "Rolling Grpc".into(),
                        email: email.clone(),
                        ..Default::default()
                    }),
                })
                .await
                .map_err(|s| grpc_failure(&s))?;
            Ok(Some((created.into_inner().id, email)))
        }
        2 => rest_result(clients.http.get(url("/customers?page_size=5")).send().await)
            .await
            .map(|_| None),
        3 => clients
            .customers()
            .await?
            .list_customers(ListCustomersRequest {
                page_size: 5,
                ..Default::default()
            })
            .await
            .map(|_| None)
            .map_err(|s| grpc_failure(&s)),
        4 | 6 => rest_result(clients.http.get(url("/products?page_size=5")).send().await)
            .await
            .map(|_| None),
        _ => clients
            .products()
            .await?
            .list_products(ListProductsRequest {
                page_size: 5,
                ..Default::default()
            })
            .await
            .map(|_| None)
            .map_err(|s| grpc_failure(&s)),
    }
}

#[tokio::test]
async fn rolling_restart_of_every_instance_loses_no_request_and_no_write() {
    // Whatever ran before, Envoy's health checks see every instance up.
    tokio::time::sleep(SETTLE).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, acknowledged, failures) = (
                Arc::clone(&stop),
                Arc::clone(&acknowledged),
                Arc::clone(&failures),
            );
            tokio::spawn(async move {
                let mut clients = Clients::new();
                let (mut n, mut slowest, mut last) = (0u32, Duration::ZERO, None);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let result = mixed_call(&mut clients, w, n, last.as_ref()).await;
                    slowest = slowest.max(t.elapsed());
                    match result {
                        Ok(Some(write)) => {
                            last = Some(write.clone());
                            acknowledged.lock().unwrap().push(write);
                        }
                        Ok(None) => {}
                        Err(failure) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{:?} worker {w}: {failure}", started.elapsed())),
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (n, slowest)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut restarts = Vec::new();
    for name in SERVICES {
        let t = Instant::now();
        blocking(move || stack::restart(name)).await;
        restarts.push(format!("{name} {:.2} s", t.elapsed().as_secs_f64()));
        tokio::time::sleep(SETTLE).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut calls, mut slowest) = (0, Duration::ZERO);
    for worker in workers {
        let (n, s) = worker.await.unwrap();
        calls += n;
        slowest = slowest.max(s);
    }
    let failures = failures.lock().unwrap().clone();
    let acknowledged = acknowledged.lock().unwrap().clone();

    // Every acknowledged create is there, whichever instance answers.
    let mut clients = Clients::new();
    let mut lost = Vec::new();
    for (id, email) in &acknowledged {
        clients.rotate();
        let (status, body) = call(clients.http.get(url(&format!("/customers/{id}")))).await;
        if status != StatusCode::OK || body["email"] != email.as_str() {
            lost.push(format!("{id} {email}: {status} {body}"));
        }
    }
    println!(
        "FIGURES scale rolling restart: {calls} calls (4 clients, REST + gRPC creates, gets, lists), \
         {} failed, {} acknowledged creates, {} lost; slowest call {:.0} ms; restarts: {}",
        failures.len(),
        acknowledged.len(),
        lost.len(),
        slowest.as_secs_f64() * 1000.0,
        restarts.join(", ")
    );
    assert!(calls > 200, "too little load to show anything: {calls}");
    assert!(
        acknowledged.len() > 50,
        "too few writes: {}",
        acknowledged.len()
    );
    assert!(
        failures.is_empty(),
        "{} calls failed: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(lost.is_empty(), "lost writes: {lost:#?}");
}

#[tokio::test]
async fn killed_database_fails_fast_then_the_services_reconnect() {
    let ip = fresh_client_ip();
    let http = rest_client(ip);
    let mut grpc = CustomerServiceClient::new(grpc_channel(ip).await.unwrap());
    // A real id: a malformed one is NOT_FOUND without asking the database.
    let (status, existing) =
        call(http.post(url("/customers")).json(
            &json!({"name": "Db Up", "email": format!("dbup-{}@example.com", unique_suffix())}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{existing}");
    let existing = existing["id"].as_str().unwrap().to_owned();

    let services = || SERVICES.map(|name| stack::pid(name).unwrap());
    let before = services();
    let postmaster = stack::pid("postgres").unwrap();
    blocking(|| stack::signal("postgres", "KILL")).await;
    let killed = Instant::now();
    // PostgreSQL's backends run in sessions of their own, so the signal to
    // the postmaster's group spares them: a pooled connection may answer a
    // moment longer, until its backend sees the postmaster gone. From the
    // first UNAVAILABLE on, everything must fail, and fast.
    let mut addresses = Addresses::new();
    let first_failure = loop {
        let polling = rest_client(addresses.for_next_call().0);
        let t = Instant::now();
        let answer = rest_answer(polling.get(url("/customers?page_size=1")).send().await).await;
        if answer != "OK" {
            assert!(is_unavailable(&answer), "{answer}");
            assert!(
                t.elapsed() < FAIL_FAST,
                "slow failure ({:?}): {answer}",
                t.elapsed()
            );
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < FAIL_FAST,
            "calls still succeed {:?} after the kill",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Each kind of call, a few times: every one UNAVAILABLE within FAIL_FAST.
    let mut slowest = Duration::ZERO;
    let mut answers = Vec::new();
    for round in 0..3 {
        let email = format!("dbdown-{round}-{}@example.com", unique_suffix());
        let t = Instant::now();
        let rest_list = http.get(url("/customers?page_size=1")).send().await;
        answers.push((t.elapsed(), rest_answer(rest_list).await));
        let t = Instant::now();
        let rest_create = http
            .post(url("/customers"))
            .json(&json!({"name": "Db Down", "email": email}))
            .send()
            .await;
        answers.push((t.elapsed(), rest_answer(rest_create).await));
        let t = Instant::now();
        let grpc_get = grpc
            .get_customer(GetCustomerRequest {
                id: existing.clone(),
            })
            .await;
        answers.push((t.elapsed(), grpc_answer(grpc_get.map(|_| ()))));
        let t = Instant::now();
        let grpc_create = grpc
            .create_customer(CreateCustomerRequest {
                customer: Some(Customer {
                    name: "Db Down".into(),
                    email: format!("x{email}"),
                    ..Default::default()
                }),
            })
            .await;
        answers.push((t.elapsed(), grpc_answer(grpc_create.map(|_| ()))));
    }
    let down_for = killed.elapsed();

    // Bring PostgreSQL back before asserting, so a failure leaves a working
    // stack. A new postmaster refuses to start while the killed one's pid
    // still exists (its lock file names it), and the killed one lingers as a
    // zombie until init reaps it.
    let reaped = Instant::now();
    while std::path::Path::new(&format!("/proc/{postmaster}")).exists() {
        assert!(
            reaped.elapsed() < Duration::from_secs(10),
            "the killed postmaster {postmaster} is still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    blocking(|| stack::restart("postgres")).await;
    let postgres_back = t.elapsed();
    for (latency, answer) in &answers {
        slowest = slowest.max(*latency);
        assert!(is_unavailable(answer), "expected 503/UNAVAILABLE: {answer}");
        assert!(*latency < FAIL_FAST, "slow failure ({latency:?}): {answer}");
    }
    // The services reconnect by themselves: poll with creates, rotating
    // addresses (a slow recovery must not meet the rate limit).
    let mut tries = 0;
    let recovered = loop {
        let (ip, _) = addresses.for_next_call();
        tries += 1;
        let email = format!("dbback-{}@example.com", unique_suffix());
        let response = rest_client(ip)
            .post(url("/customers"))
            .json(&json!({"name": "Db Back", "email": email}))
            .send()
            .await;
        if rest_answer(response).await == "OK" {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no successful create within 30 s of restarting PostgreSQL ({tries} tries)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "FIGURES database killed: first 503 {:.0} ms after SIGKILL, then {} calls, all \
         503/UNAVAILABLE, slowest {:.0} ms (down {:.1} s); postgres restart (crash recovery) {:.2} s; first successful \
         create {:.0} ms after PostgreSQL was ready ({tries} tries), no service restarted",
        first_failure.as_secs_f64() * 1000.0,
        answers.len(),
        slowest.as_secs_f64() * 1000.0,
        down_for.as_secs_f64(),
        postgres_back.as_secs_f64(),
        recovered.saturating_sub(postgres_back).as_secs_f64() * 1000.0,
    );
    assert!(
        recovered < Duration::from_secs(15),
        "recovery took {recovered:?}"
    );
    assert_eq!(services(), before, "a service instance was restarted");
}

#[tokio::test]
async fn concurrent_duplicates_across_instances_admit_exactly_one() {
    const ATTEMPTS: usize = 40;
    let email = format!("dup-{}@example.com", unique_suffix());
    let clients = [
        instance(CUSTOMER_INSTANCES[0]).await,
        instance(CUSTOMER_INSTANCES[1]).await,
    ];
    let start = Arc::new(tokio::sync::Barrier::new(ATTEMPTS));
    let tasks: Vec<_> = (0..ATTEMPTS)
        .map(|n| {
            let mut client = clients[n % 2].clone();
            let (start, email) = (Arc::clone(&start), email.clone());
            tokio::spawn(async move {
                // Alternate the case: the unique key is the lower-cased email.
                let email = if n % 4 < 2 {
                    email
                } else {
                    email.to_uppercase()
                };
                start.wait().await;
                let result = client
                    .create_customer(CreateCustomerRequest {
                        customer: Some(Customer {
                            name: format!("Dup {n}"),
                            email,
                            ..Default::default()
                        }),
                    })
                    .await;
                (
                    n % 2,
                    result.map(|r| r.into_inner().id).map_err(|s| s.code()),
                )
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut codes = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (instance, Ok(id)) => created.push((instance, id)),
            (_, Err(code)) => codes.push(code),
        }
    }
    println!(
        "FIGURES duplicates across instances: {ATTEMPTS} concurrent creates of one email, half \
         on :{} and half on :{}: {} created (by instance {:?}), {} ALREADY_EXISTS, others {:?}",
        CUSTOMER_INSTANCES[0],
        CUSTOMER_INSTANCES[1],
        created.len(),
        created.iter().map(|(i, _)| i).collect::<Vec<_>>(),
        codes.iter().filter(|c| **c == Code::AlreadyExists).count(),
        codes
            .iter()
            .filter(|c| **c != Code::AlreadyExists)
            .collect::<Vec<_>>(),
    );
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(codes.len(), ATTEMPTS - 1);
    assert!(codes.iter().all(|c| *c == Code::AlreadyExists), "{codes:?}");
}

#[tokio::test]
async fn stale_etag_through_the_other_instance_is_aborted() {
    let [mut one, mut two] = [
        instance(CUSTOMER_INSTANCES[0]).await,
        instance(CUSTOMER_INSTANCES[1]).await,
    ];
    let created = one
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                name: "Etag Start".into(),
                email: format!("etag-{}@example.com", unique_suffix()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let update = |name: &str, etag: &str| UpdateCustomerRequest {
        customer: Some(Customer {
            id: created.id.clone(),
            name: name.into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: None,
    };
    // Both read the same version; the first write wins, on either instance.
    let first = one
        .update_customer(update("Etag First", &created.etag))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(first.etag, created.etag);
    let second = two
        .update_customer(update("Etag Second", &created.etag))
        .await
        .expect_err("a stale etag through the other instance");
    assert_eq!(second.code(), Code::Aborted, "{second:?}");

    // Through the gateway: REST 409 with the JSON error.
    let http = rest_client(fresh_client_ip());
    let (status, body) = call(
        http.patch(url(&format!("/customers/{}", created.id)))
            .json(&json!({"name": "Etag Rest", "etag": created.etag})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, Code::Aborted as i64);
    let (_, current) = call(http.get(url(&format!("/customers/{}", created.id)))).await;
    assert_eq!(current["name"], "Etag First", "a stale write landed");
    assert_eq!(current["etag"], first.etag.as_str());

    // Without an etag: last writer wins, whichever instance.
    two.update_customer(update("No Etag Two", ""))
        .await
        .unwrap();
    let last = one
        .update_customer(update("No Etag One", ""))
        .await
        .unwrap()
        .into_inner();
    let (_, current) = call(http.get(url(&format!("/customers/{}", created.id)))).await;
    assert_eq!(current["name"], "No Etag One");
    assert_eq!(current["etag"], last.etag.as_str());
    println!(
        "FIGURES etag across instances: update with etag on :{} OK, same etag on :{} ABORTED, \
         through the gateway REST 409; without etag the last writer wins",
        CUSTOMER_INSTANCES[0], CUSTOMER_INSTANCES[1]
    );
}

/// Strings PostgreSQL (or a hand-made query) would treat as syntax.
const NASTY: &[&str] = &[
    "O'Brien",
    "\"; DROP TABLE records; --",
    "' OR '1'='1",
    "100% _done_ \\ back\\slash",
    "$1 $$ dollar $$",
    "nul\0byte",
    "E'\\x00' /* c */",
];

/// Percent-encodes every byte but ASCII letters and digits (a `+` would be
/// ambiguous in a query string).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn sql_metacharacters_round_trip_literally_through_the_gateway() {
    let http = rest_client(fresh_client_ip());
    let suffix = unique_suffix();
    let mut checked = 0;
    for (i, nasty) in NASTY.iter().enumerate() {
        // The e-mail's local part allows everything but whitespace and
        // control characters; the phone only digits and punctuation.
        let local: String = nasty
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '@')
            .collect();
        let customer = json!({
            "name": nasty,
            "email": format!("{local}{i}{suffix}@example.com"),
        });
        let (status, created) = call(http.post(url("/customers")).json(&customer)).await;
        assert_eq!(status, StatusCode::CREATED, "{customer}: {created}");
        assert_eq!(created["name"], customer["name"]);
        assert_eq!(created["email"], customer["email"]);
        let id = created["id"].as_str().unwrap();
        let (status, fetched) = call(http.get(url(&format!("/customers/{}", encode(id))))).await;
        assert_eq!((status, &fetched), (StatusCode::OK, &created));

        let category = format!("{nasty} {suffix}");
        let product = json!({
            "name": nasty,
            "sku": format!("{nasty}-{i}-{suffix}"),
            "description": nasty,
            "currency_code": "EUR",
            "category": category,
        });
        let (status, created) = call(http.post(url("/products")).json(&product)).await;
        assert_eq!(status, StatusCode::CREATED, "{product}: {created}");
        for field in ["name", "sku", "description", "category"] {
            assert_eq!(created[field], product[field], "{field}");
        }
        let id = created["id"].as_str().unwrap();
        let (status, fetched) = call(http.get(url(&format!("/products/{}", encode(id))))).await;
        assert_eq!((status, &fetched), (StatusCode::OK, &created));
        let (status, listed) = call(http.get(url(&format!(
            "/products?page_size=10&category={}",
            encode(&category)
        ))))
        .await;
        assert_eq!(status, StatusCode::OK, "{category:?}: {listed}");
        assert_eq!(listed["products"], json!([created]), "{category:?}");
        checked += 1;
    }
    // Wildcards are not wildcards: `%` and `_` match only themselves.
    let (status, listed) = call(http.get(url(&format!(
        "/products?page_size=10&category={}",
        encode(&format!("%{suffix}"))
    ))))
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["products"].as_array().map_or(0, Vec::len),
        0,
        "{listed}"
    );
    println!(
        "FIGURES SQL metacharacters: {checked} strings (quotes, ;, --, %, _, backslash, $$, NUL) \
         round-trip literally in customer name/email and product name/sku/description/category, \
         and as the category filter, through the gateway"
    );
}
