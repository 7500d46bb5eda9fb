//! Long because one feature reads best in one place: robots.txt rules, sitemaps, the
//! bounded fetch, the crawl, and the stored sources with their schedule.
//!
//! Website import: the pages of a customer's site (a start page and the pages it links to
//! on the same site, or the pages a `sitemap.xml` lists) become one knowledge-base
//! document, cut at their headings like an HTML upload, and imported again on a schedule.
//!
//! Every request goes through the outbound-URL policy ([`outpost_common::outbound`]): no
//! private or loopback address, on the start URL, on any page, or on a redirect. Only the
//! site of the start URL is read (same scheme, host and port; a redirect elsewhere is
//! skipped with a note), `robots.txt` is obeyed for the `outpost` agent (or `*`), and the
//! number of pages and the size of each page are bounded ([`Limits`]). What was skipped
//! and why is kept (sealed) with the source and shown in the console.

use super::{DocKind, KbError, KnowledgeBase};
use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store};
use outpost_common::outbound::{self, Client, Policy, Redirects, Refused};
use rusqlite::{params, OptionalExtension as _};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use zeroize::Zeroizing;

/// Migration adding the website sources (see `MIGRATIONS` in `src/migrations.rs`).
pub const SOURCES_SCHEMA: &str = r#"
CREATE TABLE kb_sources (
    id TEXT PRIMARY KEY,
    url_ct BLOB NOT NULL,
    document_id TEXT,
    every_hours INTEGER NOT NULL,
    next_at INTEGER,
    state TEXT NOT NULL,
    pages_done INTEGER NOT NULL DEFAULT 0,
    pages_found INTEGER NOT NULL DEFAULT 0,
    notes_ct BLOB,
    finished_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX kb_sources_due ON kb_sources (next_at);
"#;

/// The agent name matched against `robots.txt` groups.
pub const ROBOTS_AGENT: &str = "outpost";

/// Bounds of one import.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most pages read.
    pub max_pages: usize,
    /// Largest page read, bytes; a larger one is skipped with a note.
    pub max_page_bytes: usize,
    /// Most bytes of all pages together; the import stops there with a note.
    pub max_total_bytes: usize,
    /// Most redirects followed for one page.
    pub max_redirects: usize,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pages: 100,
            max_page_bytes: 2 * 1024 * 1024,
            max_total_bytes: 20 * 1024 * 1024,
            max_redirects: 5,
            timeout: Duration::from_secs(20),
        }
    }
}

/// One page read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// Where it was read (after redirects).
    pub url: String,
    /// Its HTML.
    pub html: String,
}

/// What an import read, and what it skipped (in words for the console).
#[derive(Debug, Default)]
pub struct Crawl {
    /// The pages, in the order read.
    pub pages: Vec<Page>,
    /// One line per page skipped, or limit reached.
    pub notes: Vec<String>,
}

/// Why an import could not start (the site as a whole).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The URL is refused by the outbound policy.
    #[error("{0}")]
    Refused(#[from] Refused),
    /// `robots.txt` answered with a server error or could not be reached: per RFC 9309
    /// the whole site counts as disallowed.
    #[error(
        "The site's robots.txt could not be read ({0}), so nothing was imported. Try again later."
    )]
    Robots(String),
    /// The start URL or sitemap could not be read.
    #[error("{0}")]
    Start(String),
    /// `robots.txt` disallows the start page.
    #[error("The site's robots.txt does not allow reading this address.")]
    Disallowed,
    /// Nothing importable was found.
    #[error("No page with text was found.")]
    NoPages,
    /// The knowledge base refused the result.
    #[error(transparent)]
    Kb(#[from] KbError),
}

// ---------------------------------------------------------------------------------------
// robots.txt (RFC 9309)

/// The rules of `robots.txt` that apply to one agent.
#[derive(Debug, Default, Clone)]
pub struct Robots {
    /// `(allow, pattern)`.
    rules: Vec<(bool, String)>,
}

