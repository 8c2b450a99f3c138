//! Readiness checks: a port that accepts, an HTTP status, a command's exit.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    path::Path,
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::profile::Ready;

const CONNECT: Duration = Duration::from_millis(500);
const ANSWER: Duration = Duration::from_secs(3);

/// Whether 127.0.0.1:port accepts a connection.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), CONNECT).is_ok()
}

/// One check, bounded in time.
pub fn check(ready: &Ready, root: &Path) -> bool {
    match ready {
        Ready::Tcp { port } => port_open(*port),
        Ready::Http { url, status } => http_status(url) == Some(*status),
        Ready::Command { argv } => command_succeeds(argv, root),
    }
}

/// For messages: what is waited for.
pub fn describe(ready: &Ready) -> String {
    match ready {
        Ready::Tcp { port } => format!("127.0.0.1:{port} to accept connections"),
        Ready::Http { url, status } => format!("GET {url} to answer {status}"),
        Ready::Command { argv } => format!("`{}` to exit 0", argv.join(" ")),
    }
}

/// The status of a plain-HTTP GET (HTTP/1.1, no redirects), or None when
/// nothing answers.
pub fn http_status(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = address.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT).ok()?;
    stream.set_read_timeout(Some(ANSWER)).ok()?;
    stream.set_write_timeout(Some(ANSWER)).ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: stack\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = Vec::new();
    let mut buf = [0; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    // "HTTP/1.1 200 OK"
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    words.next()?.starts_with("HTTP/").then_some(())?;
    words.next()?.parse().ok()
}

fn command_succeeds(argv: &[String], root: &Path) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let Ok(mut child) = Command::new(program)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + ANSWER;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_the_status_line() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            // The whole request: closing with unread bytes would reset the
            // connection under the client's read.
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            let request = String::from_utf8_lossy(&request).into_owned();
            conn.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            request
        });
        let url = format!("http://127.0.0.1:{port}/customers?page_size=1");
        assert_eq!(http_status(&url), Some(401));
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /customers?page_size=1 HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(http_status(&format!("http://127.0.0.1:{port}/")), None);
        assert!(!port_open(port));
    }

    #[test]
    fn command_readiness_is_the_exit_status() {
        let root = Path::new("/");
        assert!(check(
            &Ready::Command {
                argv: vec!["true".into()]
            },
            root
        ));
        assert!(!check(
            &Ready::Command {
                argv: vec!["false".into()]
            },
            root
        ));
        assert!(!check(
            &Ready::Command {
                argv: vec!["surely-no-such-command".into()]
            },
            root
        ));
    }
}
