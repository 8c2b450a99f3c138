//! `smoke`: the deployed gateway answers like the local one. gRPC
//! reflection and a call, REST CRUD on /customers through the transcoder,
//! and a burst that must meet the per-route rate limit (429).

use std::path::Path;

use super::{Error, Result, SERVICES, address::ADDRESS_FILE, cmd::cmd, ensure, grpc_service, read};

/// The gateway address: GATEWAY, else what `deploy` recorded.
pub fn gateway(env: Option<&str>, work: &Path) -> Result<String> {
    let addr = match env.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => a.to_owned(),
        None => read(&work.join(ADDRESS_FILE))
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    ensure(!addr.is_empty(), || {
        "no gateway address: run 'just deploy' (or set GATEWAY=host:port)".to_owned()
    })?;
    Ok(addr)
}

/// How many requests the rate-limit burst sends (SMOKE_BURST; 0 skips it,
/// e.g. against a shared stack whose bucket others use). Above the
/// 100/minute limit of the customer route.
pub fn burst_size(env: Option<&str>) -> Result<u32> {
    match env.map(str::trim) {
        None | Some("") => Ok(150),
        Some(v) => v
            .parse()
            .map_err(|err| Error::parse(format!("SMOKE_BURST={v}"), err)),
    }
}

/// An HTTP answer: status and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// curl's output with `-w '\n%{http_code}'`: the body, then the status.
pub fn parse_curl(output: &str) -> Result<Response> {
    let (body, code) = output.rsplit_once('\n').unwrap_or(("", output));
    let status = code
        .trim()
        .parse()
        .map_err(|err| Error::parse(format!("curl status {code:?}"), err))?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}

/// The `id` of a created resource (the transcoder's JSON).
pub fn created_id(body: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One request through the gateway with curl (status 0: no answer).
fn http(method: &str, url: &str, body: Option<&str>) -> Result<Response> {
    let mut c = cmd("curl").args([
        "-sS",
        "--max-time",
        "5",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        url,
    ]);
    if let Some(body) = body {
        c = c.args(["-H", "content-type: application/json", "-d", body]);
    }
    let out = c.output()?;
    parse_curl(&String::from_utf8_lossy(&out.stdout))
}

fn expect(what: &str, response: &Response, status: u16) -> Result<()> {
    ensure(response.status == status, || {
        format!(
            "SMOKE: {what}: HTTP {}, want {status}: {}",
            response.status, response.body
        )
    })
}

pub fn run(addr: &str, burst: u32) -> Result<()> {
    println!("==> gateway {addr}");
    let services = cmd("grpcurl").args(["-plaintext", addr, "list"]).read()?;
    print!("{services}");
    for svc in SERVICES.iter().copied() {
        let name = grpc_service(svc);
        ensure(services.lines().any(|l| l.trim() == name), || {
            format!("SMOKE: reflection does not list {name}")
        })?;
    }
    cmd("grpcurl")
        .args(["-plaintext", "-d", r#"{"page_size": 2}"#, addr])
        .arg("customer.v1.CustomerService/ListCustomers")
        .read()?;
    println!("gRPC ListCustomers: ok");

    let base = format!("http://{addr}/customers");
    let created = http(
        "POST",
        &base,
        Some(r#"{"name":"Smoke Test","email":"smoke@example.com"}"#),
    )?;
    expect("POST /customers", &created, 201)?;
    let id = created_id(&created.body).ok_or_else(|| {
        Error::Check(format!(
            "SMOKE: POST /customers returned no id: {}",
            created.body
        ))
    })?;
    println!("POST /customers -> {id}");
    let one = format!("{base}/{id}");
    expect(
        &format!("GET /customers/{id}"),
        &http("GET", &one, None)?,
        200,
    )?;
    let patched = http(
        "PATCH",
        &format!("{one}?update_mask=name"),
        Some(r#"{"name":"Smoke Test 2"}"#),
    )?;
    expect(&format!("PATCH /customers/{id}"), &patched, 200)?;
    ensure(patched.body.contains("Smoke Test 2"), || {
        format!(
            "SMOKE: PATCH /customers/{id} did not rename: {}",
            patched.body
        )
    })?;
    expect(
        &format!("DELETE /customers/{id}"),
        &http("DELETE", &one, None)?,
        200,
    )?;
    expect("GET after DELETE", &http("GET", &one, None)?, 404)?;
    println!("REST CRUD /customers: ok");

    if burst == 0 {
        println!("rate limit: burst skipped (SMOKE_BURST=0)");
    } else {
        let url = format!("{base}?page_size=1");
        let mut limited = 0;
        for _ in 0..burst {
            if http("GET", &url, None)?.status == 429 {
                limited += 1;
            }
        }
        ensure(limited > 0, || {
            format!("SMOKE: {burst}-request burst: no 429")
        })?;
        println!("rate limit: {limited} of {burst} burst requests got 429");
    }
    println!("smoke: ok");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_address_from_env_or_file() {
        let dir = std::env::temp_dir().join(format!("xtask-smoke-{}", std::process::id()));
        crate::k8s::fresh_dir(&dir).unwrap();
        assert!(gateway(None, &dir).is_err(), "nothing recorded");
        crate::k8s::write(&dir.join(ADDRESS_FILE), "127.0.0.1:18080\n").unwrap();
        assert_eq!(gateway(None, &dir).unwrap(), "127.0.0.1:18080");
        assert_eq!(gateway(Some(""), &dir).unwrap(), "127.0.0.1:18080");
        assert_eq!(
            gateway(Some("localhost:8080"), &dir).unwrap(),
            "localhost:8080"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn burst_defaults_above_the_limit() {
        assert_eq!(burst_size(None).unwrap(), 150);
        assert_eq!(burst_size(Some("0")).unwrap(), 0);
        assert!(burst_size(Some("-1")).is_err());
    }

    #[test]
    fn curl_output_is_body_then_status() {
        assert_eq!(
            parse_curl("{\"id\": \"cus_1\"}\n200").unwrap(),
            Response {
                status: 200,
                body: "{\"id\": \"cus_1\"}".into()
            }
        );
        assert_eq!(
            parse_curl("line1\nline2\n404").unwrap().body,
            "line1\nline2"
        );
        assert_eq!(
            parse_curl("000").unwrap(),
            Response {
                status: 0,
                body: String::new()
            }
        );
        assert!(parse_curl("").is_err());
    }

    #[test]
    fn created_ids_come_from_the_json() {
        assert_eq!(
            created_id(r#"{"id": "cus_000101", "name": "x"}"#).as_deref(),
            Some("cus_000101")
        );
        assert_eq!(created_id(r#"{"id": ""}"#), None);
        assert_eq!(created_id("upstream connect error"), None);
    }
}
