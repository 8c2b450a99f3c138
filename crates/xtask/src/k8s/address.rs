//! Where `smoke` (and a user) reaches the deployed gateway: the
//! LoadBalancer address the cluster reports if this machine reaches it
//! (Docker Desktop publishes on localhost), else a port-forward to the
//! Envoy Service (kind and the local cluster). Never a blind
//! localhost:8080: that may be the local stack (`just up`), not the cluster.

use std::{
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    path::Path,
    time::Duration,
};

use super::{
    EG_NAMESPACE, Error, GATEWAY, NAMESPACE, Result, cmd::kubectl, envoy_selector, read,
    remove_file, wait_until, write,
};

/// Where the address is recorded for `smoke`.
pub const ADDRESS_FILE: &str = "gateway-address";
const PID_FILE: &str = "port-forward.pid";
const DEFAULT_LOCAL_PORT: u16 = 18080;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// host:port, straight.
    Direct(String),
    /// Through `kubectl port-forward`.
    PortForward,
}

/// The Gateway's reported address if it answers, else a port-forward.
pub fn choose(status_host: &str, port: u16, reachable: impl Fn(&str) -> bool) -> Route {
    let host = status_host.trim();
    if host.is_empty() {
        return Route::PortForward;
    }
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    if reachable(&addr) {
        Route::Direct(addr)
    } else {
        Route::PortForward
    }
}

/// The local port of the port-forward (GATEWAY_LOCAL_PORT, default 18080).
pub fn local_port(env: Option<&str>) -> Result<u16> {
    match env.map(str::trim) {
        None | Some("") => Ok(DEFAULT_LOCAL_PORT),
        Some(v) => v
            .parse()
            .map_err(|err| Error::parse(format!("GATEWAY_LOCAL_PORT={v}"), err)),
    }
}

/// An HTTP server answers at `addr` (any status will do): a port-forward
/// accepts connections before its tunnel works, so a connect is not enough.
pub fn reachable(addr: &str) -> bool {
    let Some(sock) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let timeout = Duration::from_secs(3);
    let Ok(mut stream) = TcpStream::connect_timeout(&sock, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET /customers HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// Finds (or opens) a reachable gateway address and records it in `work`.
pub fn find_and_record(work: &Path) -> Result<String> {
    let gateway = |path: &str| {
        kubectl(NAMESPACE)
            .args(["get", "gateway", GATEWAY, "-o"])
            .arg(format!("jsonpath={path}"))
            .read()
    };
    let port = gateway("{.spec.listeners[0].port}")?;
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|err| Error::parse(format!("gateway {GATEWAY} listener port {port:?}"), err))?;
    let host = gateway("{.status.addresses[0].value}")?;
    let addr = match choose(&host, port, reachable) {
        Route::Direct(addr) => {
            println!("gateway: http://{addr} (gRPC and REST)");
            addr
        }
        Route::PortForward => port_forward(work, port)?,
    };
    write(&work.join(ADDRESS_FILE), format!("{addr}\n"))?;
    Ok(addr)
}

fn port_forward(work: &Path, port: u16) -> Result<String> {
    let service = kubectl(EG_NAMESPACE)
        .args(["get", "service", "-o", "name", "-l", &envoy_selector()])
        .read()?;
    let service = service
        .lines()
        .next()
        .ok_or_else(|| {
            Error::Check(format!(
                "no Envoy Service for gateway {GATEWAY} in {EG_NAMESPACE}"
            ))
        })?
        .to_owned();
    stop_port_forward(work)?;
    let local = local_port(std::env::var("GATEWAY_LOCAL_PORT").ok().as_deref())?;
    let log = work.join("port-forward.log");
    let child = kubectl(EG_NAMESPACE)
        .args(["port-forward", &service, &format!("{local}:{port}")])
        .spawn_detached(&log)?;
    write(&work.join(PID_FILE), child.id().to_string())?;
    let addr = format!("127.0.0.1:{local}");
    wait_until(
        "the port-forward",
        Duration::from_secs(30),
        Duration::from_secs(1),
        || Ok(reachable(&addr)),
    )
    .map_err(|err| {
        Error::Check(format!(
            "port-forward failed: {err}\n{}",
            read(&log).unwrap_or_default()
        ))
    })?;
    println!(
        "gateway: http://{addr} (port-forward to {service}, pid {})",
        child.id()
    );
    Ok(addr)
}

/// Ends the port-forward a previous deploy left, if any.
pub fn stop_port_forward(work: &Path) -> Result<()> {
    let pid_file = work.join(PID_FILE);
    if let Ok(pid) = read(&pid_file) {
        // Gone already is fine: the point is that it is gone.
        let _ = super::cmd::cmd("kill").arg(pid.trim()).output();
    }
    remove_file(&pid_file)
}

/// Forgets the gateway: no port-forward, no recorded address.
pub fn forget(work: &Path) -> Result<()> {
    stop_port_forward(work)?;
    remove_file(&work.join(ADDRESS_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn no_reported_address_means_port_forward() {
        assert_eq!(
            choose("", 8080, |_| panic!("nothing to probe")),
            Route::PortForward
        );
        assert_eq!(choose("  \n", 8080, |_| true), Route::PortForward);
    }

    #[test]
    fn a_reported_address_is_used_only_if_it_answers() {
        assert_eq!(
            choose("localhost", 8080, |a| a == "localhost:8080"),
            Route::Direct("localhost:8080".into())
        );
        assert_eq!(choose("172.18.0.10", 8080, |_| false), Route::PortForward);
        assert_eq!(
            choose("fd00::1", 80, |a| a == "[fd00::1]:80"),
            Route::Direct("[fd00::1]:80".into())
        );
    }

    #[test]
    fn local_port_defaults_and_validates() {
        assert_eq!(local_port(None).unwrap(), 18080);
        assert_eq!(local_port(Some("")).unwrap(), 18080);
        assert_eq!(local_port(Some("28080")).unwrap(), 28080);
        assert!(local_port(Some("http")).is_err());
        assert!(local_port(Some("70000")).is_err());
    }

    #[test]
    fn reachable_wants_an_http_answer() {
        // Accepts but never answers HTTP (a port-forward with a broken tunnel).
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (s, _) = silent.accept().unwrap();
            drop(s);
        });
        assert!(!reachable(&silent_addr));
        t.join().unwrap();

        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let http_addr = http.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = http.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert!(reachable(&http_addr));
        t.join().unwrap();

        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        assert!(!reachable(&closed));
        assert!(!reachable("not an address"));
    }
}
