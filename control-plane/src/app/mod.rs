//! The only place that knows every domain: the shared [`state`], start-up and the two
//! listeners ([`serve`]), the one table of routes with the access each needs ([`routes`]),
//! the API's OpenAPI document ([`openapi`]), every background loop ([`workers`]), and the
//! reactions across domains a lower domain must not call itself ([`reactions`]).

pub mod openapi;
pub mod reactions;
pub mod routes;
pub mod serve;
pub mod site;
pub mod state;
pub mod workers;

pub use serve::{init_tracing, migrate, serve};
pub use state::{AppState, State, USER_AGENT};
