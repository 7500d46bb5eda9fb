//! The outbound-URL policy: every request the server side makes to an address a customer
//! gave (the control plane validating a key against an OpenAI-compatible `base_url`, the
//! node calling a model, later webhooks and website import) goes through a [`Client`]
//! built here, so it cannot reach the machine itself or a private network (SSRF).
//!
//! Two checks, because reqwest does not resolve IP literals:
//! - the URL, when it is parsed ([`Policy::check`]): WHATWG parsing (the `url` crate)
//!   first, so `http://2130706433/`, `http://0x7f.1/` and `http://017700000001/` are
//!   127.0.0.1 before anything looks at them; https only; no user name or password in
//!   the URL; an IP literal must be public; `localhost` and `*.localhost` count as
//!   loopback (RFC 6761);
//! - every name, on the addresses it actually resolves to ([`GuardedResolver`], the
//!   client's resolver): the connection goes to one of the addresses that were checked,
//!   so a name that answers a public address to a check and a private one to the
//!   connection (DNS rebinding) gets nowhere.
//!
//! Refused: loopback, RFC 1918, link-local (169.254/16, fe80::/10), CGNAT (100.64/10),
//! unique-local (fc00::/7), site-local (fec0::/10), "this network" (0/8) and unspecified,
//! multicast, broadcast and the reserved 240/4, the IETF, documentation and benchmark
//! ranges, and the same addresses written as IPv4-mapped, IPv4-compatible, NAT64
//! (64:ff9b::/96, 64:ff9b:1::/48) or 6to4 IPv6 addresses, plus Teredo (2001::/32).
//!
//! Plain http and loopback are allowed only with [`Policy::allow_local`] (the operator's
//! `--allow-local-providers`, for a model served on the same machine and for tests' local
//! fakes), and then only to loopback: nothing else private, ever.
//!
//! Redirects are not followed by default ([`Redirects::None`]); [`Redirects::Checked`]
//! re-checks every hop's URL (names are checked by the resolver when connected to).
//! The client never uses a proxy: a proxy would resolve names itself, out of our sight.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use url::{Host, Url};

pub use crate::http::ClientError;

/// Why an address may not be called, in words for its owner ([`fmt::Display`]) and as a
/// stable code ([`Refused::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a URL at all.
    #[error("This is not a valid web address.")]
    NotAUrl,
    /// Not https (plain http is only for loopback with the switch on).
    #[error("The address must use https.")]
    NotHttps,
    /// `user:password@` or `name@` before the host: a classic way to disguise the host.
    #[error("The address must not contain a user name or password (nothing before an @).")]
    Userinfo,
    /// The host is, or resolves to, loopback or a private, reserved or special address.
    #[error("This address points to a private network, not to a public service.")]
    Private,
}

impl Refused {
    /// Stable snake_case code, for logs.
    pub fn code(self) -> &'static str {
        match self {
            Refused::NotAUrl => "not_a_url",
            Refused::NotHttps => "not_https",
            Refused::Userinfo => "userinfo",
            Refused::Private => "private_address",
        }
    }
}

/// Where an address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    Loopback,
    Private,
}

/// The policy: strict unless the operator allows local providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    allow_local: bool,
}

impl Policy {
    /// Public https addresses only.
    pub const STRICT: Policy = Policy { allow_local: false };

    /// `allow_local`: also loopback, over http or https (`--allow-local-providers`).
    pub const fn new(allow_local: bool) -> Self {
        Self { allow_local }
    }

    /// Whether loopback (and plain http to it) is allowed.
    pub const fn allows_local(self) -> bool {
        self.allow_local
    }

    /// Parses `raw` (trimmed) and checks it; the URL to call.
    pub fn check(self, raw: &str) -> Result<Url, Refused> {
        let url = Url::parse(raw.trim()).map_err(|_| Refused::NotAUrl)?;
        self.check_url(&url)?;
        Ok(url)
    }

    /// Checks a parsed URL: scheme, user info and, for an IP literal or a `localhost`
    /// name, the address. Other names are checked on what they resolve to.
    pub fn check_url(self, url: &Url) -> Result<(), Refused> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(Refused::NotHttps),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::Userinfo);
        }
        let class = match url.host() {
            None => return Err(Refused::NotAUrl),
            Some(Host::Ipv4(ip)) => class_v4(ip),
            Some(Host::Ipv6(ip)) => class_v6(ip),
            Some(Host::Domain(name)) if is_localhost_name(name) => Class::Loopback,
            Some(Host::Domain(_)) => Class::Public,
        };
        match class {
            Class::Private => Err(Refused::Private),
            Class::Loopback if self.allow_local => Ok(()),
            Class::Loopback => Err(Refused::Private),
            Class::Public if https => Ok(()),
            Class::Public => Err(Refused::NotHttps),
        }
    }

    /// Checks an address about to be connected to.
    pub fn check_ip(self, ip: IpAddr) -> Result<(), Refused> {
        let class = match ip {
            IpAddr::V4(v4) => class_v4(v4),
            IpAddr::V6(v6) => class_v6(v6),
        };
        match class {
            Class::Public => Ok(()),
            Class::Loopback if self.allow_local => Ok(()),
            Class::Loopback | Class::Private => Err(Refused::Private),
        }
    }
}

