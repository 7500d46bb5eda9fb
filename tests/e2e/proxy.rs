//! The UI behind an https reverse proxy (issue 15; deploy/Caddyfile): with an https
//! public URL every answer carries HSTS, and behind a proxy listed in
//! `--trusted-proxies` rate limits count the client the proxy names in
//! `X-Forwarded-For`, not the proxy (which would otherwise put every user in one bucket);
//! from anyone else the header is ignored.

use crate::harness::*;
use reqwest::Method;

const HSTS: &str = "max-age=63072000; includeSubDomains";

fn cp_with(env: Vec<(&'static str, String)>) -> Cp {
    Cp::start_with(Opts {
        provisioner: "manual",
        env,
        ..Opts::default()
    })
}

/// Where the UI listens. With a public URL of its own the harness's `cp.ui` is that URL,
/// which names no server here; the listener's address is in the log (actix-server says
/// it for the UI first, then for the gateway).
async fn bound_ui(cp: &Cp) -> String {
    wait_for("the UI listener in the log", 10, || async {
        let log = cp.log();
        let line = log.lines().find(|l| l.contains("listening on: "))?;
        let addr = line.rsplit("listening on: ").next()?.trim().to_owned();
        Some(format!("http://{addr}"))
    })
    .await
}

/// Pages, assets, health, the API, errors (404, 401) and redirects: one of each.
async fn answers(cp: &Cp) -> Vec<reqwest::Response> {
    let c = no_redirect_client();
    let base = bound_ui(cp).await;
    let mut out = vec![];
    for (m, path) in [
        (Method::GET, "/"),
        (Method::GET, "/signin"),
        (Method::GET, "/healthz"),
        (Method::GET, "/no-such-page"),
        (Method::GET, "/workspaces"),
        (Method::GET, "/api/v1/workspaces"),
        (Method::GET, "/api/v1/openapi.json"),
        (Method::POST, "/signin"),
    ] {
        out.push(c.request(m, format!("{base}{path}")).send().await.unwrap());
    }
    out
}

#[tokio::test]
async fn an_https_public_url_puts_hsts_on_every_answer() {
    let cp = cp_with(vec![(
        "OUTPOST_PUBLIC_URL",
        "https://outpost.example".into(),
    )]);
    let got = answers(&cp).await;
    assert!(got.iter().any(|r| r.status().is_redirection()));
    assert!(got.iter().any(|r| r.status() == 404));
    for r in got {
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some(HSTS),
            "{} {}",
            r.url(),
            r.status()
        );
    }

    // Over plain http (a fresh clone, local development) there is none: it would pin
    // a name to https that does not serve it.
    let plain = cp_with(vec![]);
    for r in answers(&plain).await {
        assert!(
            r.headers().get("strict-transport-security").is_none(),
            "{}",
            r.url()
        );
    }
}

/// Guesses unknown API tokens "through the proxy" from `client` until refused; returns
/// the statuses.
async fn guesses(cp: &Cp, client: &str, n: usize) -> Vec<u16> {
    let c = no_redirect_client();
    let mut out = vec![];
    for i in 0..n {
        let r = c
            .get(format!("{}/api/v1/workspaces", cp.ui))
            .bearer_auth(format!("op_guess{client}{i:02}"))
            .header("x-forwarded-for", format!("198.51.100.9, {client}"))
            .send()
            .await
            .unwrap();
        out.push(r.status().as_u16());
    }
    out
}

#[tokio::test]
async fn behind_a_trusted_proxy_rate_limits_count_the_real_client() {
    // The test is the proxy: it connects from 127.0.0.1.
    let cp = cp_with(vec![("OUTPOST_TRUSTED_PROXIES", "127.0.0.1,::1".into())]);
    let first = guesses(&cp, "203.0.113.7", 12).await;
    assert_eq!(&first[..10], &[401; 10], "{first:?}");
    assert!(first[10..].iter().all(|s| *s == 429), "{first:?}");
    // Another client behind the same proxy has its own count; the address the first
    // client wrote into the header itself (198.51.100.9) counts for nothing.
    assert_eq!(guesses(&cp, "203.0.113.8", 3).await, [401; 3]);

    // Without the option the header is not believed: everyone is the proxy.
    let cp = cp_with(vec![]);
    let first = guesses(&cp, "203.0.113.7", 12).await;
    assert!(first[10..].iter().all(|s| *s == 429), "{first:?}");
    assert!(guesses(&cp, "203.0.113.8", 1).await == [429]);
}
