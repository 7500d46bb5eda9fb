//! The HTTP layer every domain's `web.rs` shares: who is calling ([`extract`]), the access
//! guard that checks each request against the route table before any handler runs
//! ([`guard`]), rendering ([`render`]), the refusal of NUL characters at the edge
//! ([`text`]) and the client's address behind a trusted reverse proxy ([`forwarded`]). The error type and its codes are
//! `crate::error`.

pub mod access;
pub mod deadline;
pub mod extract;
pub mod forwarded;
pub mod guard;
pub mod render;
pub mod text;

pub use extract::{
    client_ip, client_key, ApiUser, CsrfForm, CurrentUser, Empty, OperatorForm, OperatorUser,
};
pub use render::{html, html_with, PageError, PageResult};
