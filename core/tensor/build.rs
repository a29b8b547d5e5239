//! With the `cuda` feature, links the CUDA libraries luminal_cuda needs when a toolkit is
//! found. luminal_cudarc's own discovery is disabled (its `ci-check` feature) so that
//! `cargo check --features cuda` also works on machines without CUDA.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    for var in ["CUDA_ROOT", "CUDA_PATH", "CUDA_TOOLKIT_ROOT_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let candidates: Vec<std::path::PathBuf> = ["CUDA_ROOT", "CUDA_PATH", "CUDA_TOOLKIT_ROOT_DIR"]
        .iter()
        .filter_map(|v| std::env::var_os(v).map(Into::into))
        .chain(["/usr/local/cuda", "/opt/cuda", "/usr"].iter().map(Into::into))
        .collect();
    let Some(root) = candidates.iter().find(|p| p.join("include").join("cuda.h").is_file()) else {
        println!(
            "cargo:warning=feature `cuda`: no CUDA toolkit found (set CUDA_ROOT); checking works, linking a binary will not"
        );
        return;
    };
    for lib in ["lib64", "lib", "lib/x64", "lib64/stubs", "targets/x86_64-linux/lib"] {
        let dir = root.join(lib);
        if dir.is_dir() {
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
    }
    for lib in ["cuda", "nvrtc", "cublas", "cublasLt", "curand"] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}
