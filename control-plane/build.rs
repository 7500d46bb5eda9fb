//! Records the git commit the binary is built from, for `control-plane --version` and the
//! start-up banner. Outside a git checkout (a source tarball) it says `unknown`, unless
//! `OUTPOST_BUILD_COMMIT` is set. It watches only HEAD and the branch it points at: the
//! index changes on every `git add`, and rebuilding on each would cost more than a
//! `-dirty` mark is worth.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let commit = std::env::var("OUTPOST_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=OUTPOST_BUILD_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=OUTPOST_BUILD_COMMIT");
    // A new commit or checkout moves HEAD or the branch it points at. `--git-path` names
    // where git really keeps each file: in a linked worktree HEAD is the worktree's own
    // but branches live in the main repository, and watching a path that does not exist
    // reran this script, and rebuilt the crate, on every cargo command. For the same
    // reason only files that exist are watched (`packed-refs` appears only after a
    // `git pack-refs` or `gc`).
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for file in watched {
        let path = git(&["rev-parse", "--path-format=absolute", "--git-path", &file]);
        if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
