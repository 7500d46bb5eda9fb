//! Small helpers the control plane and the node share, so the control plane imports no
//! node internals and each exists once: lowercase [`hex()`], per-key token buckets
//! ([`rate_limit::KeyedLimiter`]), private atomic file writes ([`fs::write_private`]),
//! the security headers every page carries ([`headers`]), the input rules for names and
//! free text ([`name::Name`], [`name::check_text`]) and, with the default `http` feature,
//! the outbound HTTP client ([`http::client`]) and the outbound-URL policy for addresses
//! customers give ([`outbound`]: one [`outbound::Policy`], one guarded
//! [`outbound::Client`]).
//!
//! Architecture invariant: this crate depends on no other Outpost crate and on no web
//! framework; everything above may depend on it. The HTTP client is built with the
//! **ring** rustls provider explicitly, so aws-lc-rs never enters the build.

pub mod fs;
pub mod headers;
pub mod hex;
#[cfg(feature = "http")]
pub mod http;
pub mod name;
#[cfg(feature = "http")]
pub mod outbound;
pub mod rate_limit;

pub use hex::hex;
pub use name::{check_text, Name, NameError, TextError};
