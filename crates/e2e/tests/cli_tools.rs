//! The commands the README prints, run for real: grpcurl and curl against
//! the gateway (tools from `just tools`, on PATH under just).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

use e2e::gateway_url;

fn gateway_authority() -> String {
    gateway_url().trim_start_matches("http://").to_owned()
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run {program} (run under `just`, after `just tools`): {err}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn grpcurl_lists_and_describes_both_services_through_the_gateway() {
    let gateway = gateway_authority();
    let listed = run("grpcurl", &["-plaintext", &gateway, "list"]);
    for service in [
        api::customer::v1::SERVICE_NAME,
        api::product::v1::SERVICE_NAME,
    ] {
        assert!(
            listed.lines().any(|l| l == service),
            "{service} not in:\n{listed}"
        );
    }
    let described = run(
        "grpcurl",
        &[
            "-plaintext",
            &gateway,
            "describe",
            api::product::v1::SERVICE_NAME,
        ],
    );
    assert!(described.contains("rpc ListProducts"), "{described}");

    let page = run(
        "grpcurl",
        &[
            "-plaintext",
            "-d",
            r#"{"page_size": 1}"#,
            &gateway,
            "customer.v1.CustomerService/ListCustomers",
        ],
    );
    assert!(page.contains("\"customers\""), "{page}");
}

#[test]
fn curl_gets_json() {
    let body = run(
        "curl",
        &[
            "-sS",
            "--fail-with-body",
            &format!("{}/products?page_size=1", gateway_url()),
        ],
    );
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(page["products"].is_array(), "{page}");
}
