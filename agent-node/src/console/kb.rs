//! Console pages: kb.

use actix_web::web;

/// Routes of this section.
pub fn routes(_cfg: &mut web::ServiceConfig) {}
