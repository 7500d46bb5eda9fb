//! The access guard: every request to the UI listener is checked against the route
//! table before any handler or extractor reads it. A route declared `Account` needs a
//! session (pages) or an API token (`/api/v1`); `Operator` an operator's session;
//! `Member(role)` a membership of the workspace in the path with at least that role
//! (non-members 404, lower roles 403). The caller it resolves is left in the request's
//! extensions, where the extractors (`super::extract`) take it, so each request looks its
//! caller up once. Handlers keep their own checks: the guard is the floor, not the only
//! wall, and a handler that forgot its check is still refused here.

use super::access::{Access, Matcher, Route};
use super::extract::{state_of, ApiUser, CurrentUser};
use super::render::PageError;
use crate::error::{AppError, AppResult};
use crate::infra::db;
use crate::members;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpRequest;

/// Checks `req` against `table`; a request no row matches goes on (to a 404).
pub async fn check<B: MessageBody + 'static>(
    table: &Matcher,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let found = table.find(req.method().as_str(), req.path());
    if let Some((route, workspace)) = found {
        if let Err(e) = admit(req.request(), &route, workspace).await {
            let res = if route.is_api() {
                req.error_response(e)
            } else {
                req.error_response(PageError(e))
            };
            return Ok(res.map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

async fn admit(req: &HttpRequest, route: &Route, workspace: Option<String>) -> AppResult<()> {
    match route.access {
        Access::Public | Access::Node => Ok(()),
        Access::Account => caller(req, route).await.map(drop),
        // Operators use pages only (no API token is an operator's).
        Access::Operator if CurrentUser::resolve(req).await?.is_operator => Ok(()),
        Access::Operator => Err(AppError::NotFound),
        Access::Member(min) => {
            let user_id = caller(req, route).await?;
            let ws_id = workspace.ok_or(AppError::NotFound)?;
            let state = state_of(req)?;
            db::run(&state.db, move |conn| {
                members::require_role(conn, &ws_id, &user_id, min).map(drop)
            })
            .await
        }
    }
}

/// The caller's user id: by API token on `/api/v1`, by session on pages.
async fn caller(req: &HttpRequest, route: &Route) -> AppResult<String> {
    Ok(if route.is_api() {
        ApiUser::resolve(req).await?.id
    } else {
        CurrentUser::resolve(req).await?.id
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::http::access::Method;
    use crate::members::Role;
    use actix_web::{test, web, App, HttpResponse};

    async fn unchecked() -> HttpResponse {
        HttpResponse::Ok().body("the handler ran")
    }

    const TABLE: &[Route] = &[
        Route {
            method: Method::Get,
            path: "/open",
            access: Access::Public,
            handler: "unchecked",
        },
        Route {
            method: Method::Post,
            path: "/workspaces/{id}/settings",
            access: Access::Member(Role::Admin),
            handler: "unchecked",
        },
        Route {
            method: Method::Get,
            path: "/api/v1/workspaces/{id}/settings",
            access: Access::Member(Role::Admin),
            handler: "unchecked",
        },
    ];

    /// A handler that forgot every check is still refused to callers without a session or
    /// token: the guard answers before it runs, as a page (to sign-in) or as JSON.
    #[actix_web::test]
    async fn a_handler_without_checks_is_still_guarded() {
        let table = std::rc::Rc::new(Matcher::new(TABLE));
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(move |req, next| {
                    let table = table.clone();
                    async move { check(&table, req, next).await }
                }))
                .route("/open", web::get().to(unchecked))
                .route("/workspaces/{id}/settings", web::post().to(unchecked))
                .route("/api/v1/workspaces/{id}/settings", web::get().to(unchecked)),
        )
        .await;
        let open = test::TestRequest::get().uri("/open").to_request();
        assert_eq!(test::call_service(&app, open).await.status(), 200);

        let page = test::TestRequest::post()
            .uri("/workspaces/ws-1/settings")
            .to_request();
        let res = test::call_service(&app, page).await;
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers().get("location").unwrap(), "/signin");

        let api = test::TestRequest::get()
            .uri("/api/v1/workspaces/ws-1/settings")
            .to_request();
        let res = test::call_service(&app, api).await;
        assert_eq!(res.status(), 401);
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["code"], "missing_api_token");
    }
}
