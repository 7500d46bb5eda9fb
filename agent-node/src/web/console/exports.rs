//! Console pages: exports of the whole workspace or of one contact, their progress, and
//! the signed download links the node serves itself (see [`crate::domain::exports`]).
//!
//! Creating, listing and deleting exports needs the `exports` scope (admins, owners;
//! see `console::access`). `GET /exports/{id}/download` needs no session: the link's
//! HMAC signature and expiry are its authorization, so it can be handed to the contact
//! an export is about.

use super::access::Nav;
use super::flash::{see_other_done, Done};
use super::{
    human_time, render, valid_id, ConsoleError, ConsoleSession, ConsoleState, WriteSession,
};
use crate::domain::exports::{Download, Export, Exports, Scope};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use std::io::Read as _;

struct Row {
    id: String,
    what: String,
    running: bool,
    percent: i64,
    status: String,
    size: String,
    created: String,
    expires: String,
    link: Option<String>,
    sha256: String,
    deletable: bool,
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "exports_row_only.html")]
struct RowFragment {
    r: Row,
}

/// `12.3 MB`.
pub(crate) fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["bytes", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn row(state: &ConsoleState, e: &Export, contact_name: Option<String>) -> Row {
    let what = match (e.scope.as_str(), contact_name) {
        ("workspace", _) => "Whole workspace".to_owned(),
        (_, Some(name)) => format!("Contact: {name}"),
        (_, None) => "Contact (erased since)".to_owned(),
    };
    let status = match (e.state.as_str(), e.error_code.as_deref()) {
        ("ready", _) => "Ready".to_owned(),
        ("failed", Some("interrupted")) => "Failed: the node restarted while it ran".to_owned(),
        ("failed", _) => "Failed — try again".to_owned(),
        ("expired", Some("contact_erased")) => {
            "Deleted: it held a contact who was erased".to_owned()
        }
        ("expired", Some("deleted")) => "Deleted".to_owned(),
        ("expired", _) => "Expired — file deleted".to_owned(),
        _ => "Running".to_owned(),
    };
    Row {
        id: e.id.clone(),
        what,
        running: e.state == "running",
        percent: e.percent(),
        status,
        size: if e.size_bytes > 0 {
            human_size(e.size_bytes)
        } else {
            "—".into()
        },
        created: human_time(e.created_at),
        expires: match e.state.as_str() {
            "ready" | "running" => human_time(e.expires_at),
            _ => "—".into(),
        },
        link: state
            .exports
            .link(e)
            .map(|path| format!("{}{path}", state.origin)),
        sha256: e.sha256.clone().unwrap_or_default(),
        deletable: matches!(e.state.as_str(), "ready" | "running"),
    }
}

/// Rows with the contact names of data-subject exports (read on the node, shown only
/// in its console).
fn rows(state: &ConsoleState, exports: &[Export]) -> Result<Vec<Row>, ConsoleError> {
    let content = super::inbox::content(state);
    exports
        .iter()
        .map(|e| {
            let name = match &e.contact_id {
                Some(id) => content
                    .contact(id)
                    .map_err(|e| ConsoleError::Internal(e.into()))?
                    .map(|c| c.display_name),
                None => None,
            };
            Ok(row(state, e, name))
        })
        .collect()
}

async fn page(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    let rows = web::block(move || {
        let list = state.exports.list(100)?;
        rows(&state, &list)
    })
    .await??;
    render(&ExportsPage {
        nav: Nav::for_session(&session),
        rows,
    })
}

async fn row_fragment(
    state: web::Data<ConsoleState>,
    _session: ConsoleSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let r = web::block(move || {
        let e = state.exports.get(&id)?.ok_or(ConsoleError::NotFound)?;
        Ok::<_, ConsoleError>(rows(&state, std::slice::from_ref(&e))?.remove(0))
    })
    .await??;
    render(&RowFragment { r })
}

#[derive(Deserialize)]
struct CreateForm {
    ttl_hours: i64,
}

fn ttl(form: &CreateForm) -> Result<i64, ConsoleError> {
    let secs = form.ttl_hours.saturating_mul(3600);
    if (3600..=crate::domain::exports::MAX_TTL_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(ConsoleError::BadRequest(
            "A download link can be valid from 1 hour to 7 days.".into(),
        ))
    }
}

async fn start(
    state: &web::Data<ConsoleState>,
    session: &WriteSession,
    scope: Scope,
    ttl_secs: i64,
) -> Result<HttpResponse, ConsoleError> {
    let exports = state.exports.clone();
    let actor = session.user_id.clone();
    let what = match &scope {
        Scope::Workspace => "workspace",
        Scope::Contact(_) => "contact",
    };
    let id = web::block(move || exports.start(scope, ttl_secs, &actor)).await??;
    tracing::info!(user = %session.user_id, export = %id, scope = what, "export started");
    Ok(see_other_done("/exports", Done::ExportStarted))
}

async fn create(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, ConsoleError> {
    let ttl_secs = ttl(&form)?;
    start(&state, &session, Scope::Workspace, ttl_secs).await
}

async fn create_for_contact(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let ttl_secs = ttl(&form)?;
    let content = super::inbox::content(&state);
    let check = id.clone();
    let exists = web::block(move || content.contact(&check))
        .await?
        .map_err(|e| ConsoleError::Internal(e.into()))?
        .is_some();
    if !exists {
        return Err(ConsoleError::NotFound);
    }
    start(&state, &session, Scope::Contact(id), ttl_secs).await
}

async fn delete(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let exports = state.exports.clone();
    let eid = id.clone();
    web::block(move || exports.expire(&eid, crate::platform::store::now(), Some("deleted")))
        .await??;
    tracing::info!(user = %session.user_id, export = %id, "export deleted");
    Ok(see_other_done("/exports", Done::Deleted))
}

#[derive(Deserialize)]
struct LinkQuery {
    expires: Option<i64>,
    sig: Option<String>,
}

fn link_refused(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    super::error::MessagePage { title, message }.respond(status)
}

/// `GET /exports/{id}/download?expires=…&sig=…`: the zip, decrypted as it streams.
async fn download(
    state: web::Data<ConsoleState>,
    path: web::Path<String>,
    query: Result<web::Query<LinkQuery>, actix_web::Error>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    let forged = || {
        link_refused(
            StatusCode::FORBIDDEN,
            "Link not valid",
            "This download link is not valid on this node. Copy the whole link from the Exports page, or ask for a new one.",
        )
    };
    let (
        Ok(web::Query(LinkQuery {
            expires: Some(expires),
            sig: Some(sig),
        })),
        true,
    ) = (query, valid_id(&id))
    else {
        return Ok(forged());
    };
    let exports: std::sync::Arc<Exports> = state.exports.clone();
    let check_id = id.clone();
    let checked = web::block(move || {
        exports.check_link(&check_id, expires, &sig, crate::platform::store::now())
    })
    .await??;
    let (export, size) = match checked {
        Download::Forged => {
            tracing::info!(export = %id, "export download refused: bad signature");
            return Ok(forged());
        }
        Download::Gone => {
            return Ok(link_refused(
                StatusCode::GONE,
                "Link expired",
                "This download link has expired and the export was deleted. Create a new export in the console.",
            ))
        }
        Download::NotReady => {
            return Ok(link_refused(
                StatusCode::CONFLICT,
                "Not ready yet",
                "This export is still being written. Try again in a moment.",
            ))
        }
        Download::Ready(e, size) => (e, size),
    };
    let exports = state.exports.clone();
    let open_id = id.clone();
    let mut reader = web::block(move || exports.open(&open_id)).await??;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(web::Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break; // the client went away
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading an export failed");
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let date = time::OffsetDateTime::from_unix_timestamp(export.created_at)
        .map(|t| t.date().to_string())
        .unwrap_or_default();
    tracing::info!(export = %id, bytes = size, "export downloaded");
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"outpost-export-{}-{}-{date}.zip\"",
                state.workspace.slug, export.scope
            ),
        ))
        .no_chunking(size)
        .streaming(body))
}

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/exports", web::get().to(page))
        .route("/exports", web::post().to(create))
        .route("/exports/{id}/row", web::get().to(row_fragment))
        .route("/exports/{id}/delete", web::post().to(delete))
        .route("/exports/{id}/download", web::get().to(download))
        .route("/contacts/{id}/export", web::post().to(create_for_contact));
}

