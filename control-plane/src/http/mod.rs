//! The HTTP layer every domain's `web.rs` shares: who is calling ([`extract`]), the access
//! guard that checks each request against the route table before any handler runs
//! ([`guard`]), and rendering ([`render`]). The error type and its codes are
//! `crate::error`.

pub mod access;
pub mod extract;
pub mod guard;
pub mod render;

pub use extract::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty, OperatorForm, OperatorUser};
pub use render::{html, html_with, PageError, PageResult};
