//! Pins the outputs of a tiny experiment that uses this plugin (tests/tiny.yaml). After an
//! intended change, `cargo insta review` shows what moved and accepts it.
//!
//! The experiment runs in the `ticketlab` program you installed (`ticketlab snapshot FILE
//! --plugin LIB`; set `TICKETLAB` to use another build), so this test compiles only this crate,
//! the SDK and insta, not ticketlab itself.
//!
//! The file is the same in every example crate: copied into a plugin crate of your own, it
//! builds and loads that crate's library (named after the package, `-` written `_`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds this crate's library (`cargo test` does not build a `cdylib`) and returns its path.
fn build_plugin() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the plugin failed");
    let name = env!("CARGO_PKG_NAME").replace('-', "_");
    let file = format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    target.join("debug").join(file)
}

#[test]
fn tiny_experiment() {
    let program = std::env::var_os("TICKETLAB").unwrap_or_else(|| "ticketlab".into());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tiny.yaml");
    let out = Command::new(&program)
        .arg("snapshot")
        .arg(&file)
        .arg("--plugin")
        .arg(build_plugin())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{}` ({e}): install ticketlab or set TICKETLAB to its path",
                program.to_string_lossy()
            )
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`ticketlab snapshot` failed:\n{stderr}");
    insta::assert_snapshot!(String::from_utf8(out.stdout).expect("the snapshot is UTF-8"));
}
