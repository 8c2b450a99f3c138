//! The rate limit under 50 concurrent clients on one address, through the
//! gateway. It changes nothing but its own fresh address's bucket, so every
//! stack runs it (`just test-e2e`, the cluster in `just test-cluster`); it
//! lived in faults.rs before that file became `just test-faults`'s alone.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use e2e::{Burst, fresh_client_ip, limits, rest_client, url};
use reqwest::StatusCode;

#[tokio::test]
async fn fifty_clients_on_one_address_get_exactly_the_limit() {
    const CLIENTS: usize = 50;
    let ip = fresh_client_ip();
    let admitted = Arc::new(AtomicU32::new(0));
    let burst = Burst::start();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let admitted = Arc::clone(&admitted);
            // Each client its own connection pool, all from the same address.
            let http = rest_client(ip);
            tokio::spawn(async move {
                loop {
                    let response = http
                        .get(url("/customers?page_size=1"))
                        .send()
                        .await
                        .unwrap();
                    match response.status() {
                        StatusCode::OK => admitted.fetch_add(1, Ordering::SeqCst),
                        StatusCode::TOO_MANY_REQUESTS => break,
                        other => panic!("unexpected {other}"),
                    };
                    assert!(
                        admitted.load(Ordering::SeqCst) <= 2 * limits::customers_per_minute(),
                        "never limited"
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let admitted = admitted.load(Ordering::SeqCst);
    let allowed = burst.admits(limits::customers_per_minute());
    println!(
        "FIGURES rate limit ({:?} tier): {CLIENTS} clients on {ip} admitted {admitted} in {:.0} ms \
         (limit {}, allowed {allowed:?})",
        e2e::tier(),
        burst.elapsed().as_secs_f64() * 1000.0,
        limits::customers_per_minute()
    );
    assert!(
        allowed.contains(&admitted),
        "admitted {admitted}, expected {allowed:?}"
    );
}