#[cfg(test)]
mod tests {
    use crate::web::console::tests::{fixture, sign_in};
    use crate::web::console::{routes, security_headers};
    use actix_web::cookie::Cookie;
    use actix_web::dev::ServiceResponse;
    use actix_web::{http::StatusCode, test as at, App};
    use std::io::Read as _;

    const ORIGIN: &str = "http://acme-dental.localhost:40123";

    fn post_req(uri: &str, form: &str, cookie: &Cookie<'static>) -> at::TestRequest {
        at::TestRequest::post()
            .uri(uri)
            .insert_header(("origin", ORIGIN))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .cookie(cookie.clone())
            .set_payload(form.to_owned())
    }

    macro_rules! post {
        ($uri:expr, $form:expr, $cookie:expr $(,)?) => {
            post_req(&$uri, &$form, &$cookie).to_request()
        };
    }

    async fn body(r: ServiceResponse) -> String {
        String::from_utf8(at::read_body(r).await.to_vec()).expect("utf-8")
    }

    #[actix_web::test]
    async fn members_cannot_export_and_admins_export_download_and_delete() {
        let f = fixture();
        let content = crate::web::console::inbox::content(&f.data);
        let (conv, _) = content
            .ingest(
                "web",
                "visitor-1",
                Some("Ada"),
                "agent-1",
                "CANARY-EXPORT question",
            )
            .expect("seed");
        let app = at::init_service(
            App::new()
                .app_data(f.data.clone())
                .wrap(security_headers())
                .configure(routes),
        )
        .await;

        let member = sign_in!(app, f, &["console", "inbox"]);
        for uri in ["/exports", "/settings/retention"] {
            let r = at::call_service(
                &app,
                at::TestRequest::get()
                    .uri(uri)
                    .cookie(member.clone())
                    .to_request(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{uri}");
            assert!(body(r).await.contains("Ask a workspace owner or admin"));
        }
        let r = at::call_service(&app, post!("/exports", "ttl_hours=24", &member)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);

        let admin = sign_in!(app, f, &["console", "inbox", "settings", "exports"]);
        for bad in ["ttl_hours=0", "ttl_hours=169", "ttl_hours=x", ""] {
            let r = at::call_service(&app, post!("/exports", bad, &admin)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        let r = at::call_service(
            &app,
            post!(
                "/contacts/3f1c2a9e-7b7d-4c1e-9a57-1f0f4f3f2a10/export",
                "ttl_hours=24",
                &admin,
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "unknown contact");
        let r = at::call_service(
            &app,
            post!(
                &format!("/contacts/{}/export", conv.contact_id),
                "ttl_hours=72",
                &admin
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);

        // the export runs in the background; wait for it (bounded)
        let mut export = None;
        for _ in 0..200 {
            let list = f.data.exports.list(10).expect("list");
            if list.first().is_some_and(|e| e.state == "ready") {
                export = list.into_iter().next();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let export = export.expect("export finished");
        assert_eq!(export.ttl_secs, 72 * 3600);
        let page = body(
            at::call_service(
                &app,
                at::TestRequest::get()
                    .uri("/exports")
                    .cookie(admin.clone())
                    .to_request(),
            )
            .await,
        )
        .await;
        assert!(page.contains("Contact: Ada"), "{page}");
        let link = page
            .split("href=\"")
            .find_map(|p| p.split('"').next().filter(|l| l.contains("/download?")))
            .expect("download link on the page")
            .replace("&amp;", "&");
        let path = link
            .strip_prefix(ORIGIN)
            .expect("absolute link on the node");

        // no session needed: the signature is the authorization
        let r = at::call_service(&app, at::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers().get("content-type").expect("type"),
            "application/zip"
        );
        assert_eq!(
            r.headers()
                .get("content-length")
                .expect("length")
                .to_str()
                .expect("ascii"),
            export.size_bytes.to_string()
        );
        let zip_bytes = at::read_body(r).await.to_vec();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).expect("zip");
        let mut messages = String::new();
        zip.by_name("messages.csv")
            .expect("messages")
            .read_to_string(&mut messages)
            .expect("read");
        assert!(messages.contains("CANARY-EXPORT question"));

        let tampered = path.replace("sig=", "sig=A");
        let r = at::call_service(&app, at::TestRequest::get().uri(&tampered).to_request()).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri(&format!("/exports/{}/download", export.id))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "no signature");

        // deleting it now: the same link is gone
        let r = at::call_service(
            &app,
            post!(&format!("/exports/{}/delete", export.id), "", &admin),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = at::call_service(&app, at::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(r.status(), StatusCode::GONE);
    }

    #[actix_web::test]
    async fn retention_changes_are_previewed_before_they_are_saved() {
        let f = fixture();
        let app = at::init_service(
            App::new()
                .app_data(f.data.clone())
                .wrap(security_headers())
                .configure(routes),
        )
        .await;
        let admin = sign_in!(app, f, &["console", "settings"]);
        let form = "messages_days=30&messages_enabled=on&contacts_days=730\
                    &call_logs_days=365&call_logs_enabled=on&recordings_days=730&recordings_enabled=on";
        let r = at::call_service(&app, post!("/settings/retention/preview", form, &admin)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let page = body(r).await;
        assert!(
            page.contains("This will delete 0 messages older than"),
            "{page}"
        );
        assert!(page.contains("Contacts without activity: kept until you delete them."));
        assert!(
            page.contains("This will delete 0 calls (log and transcript) from before"),
            "{page}"
        );
        assert!(
            page.contains("This will delete 0 call recordings and voicemails older than"),
            "{page}"
        );

        // saving without the preview's confirmation only shows the preview
        let r = at::call_service(&app, post!("/settings/retention", form, &admin)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            crate::domain::retention::policies(&f.data.store).expect("policies")[0].days,
            365
        );
        let r = at::call_service(
            &app,
            post!(
                "/settings/retention",
                &format!("{form}&confirm=yes"),
                &admin
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let saved = crate::domain::retention::policies(&f.data.store).expect("policies");
        assert_eq!((saved[0].days, saved[0].enabled), (30, true));
        assert!(!saved[1].enabled);

        // an old message goes when the sweep is run from the page
        let content = crate::web::console::inbox::content(&f.data);
        let (conv, _) = content
            .ingest("web", "v1", None, "a", "very old")
            .expect("seed");
        f.data
            .store
            .with(|c| {
                c.execute(
                    "UPDATE messages SET created_at = created_at - 40 * 86400 WHERE conversation_id = ?1",
                    [&conv.id],
                )?;
                Ok(())
            })
            .expect("backdate");
        let r = at::call_service(&app, post!("/settings/retention/sweep", "", &admin)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(content
            .messages_after(&conv.id, 0, 10)
            .map(|m| m.is_empty())
            .unwrap_or(true));
        let page = body(
            at::call_service(
                &app,
                at::TestRequest::get()
                    .uri("/settings/retention")
                    .cookie(admin.clone())
                    .to_request(),
            )
            .await,
        )
        .await;
        assert!(page.contains("deleted 1 messages"), "{page}");

        for bad in [
            "messages_days=0&contacts_days=1",
            "messages_days=3651&contacts_days=1",
            "contacts_days=5",
        ] {
            let r = at::call_service(&app, post!("/settings/retention/preview", bad, &admin)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