impl Robots {
    /// The rules of `txt` for `agent`: the groups naming it (case-insensitively), else the
    /// `*` groups; rules of several matching groups are merged.
    pub fn parse(txt: &str, agent: &str) -> Self {
        let agent = agent.to_ascii_lowercase();
        let mut mine = Vec::new();
        let mut star = Vec::new();
        // Current group: its agents, and whether a rule has been seen (a user-agent line
        // after a rule starts a new group).
        let mut agents: Vec<String> = Vec::new();
        let mut in_rules = false;
        for line in txt.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "user-agent" => {
                    if in_rules {
                        agents.clear();
                        in_rules = false;
                    }
                    agents.push(value.to_ascii_lowercase());
                }
                "allow" | "disallow" => {
                    in_rules = true;
                    if value.is_empty() {
                        // `Disallow:` with nothing allows everything: no rule.
                        continue;
                    }
                    let rule = (key == "allow", value.to_owned());
                    if agents.contains(&agent) {
                        mine.push(rule.clone());
                    }
                    if agents.iter().any(|a| a == "*") {
                        star.push(rule);
                    }
                }
                _ => {}
            }
        }
        let named = txt.lines().any(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("user-agent") && v.trim().eq_ignore_ascii_case(&agent)
            })
        });
        Self {
            rules: if named { mine } else { star },
        }
    }

    /// Whether `path` (with its query) may be read: the longest matching rule decides,
    /// `allow` winning a tie; no matching rule allows.
    pub fn allows(&self, path: &str) -> bool {
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if pattern_matches(pattern, path) {
                let len = pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// Whether a robots.txt path pattern (`*` any run, a final `$` the end) matches `path`.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some(first) = parts.first() else {
        return true;
    };
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    if parts.len() == 1 {
        return !anchored || rest.is_empty();
    }
    for (i, part) in parts.iter().enumerate().skip(1) {
        let last = i == parts.len() - 1;
        if last && anchored {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// Sitemaps and links

/// The `<loc>` addresses of a sitemap, and whether it is a sitemap index (its addresses
/// are further sitemaps).
pub fn sitemap_locs(xml: &str) -> (Vec<String>, bool) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut index = false;
    let mut in_loc = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name();
                if name.as_ref() == b"sitemapindex" {
                    index = true;
                }
                in_loc = name.as_ref() == b"loc";
            }
            Ok(Event::Text(t)) if in_loc => {
                if let Ok(s) = t.unescape() {
                    out.push(s.trim().to_owned());
                }
            }
            Ok(Event::End(_)) => in_loc = false,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    (out, index)
}

/// The `href` targets of `<a>` elements in `html`, resolved against `base`.
fn links(html: &str, base: &Url) -> Vec<Url> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<a") {
        let start = from + at;
        let Some(end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        from = end;
        let tag = &html[start..end];
        let tag_lower = &lower[start..end];
        let Some(h) = tag_lower.find("href=") else {
            continue;
        };
        let value = &tag[h + 5..];
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split([' ', '\t', '\n']).next().unwrap_or(""),
        };
        let value = super::text::decode_entities(value);
        if let Ok(mut u) = base.join(value.trim()) {
            u.set_fragment(None);
            out.push(u);
        }
    }
    out
}

/// Whether `u` is on the same site as `origin` (scheme, host and port).
fn same_site(u: &Url, origin: &Url) -> bool {
    u.scheme() == origin.scheme()
        && u.host_str() == origin.host_str()
        && u.port_or_known_default() == origin.port_or_known_default()
}

/// The path and query robots.txt rules are matched against.
fn robots_path(u: &Url) -> String {
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Fetching

/// The answer to one page request.
enum Fetched {
    /// Read: the final URL, its content type and body.
    Body(Url, String, String),
    /// Not read; why, for the notes.
    Skipped(String),
    /// HTTP status other than success or redirect.
    Status(u16),
}

/// Reads `url`, following up to `limits.max_redirects` redirects on the same site, and
/// at most `limits.max_page_bytes` of body.
async fn fetch(client: &Client, origin: &Url, url: &Url, limits: &Limits) -> Fetched {
    let mut current = url.clone();
    for _ in 0..=limits.max_redirects {
        let req = match client.get(current.as_str()) {
            Ok(r) => r,
            Err(Refused::Private) => {
                return Fetched::Skipped(format!(
                    "{current}: points to a private network address, skipped"
                ))
            }
            Err(e) => return Fetched::Skipped(format!("{current}: {e}")),
        };
        let resp = match req.timeout(limits.timeout).send().await {
            Ok(r) => r,
            Err(e) if outbound::refusal_of(&e).is_some() => {
                return Fetched::Skipped(format!(
                    "{current}: points to a private network address, skipped"
                ))
            }
            Err(e) => {
                return Fetched::Skipped(format!(
                    "{current}: could not be read ({})",
                    if e.is_timeout() {
                        "timed out"
                    } else {
                        "connection failed"
                    }
                ))
            }
        };
        let status = resp.status();
        if status.is_redirection() {
            let next = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| current.join(l).ok());
            let Some(next) = next else {
                return Fetched::Skipped(format!("{current}: a redirect without a target"));
            };
            if let Err(e) = client.policy().check_url(&next) {
                return Fetched::Skipped(match e {
                    Refused::Private => {
                        format!("{current}: redirects to a private network address, skipped")
                    }
                    e => format!("{current}: redirects to a refused address ({e})"),
                });
            }
            if !same_site(&next, origin) {
                return Fetched::Skipped(format!(
                    "{current}: redirects to another site ({}), skipped",
                    next.host_str().unwrap_or("?")
                ));
            }
            current = next;
            continue;
        }
        if !status.is_success() {
            return Fetched::Status(status.as_u16());
        }
        if resp
            .content_length()
            .is_some_and(|n| n > limits.max_page_bytes as u64)
        {
            return Fetched::Skipped(too_big(&current, limits));
        }
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut body = Vec::new();
        let mut resp = resp;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > limits.max_page_bytes {
                        return Fetched::Skipped(too_big(&current, limits));
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(_) => {
                    return Fetched::Skipped(format!("{current}: could not be read to its end"))
                }
            }
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        return Fetched::Body(current, ctype, text);
    }
    Fetched::Skipped(format!("{url}: too many redirects, skipped"))
}

