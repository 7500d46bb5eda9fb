//! The OpenAPI 3.1 document of `/api/v1`, served at `GET /api/v1/openapi.json`.
//!
//! It is generated from the code: each API handler carries a `#[utoipa::path]` annotation
//! beside it (method, path, parameters, request body, the answers particular to it), the
//! types it reads and answers with derive `utoipa::ToSchema`, and [`ApiDoc`] lists the
//! handlers. What every route shares is added here once, by [`Common`]: bearer
//! authentication, the JSON error shape with every [`Code`], and the answers any route
//! can give (401 and 429 for the token, 400 and 413 for a body or a query, 404 for an id
//! in the path, 500, 503 while the database is away).
//!
//! **Adding a route**: annotate its handler with `#[utoipa::path(…)]` (copy a neighbour's)
//! and add one line to `paths(…)` below. `tests/e2e/openapi.rs` fails while a row of
//! `routes::UI` under `/api/v1` is missing from the document, or the document lists a
//! route that does not exist.

use crate::error::Code;
use crate::{accounts, agents, billing, members, secrets, workspaces};
use actix_web::http::header;
use actix_web::HttpResponse;
use std::borrow::Cow;
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// The name of the security scheme in the document (also spelled out in `security(…)`).
pub const BEARER: &str = "api_token";

/// The document: every `/api/v1` handler, one line each.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outpost control plane API",
        description = "Workspaces, their agents, members, keys and billing. Authenticate with a personal API token (`Authorization: Bearer <token>`), made on the Account → API tokens page or with `control-plane token create`. Errors are JSON `{\"code\", \"message\"}`: match on `code` (the `ErrorCode` schema lists them all); the message is for people and may change."
    ),
    paths(
        document,
        workspaces::web::api_list,
        workspaces::web::api_create,
        workspaces::web::api_regions,
        workspaces::web::api_get,
        workspaces::web::api_delete,
        workspaces::web::api_rename,
        workspaces::web::api_reactivate,
        billing::web::api_billing,
        billing::web::api_checkout,
        members::web::api_members,
        members::web::api_invite,
        agents::web::api_list,
        agents::web::api_create,
        agents::web::api_get,
        agents::web::api_update,
        agents::web::api_delete,
        secrets::web::api_list,
        secrets::web::api_add,
        secrets::web::api_remove,
        accounts::web::api_tokens,
        accounts::web::api_revoke,
    ),
    components(schemas(ErrorJson, Code)),
    modifiers(&Common),
    security(("api_token" = [])),
    tags(
        (name = "workspaces", description = "A workspace and its node."),
        (name = "billing", description = "Stripe subscriptions (routes answer 404 while billing is off)."),
        (name = "members", description = "Who may use a workspace, and invitations."),
        (name = "agents", description = "The AI agents a workspace's node runs."),
        (name = "secrets", description = "Provider keys and channel credentials: validated, sealed to the node, never stored here."),
        (name = "tokens", description = "Your personal API tokens: list and revoke (make them on the API tokens page or with the CLI)."),
        (name = "meta", description = "This document."),
    ),
)]
pub struct ApiDoc;

/// The JSON body of every error (`outpost_protocol::ErrorBody`, with its code typed).
#[derive(utoipa::ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)] // A description of what `AppError` writes; never built.
pub(crate) struct ErrorJson {
    /// Stable: match on it.
    code: Code,
    /// For people; may change.
    message: String,
}

impl PartialSchema for Code {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Every error code the API answers with (`control-plane/src/error.rs`).",
            ))
            .enum_values(Some(Code::ALL.iter().map(|c| c.as_str())))
            .into()
    }
}

impl ToSchema for Code {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorCode")
    }
}

/// What every operation shares, added to each so the handlers' annotations list only what
/// is particular to them.
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
                        "A personal API token: Account → API tokens, or `control-plane token create --email …`.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if let Some(op) = item.get.as_mut() {
                add_common(path, op, false);
            }
            for op in [
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common(path, op, true);
            }
        }
    }
}

/// `writes`: the operation is not a GET, so a read-only token is refused it.
fn add_common(path: &str, op: &mut Operation, writes: bool) {
    // `security(())` on an operation: public (this document), so no token answers.
    let public = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query);
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, what: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(what));
    };
    if !public {
        add(
            "401",
            "No token (`missing_api_token`), an unknown one (`invalid_api_token`), an expired one (`token_expired`) or a revoked one (`token_revoked`).",
        );
        add(
            "429",
            "Too many requests with this token (`rate_limited`); the `Retry-After` header says how many seconds to wait.",
        );
    }
    if has_body || has_query {
        add(
            "400",
            "The body or the query is not what this operation takes (`malformed_json`, `malformed_query`, `unsupported_content_type`, or a code naming the field).",
        );
    }
    if has_body {
        add("413", "The body is over 1 MiB (`payload_too_large`).");
    }
    if path.contains('{') {
        add(
            "404",
            "No such object, or not one you are a member of (`not_found`).",
        );
    }
    add(
        "500",
        "Something failed on our side (`internal_error`); the cause is logged, never shown.",
    );
    add(
        "503",
        "The control plane cannot reach its database (`database_unavailable`): nothing was read or changed; retry after the `Retry-After` header's seconds.",
    );
    if writes && !public {
        const READ_ONLY: &str = "A read-only token may only read (`token_read_only`).";
        match op.responses.responses.get_mut("403") {
            Some(RefOr::T(r)) => r.description = format!("{} {READ_ONLY}", r.description),
            Some(RefOr::Ref(_)) => {}
            None => {
                op.responses
                    .responses
                    .insert("403".to_owned(), error(READ_ONLY));
            }
        }
    }
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
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(json())
}
