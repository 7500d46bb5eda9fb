//! Static assets both web surfaces serve, so the node console shares the control plane's
//! look and neither needs a build step: the vendored htmx (see `static/htmx.LICENSE`) and
//! one stylesheet, and the icon browsers ask for on every page. Served from `/static/…` by each server with a long cache lifetime.

/// htmx 2.0.11, minified, vendored unchanged.
pub const HTMX_JS: &[u8] = include_bytes!("../static/htmx.min.js");

/// The Outpost stylesheet (control plane and node console).
pub const STYLESHEET: &[u8] = include_bytes!("../static/outpost.css");

/// The Outpost icon (SVG), linked from every page as `/static/favicon.svg`; without it
/// browsers ask for `/favicon.ico` and log the 404.
pub const FAVICON_SVG: &[u8] = include_bytes!("../static/favicon.svg");