/// `localhost` and any name under it (RFC 6761 §6.3), with or without the final dot.
fn is_localhost_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .len()
            .checked_sub(".localhost".len())
            .and_then(|i| name.get(i..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"))
}

fn class_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if a == 127 {
        return Class::Loopback;
    }
    let special = a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF assignments, TEST-NET-1
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    if special {
        Class::Private
    } else {
        Class::Public
    }
}

fn class_v6(ip: Ipv6Addr) -> Class {
    if ip.is_loopback() {
        return Class::Loopback;
    }
    if ip.is_unspecified() {
        return Class::Private;
    }
    let s = ip.segments();
    let low_v4 = || Ipv4Addr::from(((u32::from(s[6])) << 16) | u32::from(s[7]));
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): the IPv4 address decides.
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        return class_v4(low_v4());
    }
    // NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return class_v4(low_v4());
    }
    // 6to4 2002:AABB:CCDD::/48 reaches AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return class_v4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    let special = (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || (s[0] & 0xfe00) == 0xfc00 // unique-local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x100 && s[1..4] == [0; 3]) // discard
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0) // benchmarking
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation (RFC 9637)
        || s[0] == 0; // the rest of ::/16: reserved
    if special {
        Class::Private
    } else {
        Class::Public
    }
}

/// The policy's refusal somewhere in an error's chain of causes (a request refused by the
/// resolver fails with a reqwest connect error whose cause is the [`Refused`]).
pub fn refusal_of(err: &(dyn StdError + 'static)) -> Option<Refused> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(*r);
        }
        cur = e.source();
    }
    None
}

/// A name lookup: the addresses of a host name (the port is the caller's).
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> + Send + Sync,
>;

/// The system's resolver (`getaddrinfo`, on tokio's blocking pool, as reqwest's own).
pub fn system_lookup() -> Lookup {
    Arc::new(|name: String| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    })
}

/// reqwest's resolver for the [`Client`]: resolves, then refuses the name if any of its
/// addresses is not allowed (a name that mixes public and private addresses is
/// misconfigured or hostile), so only checked addresses are ever connected to.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Policy,
    lookup: Lookup,
}

impl GuardedResolver {
    /// A resolver that checks what `lookup` answers against `policy`.
    pub fn new(policy: Policy, lookup: Lookup) -> Self {
        Self { policy, lookup }
    }
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (policy, lookup) = (self.policy, self.lookup.clone());
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let ips = lookup(name).await?;
            if ips.is_empty() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no address").into());
            }
            for ip in &ips {
                policy.check_ip(*ip)?;
            }
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// What the client does with a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Not followed: the 3xx is the answer. For calls that carry a credential.
    None,
    /// Followed up to `max` hops, each hop's URL checked against the policy (and its name
    /// by the resolver). For fetching public pages (website import).
    Checked {
        /// Most hops followed.
        max: usize,
    },
}

/// An HTTP client for customer-supplied addresses: the [`crate::http::client`] settings
/// (rustls with ring, Mozilla roots) plus the [`GuardedResolver`], the redirect rule and
/// no proxy. Requests are built from a URL string that is checked first, so IP literals
/// (which reqwest does not resolve) are covered too.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    policy: Policy,
}

impl Client {
    /// A client over the system resolver.
    pub fn new(
        user_agent: &str,
        connect: Duration,
        policy: Policy,
        redirects: Redirects,
    ) -> Result<Self, ClientError> {
        Self::with_lookup(user_agent, connect, policy, redirects, system_lookup())
    }

    /// A client whose names are looked up by `lookup` (tests: a name that resolves to a
    /// private address).
    pub fn with_lookup(
        user_agent: &str,
        connect: Duration,
        policy: Policy,
        redirects: Redirects,
        lookup: Lookup,
    ) -> Result<Self, ClientError> {
        let redirect = match redirects {
            Redirects::None => reqwest::redirect::Policy::none(),
            Redirects::Checked { max } => reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max {
                    attempt.error("too many redirects")
                } else if let Err(r) = policy.check_url(attempt.url()) {
                    attempt.error(r)
                } else {
                    attempt.follow()
                }
            }),
        };
        let http = crate::http::builder(user_agent, connect)?
            .dns_resolver(Arc::new(GuardedResolver::new(policy, lookup)))
            .redirect(redirect)
            .no_proxy()
            .build()?;
        Ok(Self { http, policy })
    }

    /// The policy it enforces.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// A request to `url` once the URL passes the policy.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        let url = self.policy.check(url)?;
        Ok(self.http.request(method, url))
    }

    /// `GET url`, once the URL passes the policy.
    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        self.request(reqwest::Method::GET, url)
    }

    /// `POST url`, once the URL passes the policy.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        self.request(reqwest::Method::POST, url)
    }

    /// The underlying client, for callers that build many requests under one base URL
    /// they have already passed through [`Policy::check`] (names stay guarded by the
    /// resolver; IP literals are not, hence the check).
    pub fn checked_base_client(&self) -> &reqwest::Client {
        &self.http
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
