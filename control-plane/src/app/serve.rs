//! Start-up: data directory, database, CA and signing keys, both listeners, background
//! workers. `serve` is what `control-plane serve` runs.

use super::state::{AppState, USER_AGENT};
use crate::config::Config;
use crate::gateway;
use crate::http::access::Matcher;
use crate::http::guard;
use crate::http::render as web;
use crate::infra::db;
use crate::infra::mail::Mailer;
use crate::provisioning::Provisioner;
use actix_web::{middleware, web as aw, App, HttpServer};
use outpost_common::fs::write_private;
use outpost_common::rate_limit::KeyedLimiter;
use outpost_crypto::CapabilitySigner;
use outpost_pki::CertificateAuthority;
use std::net::TcpListener;
use std::path::Path;

fn load_or_create_ca(dir: &Path) -> anyhow::Result<CertificateAuthority> {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if crt.exists() && key.exists() {
        return Ok(CertificateAuthority::load(
            &std::fs::read_to_string(&crt)?,
            &std::fs::read_to_string(&key)?,
        )?);
    }
    let (ca, key_pem) = CertificateAuthority::generate("Outpost internal CA")?;
    write_private(&key, key_pem.as_bytes())?;
    std::fs::write(&crt, ca.cert_pem())?;
    tracing::info!(path = %crt.display(), "created internal CA");
    Ok(ca)
}

fn load_or_create_capability_key(dir: &Path) -> anyhow::Result<CapabilitySigner> {
    let path = dir.join("capability.key");
    if path.exists() {
        return Ok(CapabilitySigner::from_pkcs8(&std::fs::read(&path)?)?);
    }
    let (signer, pkcs8) = CapabilitySigner::generate()?;
    write_private(&path, &pkcs8)?;
    Ok(signer)
}

fn load_or_create_fingerprint_key(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join("fingerprint.key");
    if path.exists() {
        return Ok(std::fs::read(&path)?);
    }
    let key = outpost_crypto::random_bytes::<32>();
    write_private(&path, &key)?;
    Ok(key.to_vec())
}

/// Opens the database and runs migrations (`control-plane migrate`).
pub fn migrate(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    db::connect(&config.database_url)?;
    Ok(())
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split("://").nth(1)?;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?.to_owned(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned(),
    };
    Some(host)
}

