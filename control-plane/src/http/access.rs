//! What a route needs, as the route table (`crate::app::routes`) declares it, and how a
//! request's row is found in a table.

use crate::members::Role;
use actix_web::dev::ResourceDef;
use actix_web::web;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone. The handler checks its own credential where there is one: a magic-link or
    /// invitation token, OAuth state and PKCE, Stripe's signature, a bootstrap token.
    Public,
    /// A signed-in user acting on their own account: a session cookie on pages, an API
    /// token on `/api/v1`.
    Account,
    /// A member of the workspace named by `{id}` holding at least this role. Non-members
    /// get 404 (the workspace's existence is not revealed), lower roles 403.
    Member(Role),
    /// Outpost staff (`control-plane operator add`); everyone else gets 404.
    Operator,
    /// A node, by the client certificate the gateway's TLS handshake verified.
    Node,
}

/// An HTTP method of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
}

impl Method {
    /// As on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
        }
    }

    /// An actix route for this method.
    pub fn route(self) -> actix_web::Route {
        match self {
            Method::Get => web::get(),
            Method::Post => web::post(),
            Method::Put => web::put(),
            Method::Delete => web::delete(),
            Method::Patch => web::patch(),
        }
    }
}

/// One row of a table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Method.
    pub method: Method,
    /// The pattern as registered (`/workspaces/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The handler's path in the source, for people reading the table.
    pub handler: &'static str,
}

impl Route {
    /// The `/api/v1` JSON API (API tokens, JSON errors) rather than a page.
    pub fn is_api(&self) -> bool {
        self.path.starts_with("/api/")
    }
}

/// A table with its patterns compiled, for matching requests before routing.
pub struct Matcher {
    rows: Vec<(ResourceDef, Route)>,
}

impl Matcher {
    /// Compiles `table`.
    pub fn new(table: &[Route]) -> Self {
        Matcher {
            rows: table
                .iter()
                .map(|r| (ResourceDef::new(r.path), *r))
                .collect(),
        }
    }

    /// The row for `method` and `path`, and the `{id}` segment if the pattern has one.
    pub fn find(&self, method: &str, path: &str) -> Option<(Route, Option<String>)> {
        self.rows.iter().find_map(|(def, r)| {
            if r.method.as_str() != method {
                return None;
            }
            let mut p = actix_web::dev::Path::new(path);
            def.capture_match_info(&mut p)
                .then(|| (*r, p.get("id").map(str::to_owned)))
        })
    }
}