fn too_big(url: &Url, limits: &Limits) -> String {
    format!(
        "{url}: larger than {} KiB, skipped",
        limits.max_page_bytes / 1024
    )
}

/// Reads the site of `start`: the pages a sitemap lists when `start` ends in `.xml`, else
/// `start` and the same-site pages it links to (breadth first), within `limits`.
/// `progress(pages read, pages found)` is called after each page.
pub async fn crawl(
    client: &Client,
    start: &str,
    limits: &Limits,
    mut progress: impl FnMut(usize, usize),
) -> Result<Crawl, ImportError> {
    let start = client.policy().check(start)?;
    let mut origin = start.clone();
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    let mut out = Crawl::default();

    let robots_url = origin.join("/robots.txt").map_err(|_| Refused::NotAUrl)?;
    let robots = match fetch(client, &origin, &robots_url, limits).await {
        Fetched::Body(_, _, txt) => Robots::parse(&txt, ROBOTS_AGENT),
        Fetched::Status(s) if (400..500).contains(&s) => Robots::default(),
        Fetched::Status(s) => return Err(ImportError::Robots(format!("HTTP {s}"))),
        Fetched::Skipped(why) => return Err(ImportError::Robots(why)),
    };

    let mut queue: VecDeque<Url> = VecDeque::new();
    let mut seen: HashSet<String> = HashSet::new();
    let follow_links = !start.path().to_ascii_lowercase().ends_with(".xml");
    if follow_links {
        if !robots.allows(&robots_path(&start)) {
            return Err(ImportError::Disallowed);
        }
        queue.push_back(start.clone());
    } else {
        let mut sitemaps = VecDeque::from([start.clone()]);
        let mut read_maps = 0;
        while let Some(map) = sitemaps.pop_front() {
            read_maps += 1;
            if read_maps > 10 {
                out.notes
                    .push("More than 10 sitemaps: the rest were not read".into());
                break;
            }
            let xml = match fetch(client, &origin, &map, limits).await {
                Fetched::Body(_, _, xml) => xml,
                Fetched::Status(s) => {
                    let why = format!("{map}: HTTP {s}");
                    if read_maps == 1 {
                        return Err(ImportError::Start(format!(
                            "The sitemap could not be read ({why})."
                        )));
                    }
                    out.notes.push(why);
                    continue;
                }
                Fetched::Skipped(why) => {
                    if read_maps == 1 {
                        return Err(ImportError::Start(format!(
                            "The sitemap could not be read ({why})."
                        )));
                    }
                    out.notes.push(why);
                    continue;
                }
            };
            let (locs, index) = sitemap_locs(&xml);
            for loc in locs {
                let Ok(u) = Url::parse(&loc) else {
                    continue;
                };
                if !same_site(&u, &origin) {
                    out.notes.push(format!("{u}: on another site, skipped"));
                    continue;
                }
                if index {
                    sitemaps.push_back(u);
                } else {
                    queue.push_back(u);
                }
            }
        }
    }

    let mut total = 0usize;
    while let Some(url) = queue.pop_front() {
        if !seen.insert(url.to_string()) {
            continue;
        }
        if out.pages.len() >= limits.max_pages {
            out.notes.push(format!(
                "Stopped at {} pages, the limit of one import",
                limits.max_pages
            ));
            break;
        }
        if !robots.allows(&robots_path(&url)) {
            out.notes
                .push(format!("{url}: not allowed by robots.txt, skipped"));
            continue;
        }
        match fetch(client, &origin, &url, limits).await {
            Fetched::Body(final_url, ctype, html) => {
                if !ctype.is_empty()
                    && !ctype.starts_with("text/html")
                    && !ctype.starts_with("application/xhtml")
                {
                    out.notes
                        .push(format!("{final_url}: not a web page ({ctype}), skipped"));
                    continue;
                }
                if total + html.len() > limits.max_total_bytes {
                    out.notes.push(format!(
                        "Stopped at {} MiB of pages, the limit of one import",
                        limits.max_total_bytes / (1024 * 1024)
                    ));
                    break;
                }
                total += html.len();
                if follow_links {
                    for link in links(&html, &final_url) {
                        if same_site(&link, &origin)
                            && (link.scheme() == "http" || link.scheme() == "https")
                            && !seen.contains(link.as_str())
                        {
                            queue.push_back(link);
                        }
                    }
                }
                seen.insert(final_url.to_string());
                out.pages.push(Page {
                    url: final_url.to_string(),
                    html,
                });
            }
            Fetched::Status(s) => out.notes.push(format!("{url}: HTTP {s}, skipped")),
            Fetched::Skipped(why) => out.notes.push(why),
        }
        progress(out.pages.len(), out.pages.len() + queue.len());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Sources: stored, scheduled, imported

/// State of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// Waiting for the importer.
    Queued,
    /// Being read.
    Running,
    /// Last import stored.
    Done,
    /// Last import failed (see its notes).
    Failed,
}

impl SourceState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Queued,
        }
    }
}