/// Builds the state, starts the workers and serves both listeners until Ctrl-C.
/// `on_ready` receives the UI URL and the gateway address once both are bound.
pub async fn serve(config: Config, on_ready: impl FnOnce(&str, &str, &str)) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    std::fs::create_dir_all(&config.nodes_dir)?;
    let pool = db::connect(&config.database_url)?;
    let ca = load_or_create_ca(&config.data_dir)?;
    let capability = load_or_create_capability_key(&config.data_dir)?;
    let fingerprint_key = load_or_create_fingerprint_key(&config.data_dir)?;
    {
        // Before any listener: a replica with other keys must not take a single request.
        let mut conn = pool.get()?;
        crate::infra::keys::check(
            &mut conn,
            &[
                ("ca.key", outpost_pki::sha256_hex(&ca.cert_der()?)),
                (
                    "capability.key",
                    outpost_pki::sha256_hex(capability.public_key_b64().as_bytes()),
                ),
                (
                    "fingerprint.key",
                    outpost_pki::sha256_hex(&outpost_crypto::hmac_sign(
                        &fingerprint_key,
                        b"outpost key check v1",
                    )),
                ),
            ],
        )?;
    }

    let body_idle = std::time::Duration::from_secs(config.body_timeout_secs);
    let ui_listener = TcpListener::bind(config.listen)?;
    let gw_listener = gateway::listener(config.gateway_listen)?;
    let ui_addr = ui_listener.local_addr()?;
    let gw_addr = gw_listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{ui_addr}"))
        .trim_end_matches('/')
        .to_owned();
    let gateway_url = config
        .gateway_url
        .clone()
        .unwrap_or_else(|| format!("https://{gw_addr}"));

    let mut names = vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(h) = host_of(&gateway_url) {
        if !names.contains(&h) {
            names.push(h);
        }
    }
    let (chain, key) = ca.issue_server_cert(&names)?;
    let tls = outpost_pki::gateway_server_config(ca.cert_pem(), chain, key)?;

    let http = outpost_common::http::client(USER_AGENT, std::time::Duration::from_secs(5))?;
    let outbound = outpost_common::outbound::Client::new(
        USER_AGENT,
        std::time::Duration::from_secs(5),
        config.outbound_policy(),
        outpost_common::outbound::Redirects::None,
    )?;
    let mailer = Mailer::from_config(&config.mail, &config.data_dir, http.clone(), &public_url)?;
    let provisioner = Provisioner::from_config(&config, http.clone())?;
    let backend = if db::is_postgres(&config.database_url) {
        "postgres".to_owned()
    } else {
        format!("sqlite {}", config.database_url)
    };
    let oauth = crate::oauth::OAuth::new(config.oauth.clone());
    let writers = if db::is_postgres(&config.database_url) {
        gateway::ingest::PG_LANES
    } else {
        1
    };
    let reports = gateway::ingest::Batcher::start(pool.clone(), public_url.clone(), writers)?;
    // Commands queued by other replicas wake this one's long-polls (PostgreSQL).
    let command_notify = crate::infra::wake::CommandNotify::default();
    crate::infra::wake::listen(&config.database_url, command_notify.clone());
    let leader = crate::infra::leader::start(&config.database_url);
    let limits = config.limits;
    let state = aw::Data::new(AppState {
        db: pool,
        reports,
        oauth,
        config,
        public_url: public_url.clone(),
        gateway_url: gateway_url.clone(),
        ca,
        capability,
        mailer,
        provisioner: std::sync::Arc::new(provisioner),
        started_at: db::now(),
        command_notify: command_notify.clone(),
        leader,
        csr_limiter: KeyedLimiter::new(limits.csr_per_sec, limits.csr_per_sec.saturating_mul(60)),
        fingerprint_key,
        api_limiter: KeyedLimiter::new(limits.api_burst, limits.api_per_minute),
        unknown_token_limiter: KeyedLimiter::new(
            crate::accounts::model::UNKNOWN_TOKENS_BURST,
            crate::accounts::model::UNKNOWN_TOKENS_PER_MINUTE,
        ),
        http,
        outbound,
    });

    super::workers::start(&state);

    let https = public_url.starts_with("https://");
    let ui_state = state.clone();
    let ui_routes = std::sync::Arc::new(Matcher::new(super::routes::UI));
    let ui = HttpServer::new(move || {
        let table = ui_routes.clone();
        App::new()
            .app_data(ui_state.clone())
            .app_data(web::json_config())
            .app_data(web::form_config())
            .app_data(web::query_config())
            .app_data(aw::PayloadConfig::new(web::BODY_LIMIT))
            // Method and path only: query strings carry sign-in codes, states and magic
            // link tokens (docs/LOGGING.md).
            .wrap(
                middleware::Logger::new("%a \"%{request}xi\" %s %Dms")
                    .custom_request_replace("request", |r| format!("{} {}", r.method(), r.path()))
                    .exclude("/healthz"),
            )
            .wrap(middleware::from_fn(move |req, next| {
                let table = table.clone();
                async move { guard::check(&table, req, next).await }
            }))
            // Before the guard, whose own lookups read the path: a NUL anywhere is a 400
            // (it reveals nothing about who may see what).
            .wrap(middleware::from_fn(crate::http::text::refuse_nul))
            .wrap(middleware::from_fn(move |req, next| {
                crate::http::deadline::body_deadline(body_idle, req, next)
            }))
            // Outermost, so the answers of the guard and the edge checks (a redirect to
            // sign in, 401, 400, 408) carry the headers too, HSTS included.
            .wrap(web::security_headers(https))
            .configure(super::routes::configure_ui)
    })
    // Nagle's algorithm held a response behind bytes the peer had not acknowledged yet
    // (after a TLS handshake, the session tickets), until the peer's delayed ACK: 40 ms.
    .tcp_nodelay(true)
    .listen(ui_listener)?
    .run();

    let gw_state = state.clone();
    let gateway = HttpServer::new(move || {
        App::new()
            .app_data(gw_state.clone())
            .app_data(web::json_config())
            .app_data(web::query_config())
            .wrap(middleware::from_fn(crate::http::text::refuse_nul))
            .wrap(middleware::Logger::new("%a \"%r\" %s %Dms"))
            .wrap(middleware::from_fn(move |req, next| {
                crate::http::deadline::body_deadline(body_idle, req, next)
            }))
            .configure(super::routes::configure_gateway)
    })
    .on_connect(gateway::capture_peer_cert)
    // Every report on a new connection waited 40 ms for the node's delayed ACK of the
    // session tickets before its answer left (B3's report p50 was 42 ms on an idle machine).
    .tcp_nodelay(true)
    .listen_rustls_0_23(gw_listener, tls)?
    .run();

    on_ready(
        &public_url,
        &gw_addr.to_string(),
        &format!("{backend}; mail: {}", state.mailer.describe()),
    );
    let (a, b) = futures_util::future::join(ui, gateway).await;
    a?;
    b?;
    Ok(())
}

/// Initialises logging to stderr: `text` (default) or `json`; `RUST_LOG` filters.
pub fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}
