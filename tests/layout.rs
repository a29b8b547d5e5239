//! The house rules of the layout (README, "Architecture"): which crate may depend on which, and
//! where `unsafe` code may live.

use std::path::Path;

use crate::cli::root;

/// The package names under `[dependencies]` of a manifest (not dev- or build-dependencies).
fn dependencies(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(manifest)).unwrap();
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.to_string());
        }
    }
    names
}

/// Data flows one way: file -> AST -> IR (dsl, api) -> plan -> stages -> store (engine, which
/// computes with the plugins and the tensor crate) -> run directory -> figures -> report
/// (output). No crate depends on one further down that path; the tensor crate sits below the
/// plugins and the engine above them; the API crate carries no engine, plotting, progress or
/// testing weight. (It does parse one language, the claims' `holds:` expressions: both front
/// ends read them into the IR and the output evaluates them, so the grammar lives with the IR.)
#[test]
fn crates_depend_only_down_the_data_path() {
    let forbidden: &[(&str, &[&str])] = &[
        (
            "core/api/Cargo.toml",
            &[
                "ticketlab-tensor",
                "ticketlab-engine",
                "ticketlab-plugins",
                "ticketlab-output",
                "ticketlab-testing",
                "ticketlab-dsl",
                "ticketlab-abi",
                "plotters",
                "indicatif",
                "insta",
                "libloading",
                "matrixmultiply",
                "rayon",
                "miette",
            ],
        ),
        (
            "dsl/Cargo.toml",
            &[
                "ticketlab-tensor",
                "ticketlab-engine",
                "ticketlab-output",
                "ticketlab-testing",
                "ticketlab-plugins",
                "luminal",
            ],
        ),
        (
            "core/engine/Cargo.toml",
            &[
                "ticketlab-plugins",
                "ticketlab-output",
                "ticketlab-testing",
                "ticketlab-dsl",
                "luminal",
                "matrixmultiply",
                "plotters",
                "indicatif",
                "insta",
            ],
        ),
        ("core/output/Cargo.toml", &["ticketlab-testing", "ticketlab-dsl", "insta"]),
        ("core/testing/Cargo.toml", &["ticketlab-output", "ticketlab-dsl", "insta"]),
        (
            "plugins/Cargo.toml",
            &[
                "ticketlab-engine",
                "ticketlab-output",
                "ticketlab-testing",
                "ticketlab-dsl",
                "insta",
            ],
        ),
        ("plugins/sdk/Cargo.toml", &["ticketlab-api", "ticketlab-engine", "insta"]),
    ];
    assert_eq!(
        dependencies("core/abi/Cargo.toml"),
        Vec::<String>::new(),
        "the ABI crate depends on nothing"
    );
    let workspace: Vec<String> = dependencies("core/tensor/Cargo.toml")
        .into_iter()
        .filter(|d| d.starts_with("ticketlab-"))
        .collect();
    assert_eq!(workspace, ["ticketlab-api"], "the tensor crate depends on the API crate alone");
    for (manifest, crates) in forbidden {
        let deps = dependencies(manifest);
        assert!(!deps.is_empty(), "{manifest}: no [dependencies] read");
        for c in *crates {
            assert!(!deps.iter().any(|d| d == c), "{manifest} depends on {c}");
        }
    }
}

/// Every Rust source file of the workspace's crates, relative to the repository.
fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        let rel = path.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !rel.ends_with("target") && !rel.starts_with("plugins/examples") {
                sources(&path, out);
            }
        } else if rel.ends_with(".rs") {
            out.push(rel);
        }
    }
}

/// `unsafe_code` is denied workspace-wide; these files, and only these, allow it.
#[test]
fn unsafe_code_lives_only_in_the_loader_the_abi_the_sdk_and_six_cpu_kernels() {
    let mut files = Vec::new();
    for dir in ["core", "dsl", "plugins"] {
        sources(&root().join(dir), &mut files);
    }
    let mut allowed: Vec<String> = files
        .into_iter()
        .filter(|f| std::fs::read_to_string(root().join(f)).unwrap().contains("allow(unsafe_code)"))
        .collect();
    allowed.sort();
    assert_eq!(
        allowed,
        [
            "core/abi/src/lib.rs",
            "core/engine/src/dylib.rs",
            "core/tensor/src/kernels/cpu/denormals.rs",
            "core/tensor/src/kernels/cpu/exp2.rs",
            "core/tensor/src/kernels/cpu/fuse.rs",
            "core/tensor/src/kernels/cpu/gemm.rs",
            "core/tensor/src/kernels/cpu/pool.rs",
            "core/tensor/src/kernels/cpu/sparse.rs",
            "plugins/sdk/src/lib.rs",
        ]
    );
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("unsafe_code = \"deny\""), "the workspace lints deny unsafe_code");
}
