//! Port 80 of a node with a public host: the answers to ACME HTTP-01 challenges
//! (`/.well-known/acme-challenge/<token>`), and for everything else a permanent redirect
//! (308, so a webhook's POST stays a POST) to the same path and query on https. The
//! redirect goes to the node's own public URL, never to the request's `Host`, so it cannot
//! be bent towards another site.

use super::Challenges;
use actix_web::dev::ServerHandle;
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use std::sync::Arc;

/// Where the redirect sends browsers: the node's public https URL, without a trailing `/`.
struct HttpsBase(String);

/// The running port-80 server.
pub struct Redirect {
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Redirect {
    /// Stops it (deprovisioning).
    pub async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.task.await;
    }
}

/// Serves `listener` in the current runtime.
pub fn start(
    challenges: Arc<Challenges>,
    https_base: &str,
    listener: std::net::TcpListener,
) -> anyhow::Result<Redirect> {
    let challenges = web::Data::from(challenges);
    let base = web::Data::new(HttpsBase(https_base.trim_end_matches('/').to_owned()));
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(challenges.clone())
            .app_data(base.clone())
            .wrap(
                outpost_common::headers::security_headers(crate::web::console::CSP)
                    .into_iter()
                    .fold(
                        actix_web::middleware::DefaultHeaders::new(),
                        actix_web::middleware::DefaultHeaders::add,
                    ),
            )
            .route(
                "/.well-known/acme-challenge/{token}",
                web::get().to(challenge),
            )
            .default_service(web::to(to_https))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Redirect { handle, task })
}

async fn challenge(token: web::Path<String>, challenges: web::Data<Challenges>) -> HttpResponse {
    match challenges.get(&token) {
        Some(key_authorization) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(key_authorization),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn to_https(req: HttpRequest, base: web::Data<HttpsBase>) -> HttpResponse {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    // An absolute-form request target (`GET http://elsewhere/ HTTP/1.1`) still only
    // contributes its path: the host is always ours.
    let target = if target.starts_with('/') {
        target
    } else {
        "/".to_owned()
    };
    HttpResponse::PermanentRedirect()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("{}{target}", base.0),
        ))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;

    #[actix_web::test]
    async fn challenges_are_answered_and_everything_else_goes_to_https() {
        let challenges = web::Data::new(Challenges::default());
        challenges.insert("tok-1", "tok-1.thumb");
        let app = test::init_service(
            actix_web::App::new()
                .app_data(challenges.clone())
                .app_data(web::Data::new(HttpsBase(
                    "https://acme.nodes.example".into(),
                )))
                .route(
                    "/.well-known/acme-challenge/{token}",
                    web::get().to(challenge),
                )
                .default_service(web::to(to_https)),
        )
        .await;
        let r = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/.well-known/acme-challenge/tok-1")
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(test::read_body(r).await, "tok-1.thumb");
        let r = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/.well-known/acme-challenge/other")
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 404);
        challenges.remove("tok-1");
        let r = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/.well-known/acme-challenge/tok-1")
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 404, "no longer answered once removed");
        let r = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/channels/telegram/webhook?x=1")
                .insert_header(("host", "evil.example"))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 308);
        assert_eq!(
            r.headers().get("location").expect("location"),
            "https://acme.nodes.example/channels/telegram/webhook?x=1"
        );
    }
}
