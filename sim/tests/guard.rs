//! The control API's defences over a raw loopback socket: a foreign `Host` (DNS rebinding), a
//! foreign `Origin`, `Sec-Fetch-Site: cross-site`, a non-JSON change, and a client that sends
//! half a header.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{admin, start, start_with};
use flowcat_sim::Options;
/// Writes `request` on a fresh blocking connection (off the runtime, which serves the simulator)
/// and reads until the server closes it, or for at most five seconds.
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream.write_all(&request).expect("write");
        let mut answer = Vec::new();
        // A read that times out leaves what arrived so far; the callers check for it.
        let _ = stream.read_to_end(&mut answer);
        answer
    })
    .await
    .expect("task")
}

/// Sends `head` (request line and headers, without the blank line) and `body`; the status.
async fn raw(addr: SocketAddr, head: &str, body: &str) -> u16 {
    let request = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let answer = exchange(addr, request.into_bytes()).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn only_a_loopback_host_reaches_the_control_api() {
    let sim = start().await;
    let addr = sim.addr();
    let port = addr.port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "localhost".to_string()] {
        assert_eq!(raw(addr, &format!("GET /sim/audit HTTP/1.1\r\nHost: {host}"), "").await, 200, "{host}");
    }
    for host in [format!("rebound.evil.example:{port}"), "127.0.0.1.evil.example".to_string()] {
        assert_eq!(raw(addr, &format!("GET /sim/audit HTTP/1.1\r\nHost: {host}"), "").await, 403, "{host}");
    }
}

#[tokio::test]
async fn cross_site_requests_are_refused() {
    let sim = start().await;
    let addr = sim.addr();
    let head = "GET /sim/state HTTP/1.1\r\nHost: 127.0.0.1";
    assert_eq!(raw(addr, &format!("{head}\r\nOrigin: https://evil.example"), "").await, 403);
    assert_eq!(raw(addr, &format!("{head}\r\nOrigin: null"), "").await, 403);
    assert_eq!(raw(addr, &format!("{head}\r\nSec-Fetch-Site: cross-site"), "").await, 403);
    assert_eq!(raw(addr, &format!("{head}\r\nOrigin: http://localhost:5173"), "").await, 200);
}

#[tokio::test]
async fn changes_need_a_json_body_so_simple_posts_cannot_reach_them() {
    let sim = start().await;
    let addr = sim.addr();
    admin(&sim, "POST", "/admin/v1/users", &[("username", "kept")]).await;
    let reset = "POST /sim/reset HTTP/1.1\r\nHost: 127.0.0.1";
    assert_eq!(raw(addr, reset, "").await, 415);
    assert_eq!(raw(addr, &format!("{reset}\r\nContent-Type: text/plain"), "{}").await, 415);
    let form = format!("{reset}\r\nContent-Type: application/x-www-form-urlencoded");
    assert_eq!(raw(addr, &form, "a=b").await, 415);
    let advance = "POST /sim/clock/advance HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain";
    assert_eq!(raw(addr, advance, r#"{"ms":1}"#).await, 415);
    assert_eq!(sim.state().users.len(), 10, "nothing was reset");
    let json = format!("{reset}\r\nContent-Type: application/json");
    assert_eq!(raw(addr, &json, "{}").await, 200);
    assert_eq!(sim.state().users.len(), 9);
}

#[tokio::test]
async fn a_client_that_sends_half_a_header_is_cut_off() {
    let options = Options { header_read_timeout: Duration::from_millis(200), ..Options::default() };
    let sim = start_with(options).await;
    let started = std::time::Instant::now();
    let answer = exchange(sim.addr(), b"GET /sim/stats HTTP/1.1\r\nHost: 127.0".to_vec()).await;
    // The server closes the connection (hyper may first answer 408), well before our 5 s read limit.
    assert!(started.elapsed() < Duration::from_secs(4), "closed by the header timeout: {:?}", started.elapsed());
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // A whole request on a fresh connection is still served.
    assert_eq!(raw(sim.addr(), "GET /sim/stats HTTP/1.1\r\nHost: 127.0.0.1", "").await, 200);
}
