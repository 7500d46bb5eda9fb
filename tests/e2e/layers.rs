//! The layout's rules (docs/ARCHITECTURE.md "Layers"), checked by reading the sources the way
//! the route table replaced scraping for routes: a file that breaks a rule fails this test
//! with its path and the reference that breaks it.
//!
//! Control plane: `infra/` and `error.rs` are the floor and name nothing above them; a
//! domain's `model.rs` uses no framework; only a domain's store names tables; only web
//! code, `app/`, `cli/` and `http/` see the app state; the domains' model, store and service
//! files import each other in one fixed order (no cycle), so reactions across domains are
//! wired in `app/` or a handler. Node: platform knows nothing above it, domain code never
//! imports the engine, the web or the link to the CP. Both: no source file above 700 lines
//! without a reason at its top; the shared crates depend on neither binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files that see the app state outside web code, each with its reason.
const STATE_EXCEPTIONS: &[(&str, &str)] = &[];

/// Longer than 700 lines is allowed with a line `//! Long because …` among a file's first
/// ten lines.
const MAX_LINES: usize = 700;

fn sources(root: &Path) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                // A test module in its own file (`#[cfg(test)] #[path = "x_tests.rs"]`):
                // tests may reach anywhere, as inside `#[cfg(test)] mod tests {}`.
                let name = p.file_name().unwrap().to_string_lossy();
                if name == "tests.rs" || name.ends_with("_tests.rs") {
                    continue;
                }
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without comments and without its `#[cfg(test)]` module (tests may
/// reach anywhere).
fn code(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    body.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules of this crate a file refers to (`crate::x`, `super::super::x` is not
/// followed: files refer to other domains by `crate::`).
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `outpost_crate::`, not ours
        }
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
        // `use crate::{a, b::c}`
        if rest.starts_with('{') {
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            for part in group.split(',') {
                let n: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !n.is_empty() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// Whether every `crate::<domain>::…` path in `code` goes through its `model`.
fn refs_beyond_model(code: &str, domain: &str) -> bool {
    let prefix = format!("crate::{domain}::");
    code.match_indices(&prefix)
        .all(|(i, _)| code[i + prefix.len()..].starts_with("model"))
}

fn first_segment(rel: &str) -> &str {
    rel.split('/').next().unwrap().trim_end_matches(".rs")
}

/// What a control-plane file is.
#[derive(Debug, PartialEq)]
enum Kind {
    Floor,
    Wiring,
    Http,
    Model,
    Store,
    Web,
    /// service.rs and every other non-web file of a domain.
    Service,
}

fn kind(rel: &str) -> Kind {
    let first = first_segment(rel);
    let file = rel.rsplit('/').next().unwrap();
    let in_dir = |d: &str| rel.split('/').any(|s| s == d);
    match first {
        "infra" | "error" => Kind::Floor,
        "app" | "cli" | "lib" | "main" | "config" => Kind::Wiring,
        "http" => Kind::Http,
        _ if file == "model.rs" || in_dir("model") => Kind::Model,
        _ if file == "store.rs" || in_dir("store") => Kind::Store,
        _ if file == "web.rs" || in_dir("web") => Kind::Web,
        _ => Kind::Service,
    }
}

fn too_long(root: &Path, files: &[(String, String)]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, text)| {
            text.lines().count() > MAX_LINES
                && !text.lines().take(10).any(|l| l.contains("Long because"))
        })
        .map(|(rel, text)| {
            format!(
                "{}/{rel}: {} lines and no `//! Long because …` at its top",
                root.display(),
                text.lines().count()
            )
        })
        .collect()
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut vec![], &mut done) {
            return Some(c);
        }
    }
    None
}

