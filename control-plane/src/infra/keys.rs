//! The data-directory keys' check against the database (replicas, issue 15): every
//! replica must sign and verify with the same `ca.key`, `capability.key` and
//! `fingerprint.key`, or nodes enrolled through one are refused by another, console links
//! signed by one fail on another, and secrets' fingerprints stop matching. The first
//! start records a fingerprint of each (`key_fingerprints`; never the key), every later
//! start compares, and a replica with other keys refuses to start, naming them.

use super::db::{self, DbConn};
use super::schema::key_fingerprints;
use diesel::prelude::*;

/// What to do, appended to a refusal.
const FIX: &str = "Copy ca.crt, ca.key, capability.key and fingerprint.key (mode 0600) from the data directory of a replica already running on this database into this one's --data-dir, replacing these, then start it again (docs/OPERATIONS.md, \"Several control-plane replicas\").";

/// Records each `(file name, fingerprint)` the first time the database sees it, and
/// compares with the recorded ones. `Err` names each file whose key differs and what to
/// do.
pub fn check(conn: &mut DbConn, found: &[(&str, String)]) -> anyhow::Result<()> {
    let mut differ = vec![];
    for (name, fp) in found {
        let recorded = match stored(conn, name)? {
            Some(r) => r,
            None => {
                let inserted = diesel::insert_into(key_fingerprints::table)
                    .values((
                        key_fingerprints::name.eq(*name),
                        key_fingerprints::fingerprint.eq(fp),
                        key_fingerprints::created_at.eq(db::now()),
                    ))
                    .execute(conn);
                match inserted {
                    Ok(_) => continue,
                    // Another replica starting at the same moment recorded its own.
                    Err(e) if db::is_unique_violation(&e) => {
                        stored(conn, name)?.unwrap_or_default()
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if recorded != *fp {
            differ.push(*name);
        }
    }
    anyhow::ensure!(differ.is_empty(), "{}", refusal(&differ));
    Ok(())
}

fn stored(conn: &mut DbConn, name: &str) -> anyhow::Result<Option<String>> {
    Ok(key_fingerprints::table
        .find(name)
        .select(key_fingerprints::fingerprint)
        .first(conn)
        .optional()?)
}

/// The refusal in words, naming the files whose keys differ.
fn refusal(differ: &[&str]) -> String {
    format!(
        "this data directory's {} {} not the one{} this database was first used with: a replica must use the same keys as the others (nodes enrolled through one would be refused by another). {FIX}",
        differ.join(", "),
        if differ.len() == 1 { "is" } else { "are" },
        if differ.len() == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_the_keys_and_what_to_do() {
        let one = refusal(&["fingerprint.key"]);
        assert!(
            one.contains("fingerprint.key is not the one this database"),
            "{one}"
        );
        assert!(one.contains("Copy ca.crt, ca.key, capability.key and fingerprint.key"));
        let two = refusal(&["ca.key", "capability.key"]);
        assert!(
            two.contains("ca.key, capability.key are not the ones"),
            "{two}"
        );
    }
}
