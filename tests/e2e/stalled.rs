//! Requests whose body never arrives (issue 18, defect 7): a client that sends the head
//! and a few bytes of a body, then nothing, is answered 408 `request_timeout`
//! within the body timeout, on the UI listener (plain TCP) and on the gateway (TLS). The
//! timeout is 1 s here; the client gives up after 8 s, which is the failure.

use crate::gateway::bundle_for;
use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(8);

fn start() -> Cp {
    Cp::start_with(Opts {
        provisioner: "manual",
        env: vec![("OUTPOST_BODY_TIMEOUT_SECS", "1".into())],
        ..Opts::default()
    })
}

/// The head of a JSON POST promising 100 bytes of body, and the first of them.
fn stalled_request(path: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n{extra}\r\n{{\"name\": "
    )
}

/// What the server said before closing, or panics if it said nothing within [`GIVE_UP`].
fn answer(mut s: impl Read) -> String {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server held a stalled request for {GIVE_UP:?}")
            }
            // A reset (or a TLS close without notify) is a close.
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn host_port(url: &str) -> String {
    url.rsplit("://")
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned()
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_on_the_ui_listener() {
    let cp = start();
    let token = cp.api_token("ops@acme.test");
    let addr = host_port(&cp.ui);
    let said = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(GIVE_UP)).unwrap();
        let auth = format!("Authorization: Bearer {token}\r\n");
        s.write_all(stalled_request("/api/v1/workspaces", &auth).as_bytes())
            .unwrap();
        answer(s)
    })
    .await
    .unwrap();
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_on_the_gateway() {
    let cp = start();
    let api = Api::new(&cp, "ops@acme.test");
    let (_, bundle) = bundle_for(&cp, &api, "Delta Clinic").await;
    let addr = host_port(&cp.gateway);
    let said = tokio::task::spawn_blocking(move || {
        let mut roots = rustls::RootCertStore::empty();
        for c in outpost_pki::pem_to_certs(&bundle.ca_pem).unwrap() {
            roots.add(c).unwrap();
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let host = addr.rsplit_once(':').unwrap().0.to_owned();
        let name = rustls::pki_types::ServerName::try_from(host).unwrap();
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(GIVE_UP)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(stalled_request("/v1/enroll", "").as_bytes())
            .unwrap();
        tls.flush().unwrap();
        answer(tls)
    })
    .await
    .unwrap();
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
}
