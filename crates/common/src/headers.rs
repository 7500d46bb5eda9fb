//! The security headers every page of both web surfaces carries. Only the
//! Content-Security-Policy differs, so it is the parameter: the node console restricts
//! form targets to itself (`form-action 'self'`), while the control plane cannot: its
//! billing forms end in redirects to Stripe (Checkout, the customer portal), and browsers
//! check redirects of a form post against `form-action`. The control plane also allows
//! `data:` images.
//!
//! Plain header pairs rather than a middleware, so this crate needs no web framework:
//! each server folds them into its own `DefaultHeaders`.

/// `X-Content-Type-Options`: no MIME sniffing of responses.
pub const NOSNIFF: (&str, &str) = ("X-Content-Type-Options", "nosniff");

/// `X-Frame-Options`: never framed (older browsers; `frame-ancestors` in the CSP for the
/// rest).
pub const NO_FRAMING: (&str, &str) = ("X-Frame-Options", "DENY");

/// `Referrer-Policy: same-origin`: no referrer to other sites (URLs may carry one-time
/// tokens). Not `no-referrer`: with it browsers send `Origin: null` on a site's own form
/// posts, which the Origin checks of both servers refuse (the node's when
/// `Sec-Fetch-Site` is missing). Pages whose URL carries a token set `no-referrer` on their own response.
pub const REFERRER_SAME_ORIGIN: (&str, &str) = ("Referrer-Policy", "same-origin");

/// The headers for every response of a server whose pages follow `csp`.
pub fn security_headers(csp: &'static str) -> [(&'static str, &'static str); 4] {
    [
        ("Content-Security-Policy", csp),
        NOSNIFF,
        NO_FRAMING,
        REFERRER_SAME_ORIGIN,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_is_the_only_parameter() {
        let h = security_headers("default-src 'self'");
        assert_eq!(h[0], ("Content-Security-Policy", "default-src 'self'"));
        assert!(h.contains(&("Referrer-Policy", "same-origin")));
        assert!(h.contains(&("X-Frame-Options", "DENY")));
        assert!(h.contains(&("X-Content-Type-Options", "nosniff")));
    }
}