/// A website source as the console shows it.
#[derive(Clone, Debug)]
pub struct Source {
    /// Source id (UUID).
    pub id: String,
    /// The start URL or sitemap.
    pub url: String,
    /// The document holding its pages, once imported.
    pub document_id: Option<String>,
    /// Hours between imports; 0 imports only when asked.
    pub every_hours: i64,
    /// When the next import is due (unix seconds).
    pub next_at: Option<i64>,
    /// State.
    pub state: SourceState,
    /// Pages read so far (running) or by the last import.
    pub pages_done: i64,
    /// Pages known so far.
    pub pages_found: i64,
    /// What was skipped and why, or why it failed.
    pub notes: Vec<String>,
    /// When the last import ended.
    pub finished_at: Option<i64>,
}

/// Most notes kept per import.
const MAX_NOTES: usize = 50;

/// Imports website sources into the knowledge base.
pub struct Importer {
    store: Arc<Store>,
    master: Arc<MasterKey>,
    key: Zeroizing<[u8; 32]>,
    client: Client,
    limits: Limits,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Importer(***)")
    }
}

fn url_aad(id: &str) -> Vec<u8> {
    format!("kb-source-url:{id}").into_bytes()
}

fn notes_aad(id: &str) -> Vec<u8> {
    format!("kb-source-notes:{id}").into_bytes()
}

impl Importer {
    /// An importer whose requests follow `policy`.
    pub fn new(
        store: Arc<Store>,
        master: Arc<MasterKey>,
        policy: Policy,
        limits: Limits,
    ) -> Result<Self, outbound::ClientError> {
        let user_agent = concat!(
            "outpost-node/",
            env!("CARGO_PKG_VERSION"),
            " (website import)"
        );
        let client = Client::new(user_agent, Duration::from_secs(10), policy, Redirects::None)?;
        Ok(Self {
            key: master.derive("kb-content"),
            store,
            master,
            client,
            limits,
            wake: tokio::sync::Notify::new(),
        })
    }

    /// The policy its requests follow.
    pub fn policy(&self) -> Policy {
        self.client.policy()
    }

    fn kb(&self) -> KnowledgeBase {
        KnowledgeBase::new(self.store.clone(), &self.master)
    }

