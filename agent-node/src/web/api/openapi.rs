//! The OpenAPI 3.1 document of the node's `/api/v1`, served at
//! `GET /api/v1/openapi.json`, generated from the handlers' `#[utoipa::path]` annotations
//! as the CP's is (`control-plane/src/app/openapi.rs`). What every guarded route shares —
//! bearer authentication and its 401/403 answers, 404 for an id, 500 — is added once by
//! [`Common`]. `web::api::tests::the_document_lists_every_route` fails while a row of
//! [`super::ROUTES`] is missing from it, or it lists a route that does not exist.

use super::{contacts, conversations, exports, kb, Code, ErrorJson};
use actix_web::http::header;
use actix_web::HttpResponse;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

/// The name of the security scheme.
pub const BEARER: &str = "node_api_token";

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outpost node API",
        description = "The node's own data — conversations, messages, contacts, knowledge-base documents and exports — served by the node itself, never through the Outpost control plane. Authenticate with a node API token (`Authorization: Bearer onat_…`) made in the node console under Integrations; each route needs one scope. Lists are paged with `cursor` (the `next_cursor` of the previous page) and `limit`. Errors are JSON `{\"code\", \"message\"}`: match on `code`."
    ),
    paths(
        document,
        conversations::list,
        conversations::get,
        conversations::messages,
        conversations::reply,
        contacts::list,
        contacts::get,
        contacts::update,
        kb::list,
        kb::upload,
        kb::delete,
        exports::create,
        exports::get,
    ),
    components(schemas(ErrorJson, Code)),
    modifiers(&Common),
    security(("node_api_token" = [])),
    tags(
        (name = "conversations", description = "Conversations and their messages (`conversations:read`); replies as the team (`messages:write`)."),
        (name = "contacts", description = "The CRM (`contacts:read`, `contacts:write`)."),
        (name = "knowledge base", description = "Documents the assistant answers from (`kb:read`, `kb:write`)."),
        (name = "exports", description = "Exports of everything, or of one contact (`exports:create`)."),
        (name = "meta", description = "This document."),
    ),
)]
pub struct ApiDoc;

struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A node API token: node console → Integrations → API tokens.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common(path, op);
            }
        }
    }
}

fn add_common(path: &str, op: &mut Operation) {
    let public = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
    let mut add = |status: &str, what: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(what));
    };
    if !public {
        add("401", "No token (`missing_api_token`), an unknown one (`invalid_api_token`), an expired one (`token_expired`) or a revoked one (`token_revoked`).");
        add(
            "403",
            "The token lacks the scope this route needs (`missing_scope`).",
        );
        add("400", "The body or the query is not what this route takes (`malformed_json`, `invalid_input`).");
    }
    if path.contains('{') {
        add("404", "No such object (`not_found`).");
    }
    add(
        "500",
        "Something failed on the node (`internal_error`); the cause is logged, never shown.",
    );
}

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(ErrorJson::name()))),
        )
        .into()
}

/// The document as served (built once).
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object)),
)]
pub(crate) async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(json())
}
