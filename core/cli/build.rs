//! Stamps the commit the program is built from into `TICKETLAB_COMMIT` (read as
//! `ENGINE_COMMIT`), so that a run's manifest names the engine that computed it. Built from a
//! checkout with changes, the commit gets `-modified`; built outside git, nothing is stamped.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TICKETLAB_COMMIT");
    // A new commit moves HEAD, its branch or the index; an edit changes a source folder
    // (cargo scans a folder for changed files).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = Path::new(&git_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", git_dir.join("index").display());
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", git_dir.join(branch).display());
        }
    }
    for folder in ["../../core", "../../plugins", "../../dsl", "../../Cargo.toml"] {
        println!("cargo:rerun-if-changed={folder}");
    }
    let commit = std::env::var("TICKETLAB_COMMIT").ok().or_else(|| {
        let head = git(&["rev-parse", "--short=12", "HEAD"])?;
        let changed =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if changed { format!("{head}-modified") } else { head })
    });
    if let Some(commit) = commit {
        println!("cargo:rustc-env=TICKETLAB_COMMIT={commit}");
    }
}
