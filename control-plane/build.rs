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
    // A new commit or checkout moves HEAD or the branch it points at.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{head_ref}");
        }
        println!("cargo:rerun-if-changed={git_dir}/packed-refs");
    }
}