fn cp_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_control_plane_keeps_its_layers() {
    let root = cp_root();
    let files = sources(&root);
    let top: BTreeSet<String> = files
        .iter()
        .map(|(rel, _)| first_segment(rel).to_owned())
        .collect();
    let wiring = ["app", "cli", "lib", "main", "config", "http"];
    let floor = ["infra", "error"];
    let mut broken = vec![];
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in &files {
        let code = code(text);
        let refs = crate_refs(&code);
        let k = kind(rel);
        let own = first_segment(rel);
        match k {
            Kind::Floor => {
                for r in refs.iter().filter(|r| !floor.contains(&r.as_str())) {
                    broken.push(format!("{rel}: the floor names crate::{r}"));
                }
            }
            Kind::Model => {
                for fw in ["actix_web", "diesel", "askama"] {
                    if code.contains(&format!("{fw}::")) || code.contains(&format!("use {fw}")) {
                        broken.push(format!("{rel}: a model uses {fw}"));
                    }
                }
            }
            _ => {}
        }
        if code.contains("infra::schema") && k != Kind::Store && k != Kind::Floor {
            broken.push(format!("{rel}: names tables outside a store"));
        }
        let sees_state = refs.contains("app") && code.contains("State");
        if sees_state
            && !matches!(k, Kind::Web | Kind::Wiring | Kind::Http)
            && !STATE_EXCEPTIONS.iter().any(|(f, _)| f == rel)
        {
            broken.push(format!("{rel}: sees the app state outside web code"));
        }
        if matches!(k, Kind::Model | Kind::Store | Kind::Service) {
            if refs.contains("http") {
                broken.push(format!("{rel}: a domain's inner file uses crate::http"));
            }
            // A model is a node of its own (`x::model`): any domain may use another's
            // types, as long as models too form no cycle.
            let me = if k == Kind::Model {
                format!("{own}::model")
            } else {
                own.to_owned()
            };
            let deps = graph.entry(me.clone()).or_default();
            for r in &refs {
                if !top.contains(r) || wiring.contains(&r.as_str()) || floor.contains(&r.as_str()) {
                    continue;
                }
                let to_model = code.contains(&format!("crate::{r}::model"))
                    && !code.contains(&format!("crate::{r}::{{"))
                    && refs_beyond_model(&code, r);
                let target = if to_model {
                    format!("{r}::model")
                } else {
                    r.clone()
                };
                if target != me && !(r == own && k != Kind::Model) {
                    deps.insert(target);
                }
            }
        }
    }
    for (f, why) in STATE_EXCEPTIONS {
        assert!(
            files.iter().any(|(rel, _)| rel == f),
            "{f} is an exception but no longer exists ({why})"
        );
    }
    if let Some(c) = cycle(&graph) {
        broken.push(format!(
            "domains import each other in a cycle (model/store/service files): {}",
            c.join(" → ")
        ));
    }
    broken.extend(too_long(&root, &files));
    assert!(
        broken.is_empty(),
        "layering rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_node_keeps_its_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent-node/src");
    let files = sources(&root);
    // Each layer and what it must not name.
    let rules: &[(&str, &[&str])] = &[
        ("platform", &["domain", "engine", "web", "uplink"]),
        ("domain", &["engine", "web", "uplink"]),
        ("engine", &["web", "uplink"]),
    ];
    let mut broken = vec![];
    for (rel, text) in &files {
        let refs = crate_refs(&code(text));
        for (layer, banned) in rules {
            if first_segment(rel) == *layer {
                for b in banned.iter().filter(|b| refs.contains(**b)) {
                    broken.push(format!("agent-node/src/{rel}: {layer} names crate::{b}"));
                }
            }
        }
    }
    for (layer, _) in rules {
        assert!(
            files.iter().any(|(rel, _)| first_segment(rel) == *layer),
            "the node has no {layer}/ folder"
        );
    }
    broken.extend(too_long(&root, &files));
    assert!(
        broken.is_empty(),
        "layering rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_shared_crates_depend_on_neither_binary() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    for e in std::fs::read_dir(&crates).unwrap().flatten() {
        let manifest = std::fs::read_to_string(e.path().join("Cargo.toml")).unwrap();
        for bin in ["agent-node", "control-plane"] {
            assert!(
                !manifest
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{bin} "))
                        || l.trim_start().starts_with(&format!("{bin}."))),
                "{} depends on {bin}",
                e.path().display()
            );
        }
    }
}

#[test]
fn the_checks_see_what_they_check() {
    // The reader finds references in the forms the code uses.
    let refs =
        crate_refs("use crate::{accounts, members::Role};\nlet x = crate::infra::db::now();");
    assert_eq!(
        refs,
        ["accounts", "infra", "members"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert!(crate_refs("outpost_crate::x // crate::y").contains("y"));
    assert!(!crate_refs(&code("// crate::y\n")).contains("y"));
    assert_eq!(kind("workspaces/model.rs"), Kind::Model);
    assert_eq!(kind("billing/web/pages.rs"), Kind::Web);
    assert_eq!(kind("provisioning/jobs.rs"), Kind::Service);
    assert_eq!(kind("infra/db.rs"), Kind::Floor);
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(cycle(&g).is_some());
    g.insert("b".to_owned(), BTreeSet::new());
    assert!(cycle(&g).is_none());
}