    /// Adds a source, due now; its URL must pass the outbound policy.
    pub fn add(&self, url: &str, every_hours: i64) -> Result<String, ImportError> {
        let url = self.client.policy().check(url)?;
        if url.host_str().is_none() {
            return Err(Refused::NotAUrl.into());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let ct = outpost_crypto::aead_seal(&self.key, url.as_str().as_bytes(), &url_aad(&id));
        let now = store::now();
        self.store
            .with(|c| {
                c.execute(
                    "INSERT INTO kb_sources (id, url_ct, every_hours, next_at, state, created_at)
                     VALUES (?1, ?2, ?3, ?4, 'queued', ?4)",
                    params![id, ct, every_hours.max(0), now],
                )?;
                Ok(())
            })
            .map_err(KbError::from)?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Queues an import of `id` now. Returns whether the source exists.
    pub fn queue_now(&self, id: &str) -> Result<bool, KbError> {
        let n = self.store.with(|c| {
            Ok(c.execute(
                "UPDATE kb_sources SET next_at = ?1,
                   state = CASE state WHEN 'running' THEN 'running' ELSE 'queued' END
                 WHERE id = ?2",
                params![store::now(), id],
            )?)
        })?;
        self.wake.notify_one();
        Ok(n > 0)
    }

    /// Deletes a source and the document of its pages. Returns whether it existed.
    pub fn delete(&self, id: &str) -> Result<bool, KbError> {
        let doc: Option<Option<String>> = self.store.with(|c| {
            Ok(c.query_row(
                "SELECT document_id FROM kb_sources WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        let Some(doc) = doc else {
            return Ok(false);
        };
        self.store
            .with(|c| Ok(c.execute("DELETE FROM kb_sources WHERE id = ?1", [id])?))?;
        if let Some(doc) = doc {
            self.kb().delete(&doc)?;
        }
        Ok(true)
    }

    fn row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<RawSource> {
        Ok(RawSource {
            id: r.get(0)?,
            url_ct: r.get(1)?,
            document_id: r.get(2)?,
            every_hours: r.get(3)?,
            next_at: r.get(4)?,
            state: r.get(5)?,
            pages_done: r.get(6)?,
            pages_found: r.get(7)?,
            notes_ct: r.get(8)?,
            finished_at: r.get(9)?,
        })
    }

    fn open(&self, r: RawSource) -> Result<Source, KbError> {
        let url = outpost_crypto::aead_open(&self.key, &r.url_ct, &url_aad(&r.id))
            .map_err(|_| KbError::Decrypt)?;
        let notes = match r.notes_ct {
            Some(ct) => {
                let pt = outpost_crypto::aead_open(&self.key, &ct, &notes_aad(&r.id))
                    .map_err(|_| KbError::Decrypt)?;
                String::from_utf8_lossy(&pt)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Source {
            url: String::from_utf8_lossy(&url).into_owned(),
            document_id: r.document_id,
            every_hours: r.every_hours,
            next_at: r.next_at,
            state: SourceState::parse(&r.state),
            pages_done: r.pages_done,
            pages_found: r.pages_found,
            notes,
            finished_at: r.finished_at,
            id: r.id,
        })
    }

    const COLUMNS: &'static str = "id, url_ct, document_id, every_hours, next_at, state,
        pages_done, pages_found, notes_ct, finished_at";

    /// All sources, oldest first.
    pub fn list(&self) -> Result<Vec<Source>, KbError> {
        let rows = self.store.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {} FROM kb_sources ORDER BY created_at, rowid",
                Self::COLUMNS
            ))?;
            let rows = stmt
                .query_map([], |r| self.row(r))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })?;
        rows.into_iter().map(|r| self.open(r)).collect()
    }

    /// One source.
    pub fn get(&self, id: &str) -> Result<Option<Source>, KbError> {
        let row = self.store.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {} FROM kb_sources WHERE id = ?1", Self::COLUMNS),
                [id],
                |r| self.row(r),
            )
            .optional()?)
        })?;
        row.map(|r| self.open(r)).transpose()
    }

    /// Sources left running by a stopped process are queued again.
    pub fn recover(&self) -> Result<(), KbError> {
        self.store.with(|c| {
            c.execute(
                "UPDATE kb_sources SET state = 'queued', next_at = ?1 WHERE state = 'running'",
                [store::now()],
            )?;
            Ok(())
        })?;
        Ok(())
    }

    /// Imports every source due at `now`, one after the other. Returns how many ran.
    pub async fn run_due(&self, now: i64) -> usize {
        let due: Vec<String> = match self.store.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id FROM kb_sources WHERE next_at IS NOT NULL AND next_at <= ?1
                 AND state != 'running' ORDER BY next_at",
            )?;
            let rows = stmt
                .query_map([now], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        }) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "listing due website imports failed");
                return 0;
            }
        };
        let n = due.len();
        for id in due {
            if let Err(e) = self.import(&id).await {
                tracing::error!(source = %id, error = %e, "website import could not be stored");
            }
        }
        n
    }

    fn set_progress(&self, id: &str, done: usize, found: usize) {
        let r = self.store.with(|c| {
            c.execute(
                "UPDATE kb_sources SET pages_done = ?1, pages_found = ?2 WHERE id = ?3",
                params![done as i64, found as i64, id],
            )?;
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!(error = %e, "website import progress not saved");
        }
    }

    /// Imports source `id` now: reads the site and replaces the source's document with
    /// the pages read (the old one stays when nothing could be read).
    pub async fn import(&self, id: &str) -> Result<(), KbError> {
        let Some(source) = self.get(id)? else {
            return Ok(());
        };
        self.store.with(|c| {
            c.execute(
                "UPDATE kb_sources SET state = 'running', next_at = NULL, pages_done = 0,
                   pages_found = 0 WHERE id = ?1",
                [id],
            )?;
            Ok(())
        })?;
        let result = crawl(&self.client, &source.url, &self.limits, |done, found| {
            self.set_progress(id, done, found)
        })
        .await;
        let (state, notes, pages, document_id) = match result {
            Ok(crawl) if crawl.pages.is_empty() => (
                SourceState::Failed,
                [vec![ImportError::NoPages.to_string()], crawl.notes].concat(),
                0,
                source.document_id.clone(),
            ),
            Ok(crawl) => {
                let title = Url::parse(&source.url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "Website".to_owned());
                let body = serde_json::to_vec(&crawl.pages).unwrap_or_default();
                let kb = self.kb();
                let old = source.document_id.clone();
                let n = crawl.pages.len();
                let stored = tokio::task::spawn_blocking(move || {
                    kb.put_document(old.as_deref(), &title, DocKind::Website, &body)
                })
                .await
                .map_err(|_| KbError::Empty)?;
                match stored {
                    Ok(doc) => (SourceState::Done, crawl.notes, n, Some(doc.id)),
                    Err(e) => (
                        SourceState::Failed,
                        [vec![e.to_string()], crawl.notes].concat(),
                        0,
                        source.document_id.clone(),
                    ),
                }
            }
            Err(e) => (
                SourceState::Failed,
                vec![e.to_string()],
                0,
                source.document_id.clone(),
            ),
        };
        let notes: Vec<String> = notes.into_iter().take(MAX_NOTES).collect();
        let notes_ct =
            outpost_crypto::aead_seal(&self.key, notes.join("\n").as_bytes(), &notes_aad(id));
        let now = store::now();
        let next_at = (source.every_hours > 0).then(|| now + source.every_hours * 3600);
        self.store.with(|c| {
            c.execute(
                "UPDATE kb_sources SET state = ?1, notes_ct = ?2, document_id = ?3,
                   finished_at = ?4, next_at = COALESCE(next_at, ?5), pages_done = ?6,
                   pages_found = ?6
                 WHERE id = ?7",
                params![
                    state.as_str(),
                    notes_ct,
                    document_id,
                    now,
                    next_at,
                    pages as i64,
                    id
                ],
            )?;
            Ok(())
        })?;
        // Counts only: the URL and notes are the customer's.
        tracing::info!(source = %id, state = state.as_str(), pages, "website import finished");
        Ok(())
    }

    /// Runs due imports until the process ends: on start, every minute, and when a
    /// source is added or queued.
    pub async fn run(self: Arc<Self>) {
        if let Err(e) = self.recover() {
            tracing::error!(error = %e, "recovering website imports failed");
        }
        loop {
            self.run_due(store::now()).await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

struct RawSource {
    id: String,
    url_ct: Vec<u8>,
    document_id: Option<String>,
    every_hours: i64,
    next_at: Option<i64>,
    state: String,
    pages_done: i64,
    pages_found: i64,
    notes_ct: Option<Vec<u8>>,
    finished_at: Option<i64>,
}

/// The passages of a website document (its pages as stored by [`Importer::import`]).
pub(super) fn passages(body: &[u8]) -> Result<Vec<super::Chunk>, KbError> {
    let pages: Vec<Page> = serde_json::from_slice(body).map_err(|_| KbError::Decrypt)?;
    Ok(pages
        .iter()
        .flat_map(|p| super::sections::html(&p.html))
        .collect())
}

#[cfg(test)]
#[path = "website_tests.rs"]
mod tests;
