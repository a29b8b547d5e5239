//! Dynamic plugins end to end: the example libraries in plugins/examples/ and the misbehaving
//! fixtures in tests/fixtures/bad_plugins/ are built with cargo from the test, loaded, checked
//! against rules recomputed here, and every way a library can be refused is pinned with its
//! error text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::cli::root;

use ticketlab_api::artifact::Artifact;
use ticketlab_api::data::{Dataset, DatasetInfo, Split, Targets};
use ticketlab_api::plugin::describe::{describe, list, stage_kind};
use ticketlab_api::plugin::registry::{Origin, PluginEntry, Registry};
use ticketlab_api::plugin::{Params, PluginKind, PruneContext, StageContext};
use ticketlab_api::runtime::Runtime;
use ticketlab_api::tensor::{
    Architecture, GraphBuilder, HostTensor, Init, MaskSet, NamedTensors, ParamDef, Var,
};
use ticketlab_api::{Error, Result};
use ticketlab_engine::dylib::register_library;
use ticketlab_engine::{ExecOptions, NoEvents, Store, execute, plan};
use ticketlab_plugins as _;
use ticketlab_tensor::pruning::{self, MaskRequest};

// ---- building and loading the libraries ----------------------------------------------------

/// Shared by every run of the tests (and by both example crates and the fixtures).
fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("examples-build")
}

/// Cargo workspaces already built by this test process.
static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Runs `cargo COMMAND --workspace` on the cargo workspace in `dir` (relative to the
/// repository), in [`build_dir`]; panics with cargo's output if it fails, else returns stdout.
fn cargo(command: &str, dir: &str) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([command, "--workspace", "--quiet", "--manifest-path"])
        .arg(root().join(dir).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(build_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env("TICKETLAB", env!("CARGO_BIN_EXE_ticketlab"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cargo {command} in {dir} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Builds the cargo workspace in `dir` (relative to the repository) once per test process.
fn build(dir: &str) {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.iter().any(|d| d == dir) {
        return;
    }
    cargo("build", dir);
    built.push(dir.to_string());
}

/// The path of the library built from crate `name` of the workspace in `dir`.
fn library(dir: &str, name: &str) -> PathBuf {
    build(dir);
    let file = format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    build_dir().join("debug").join(file)
}

/// An example plugin of plugins/examples/.
fn example(name: &str) -> PathBuf {
    library(&format!("plugins/examples/{name}"), name)
}

/// A library of tests/fixtures/bad_plugins/.
fn fixture(name: &str) -> PathBuf {
    library("tests/fixtures/bad_plugins", name)
}

/// The plugin called `name` in the library at `path`.
fn entry(path: &Path, name: &str) -> PluginEntry {
    let registry = registry_of(path);
    registry
        .entries()
        .find(|e| e.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("{} exports no `{name}`", path.display()))
}

/// A registry holding only the plugins of `path`.
fn registry_of(path: &Path) -> Registry {
    let mut r = Registry::default();
    register_library(&mut r, path).unwrap_or_else(|e| panic!("{e}"));
    r
}

/// Parameters as the checker gives them to a plugin: the stage kind's core parameters and the
/// plugin's, defaults filled, then `overrides`.
fn params(entry: &PluginEntry, overrides: &[(&str, serde_json::Value)]) -> Params {
    let mut p = Params::new()
        .with_defaults(stage_kind(entry.kind).core_params())
        .with_defaults(&entry.params);
    for (k, v) in overrides {
        p = p.with(k, v.clone());
    }
    p
}

/// Error texts with machine-specific paths replaced.
fn redact(text: &str) -> String {
    let mut out = text.to_string();
    let build = build_dir();
    for (path, label) in [
        (build.canonicalize().unwrap_or(build.clone()), "[BUILD]"),
        (build, "[BUILD]"),
        (std::env::temp_dir(), "[TMP]"),
    ] {
        out = out.replace(&path.display().to_string(), label);
    }
    out
}

// ---- a tiny model for scoring --------------------------------------------------------------

/// Two prunable layers; only scored, never run.
struct TwoLayers;

impl Architecture for TwoLayers {
    fn parameters(&self) -> Vec<ParamDef> {
        let def = |name: &str, shape: Vec<usize>| ParamDef {
            name: name.into(),
            shape,
            init: Init::Normal { std: 1.0 },
            prunable: true,
        };
        vec![def("a.weight", vec![4, 6]), def("b.weight", vec![6, 3])]
    }

    fn forward(&self, _: &mut GraphBuilder, _: &BTreeMap<String, Var>, _: Var) -> Result<Var> {
        Err(Error::Other("TwoLayers is only scored".into()))
    }
}

/// Deterministic weights and a mask with a few entries already pruned.
fn weights_and_mask() -> (NamedTensors, MaskSet) {
    let mut weights = NamedTensors::new();
    let mut mask = MaskSet::new();
    for p in TwoLayers.parameters() {
        let n: usize = p.shape.iter().product();
        let w = (0..n).map(|i| ((i * 37 + p.name.len() * 11) % 23) as f32 / 7.0 - 1.5).collect();
        let m = (0..n).map(|i| if i % 5 == 2 { 0.0 } else { 1.0 }).collect();
        weights.insert(p.name.clone(), HostTensor::new(p.shape.clone(), w));
        mask.insert(p.name, HostTensor::new(p.shape, m));
    }
    (weights, mask)
}

fn tiny_dataset() -> Dataset {
    let split = Split {
        x: HostTensor::new(vec![2, 2], vec![0.0, 1.0, 1.0, 0.0]),
        y: Targets::Classes { labels: vec![1, 0], n_classes: 2 },
    };
    Dataset {
        description: "two points".into(),
        info: DatasetInfo { input_shape: vec![2], output_dim: 2, tokens: None },
        train: split.clone(),
        test: split,
    }
}

fn stage_context(seed: u64) -> StageContext {
    StageContext::new("mask", seed, root())
}

/// Scores of the pruner `name` of the library at `path` on [`weights_and_mask`].
fn score_with(
    path: &Path,
    name: &str,
    overrides: &[(&str, serde_json::Value)],
    seed: u64,
) -> Result<NamedTensors> {
    let e = entry(path, name);
    let pruner = registry_of(path).pruner(name)?;
    let (weights, mask) = weights_and_mask();
    let (data, ctx) = (tiny_dataset(), stage_context(seed));
    let prune = PruneContext {
        arch: &TwoLayers,
        params: &weights,
        mask: &mask,
        reference_mask: None,
        data: Some(&data),
        ctx: &ctx,
        round: (0, 1),
    };
    pruner.score(&params(&e, overrides), &prune).map(|s| s.scores)
}

// ---- the rule of the example pruner, recomputed independently ------------------------------

/// SplitMix64, FNV-1a and Box-Muller exactly as the SDK documents them.
struct HostRng(u64);

impl HostRng {
    fn for_stream(seed: u64, stream: &str) -> Self {
        let h = stream.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        HostRng(seed ^ h)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// `|w| + noise * mean_alive(|w|) * z` per layer (plugins/examples/noisy_magnitude).
fn host_noisy_magnitude(
    weights: &NamedTensors,
    mask: &MaskSet,
    noise: f64,
    seed: u64,
) -> NamedTensors {
    mask.iter()
        .map(|(name, m)| {
            let w = &weights[name];
            let alive: Vec<f64> = w
                .data
                .iter()
                .zip(&m.data)
                .filter(|(_, k)| **k != 0.0)
                .map(|(v, _)| f64::from(v.abs()))
                .collect();
            let mean =
                if alive.is_empty() { 0.0 } else { alive.iter().sum::<f64>() / alive.len() as f64 };
            let mut rng = HostRng::for_stream(seed, name);
            let s = w
                .data
                .iter()
                .map(|v| (f64::from(v.abs()) + noise * mean * rng.normal()) as f32)
                .collect();
            (name.clone(), HostTensor::new(w.shape.clone(), s))
        })
        .collect()
}

// ---- the examples --------------------------------------------------------------------------

#[test]
fn example_pruner_scores_follow_the_documented_rule() {
    let lib = example("noisy_magnitude");
    let e = entry(&lib, "noisy_magnitude");
    assert_eq!((e.kind, e.version.as_str()), (PluginKind::Pruner, "0.1.0"));
    let Origin::Dynamic { path, sha256 } = &e.origin else { panic!("not dynamic") };
    assert_eq!(path, &lib.canonicalize().unwrap());
    assert!(sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_hexdigit()), "{sha256}");
    assert!(e.fingerprint().ends_with(&format!("#{sha256}")), "the library hash enters cache keys");

    let (weights, mask) = weights_and_mask();
    for (noise, seed) in [(0.0, 1), (0.3, 7), (2.0, 12345)] {
        let scores = score_with(&lib, "noisy_magnitude", &[("noise", noise.into())], seed).unwrap();
        assert_eq!(
            scores,
            host_noisy_magnitude(&weights, &mask, noise, seed),
            "noise {noise}, seed {seed}"
        );
    }
    // `noise_seed` replaces the stage's seed.
    let fixed =
        score_with(&lib, "noisy_magnitude", &[("noise", 0.5.into()), ("noise_seed", 99.into())], 3)
            .unwrap();
    assert_eq!(fixed, host_noisy_magnitude(&weights, &mask, 0.5, 99));
}

#[test]
fn example_pruner_masks_match_the_host_rule() {
    let lib = example("noisy_magnitude");
    let e = entry(&lib, "noisy_magnitude");
    let pruner = registry_of(&lib).pruner("noisy_magnitude").unwrap();
    let (weights, current) = weights_and_mask();
    let (data, ctx) = (tiny_dataset(), stage_context(5));
    for scope in ["global", "layerwise"] {
        let p = params(&e, &[("noise", 0.4.into()), ("rate", 0.5.into()), ("scope", scope.into())]);
        let input = PruneContext {
            arch: &TwoLayers,
            params: &weights,
            mask: &current,
            reference_mask: None,
            data: Some(&data),
            ctx: &ctx,
            round: (0, 1),
        };
        let request =
            MaskRequest { pruner_id: "pruner/noisy_magnitude", params: &p, input, scored_at: None };
        let mask = pruning::make_mask(pruner.as_ref(), &request).unwrap();
        let scores = host_noisy_magnitude(&weights, &current, 0.4, 5);
        let alive = |m: &HostTensor| m.data.iter().filter(|v| **v != 0.0).count();
        let expected = if scope == "global" {
            let total: usize = current.values().map(HostTensor::len).sum();
            pruning::select_global(&current, &scores, (0.5 * total as f64).round() as usize)
        } else {
            pruning::select_per_layer(&current, &scores, |_, total| {
                (0.5 * total as f64).round() as usize
            })
        };
        assert_eq!(mask.masks, expected, "scope {scope}");
        // Monotone: nothing pruned before is revived.
        for (name, m) in &mask.masks {
            assert!(
                m.data.iter().zip(&current[name].data).all(|(new, old)| *new <= *old),
                "{name}"
            );
            assert!(alive(m) <= alive(&current[name]));
        }
    }
}

#[test]
fn example_task_is_modular_subtraction_in_the_built_in_layout() {
    let lib = example("modsub");
    let e = entry(&lib, "modsub");
    let task = registry_of(&lib).dataset("modsub").unwrap();
    let ctx = stage_context(11);
    let p = params(&e, &[("p", 7.into()), ("train_fraction", 0.5.into())]);
    let d = task.build(&p, &ctx).unwrap();
    assert_eq!((d.train.len(), d.test.len()), (24, 25), "floor(0.5 * 49) training pairs");
    assert_eq!(d.train.x.shape, vec![24, 2, 7]);
    assert_eq!((d.info.input_shape.as_slice(), d.info.output_dim), (&[2, 7][..], 7));
    assert_eq!(d.info.tokens.as_ref().map(|t| (t.vocab, t.n_ctx)), Some((7, 2)));
    let mut seen = Vec::new();
    for split in [&d.train, &d.test] {
        let Targets::Classes { labels, n_classes: 7 } = &split.y else { panic!("7 classes") };
        for (r, &label) in labels.iter().enumerate() {
            let row = &split.x.data[r * 14..(r + 1) * 14];
            assert_eq!(row.iter().filter(|v| **v == 1.0).count(), 2, "two one-hot tokens");
            let a = row[..7].iter().position(|v| *v == 1.0).unwrap();
            let b = row[7..].iter().position(|v| *v == 1.0).unwrap();
            assert_eq!(label as usize, (a + 7 - b) % 7, "({a} - {b}) mod 7");
            seen.push((a, b));
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..7).flat_map(|a| (0..7).map(move |b| (a, b))).collect::<Vec<_>>(),
        "every ordered pair once"
    );

    // The same examples as the built-in task's subtraction over all pairs, only split differently.
    let builtin = Registry::builtin().unwrap().dataset("modular").unwrap();
    let bp = Params::new()
        .with("op", "subtract")
        .with("p", 7)
        .with("pairs", "all")
        .with("train_fraction", 0.5)
        .with("split_seed", 0);
    let b = builtin.build(&bp, &ctx).unwrap();
    assert_eq!(
        (b.info.input_shape.clone(), b.info.output_dim, b.info.tokens.clone()),
        (d.info.input_shape.clone(), d.info.output_dim, d.info.tokens.clone())
    );
    let rows = |d: &Dataset| {
        let mut v: Vec<(Vec<u32>, u32)> = Vec::new();
        for s in [&d.train, &d.test] {
            let Targets::Classes { labels, .. } = &s.y else { unreachable!() };
            for (r, l) in labels.iter().enumerate() {
                v.push((s.x.data[r * 14..(r + 1) * 14].iter().map(|x| *x as u32).collect(), *l));
            }
        }
        v.sort();
        v
    };
    assert_eq!(rows(&d), rows(&b));

    // Deterministic in the seed, and the seed matters.
    assert_eq!(task.build(&p, &ctx).unwrap(), d);
    assert_ne!(task.build(&p, &stage_context(12)).unwrap().train, d.train);

    // `p` is capped (the inputs take 2p³ floats): by the schema, and by the plugin itself.
    let spec = e.param("p").unwrap();
    assert!(spec.check(&256.into()).is_ok());
    let err = spec.check(&257.into()).unwrap_err();
    assert!(err.contains("256"), "{err}");
    let err = task.build(&params(&e, &[("p", 1000.into())]), &ctx).unwrap_err().to_string();
    assert!(err.contains("p = 1000 needs 2p³ = 2000000000 one-hot input floats (7.5 GiB); this task allows p up to 256"), "{err}");
}

#[test]
fn plugins_list_shows_dynamic_plugins_next_to_built_ins() {
    let builtin = Registry::builtin().unwrap();
    let mut full = builtin.clone();
    // Two built-ins and the examples: the snapshot does not move when built-ins change.
    let mut some = Registry::default();
    for (kind, name) in [(PluginKind::Dataset, "modular"), (PluginKind::Pruner, "magnitude")] {
        some.insert(builtin.get(kind, name).unwrap().clone()).unwrap();
    }
    for lib in [example("noisy_magnitude"), example("modsub")] {
        register_library(&mut full, &lib).unwrap();
        register_library(&mut some, &lib).unwrap();
    }
    insta::assert_snapshot!("plugins_list", list(&some));
    // The full list has every plugin once, sorted by kind then name.
    let listed: Vec<(String, String, String)> = list(&full)
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0].to_string(), cols[1].to_string(), cols[3].to_string())
        })
        .collect();
    let expected: Vec<(String, String, String)> = full
        .entries()
        .map(|e| (e.kind.to_string(), e.name.clone(), e.origin.label().to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert!(listed.contains(&("pruner".into(), "noisy_magnitude".into(), "dynamic".into())));
    assert!(listed.contains(&("dataset".into(), "modsub".into(), "dynamic".into())));
    insta::assert_snapshot!(
        "describe_dynamic_pruner",
        redact(&describe(&full, "pruner/noisy_magnitude").unwrap())
    );
    insta::assert_snapshot!(
        "describe_dynamic_task",
        redact(&describe(&full, "dataset/modsub").unwrap())
    );
}

#[test]
fn describe_a_built_in() {
    let registry = Registry::builtin().unwrap();
    insta::assert_snapshot!(
        "describe_builtin_pruner",
        describe(&registry, "pruner/magnitude").unwrap()
    );
    let err = describe(&registry, "pruner/magnitud").unwrap_err().to_string();
    assert!(err.contains("did you mean `magnitude`?"), "{err}");
    let err = describe(&registry, "magnitude").unwrap_err().to_string();
    assert!(err.contains("did you mean `pruner/magnitude`?"), "{err}");
}

/// The example stages `describe` prints are checked by the experiment-file front end, in both
/// forms, for every plugin (built-in and dynamic), inside a small pipeline that provides the
/// stages they connect to.
#[test]
fn described_example_stages_pass_the_checker() {
    let mut registry = Registry::builtin().unwrap();
    for lib in [example("noisy_magnitude"), example("modsub")] {
        register_library(&mut registry, &lib).unwrap();
    }
    let base_yaml = [
        ("data", "  data: { kind: dataset, uses: modular, with: { p: 7 } }\n"),
        ("init", "  init: { kind: model, uses: mlp_modular, inputs: { data: data } }\n"),
        (
            "dense",
            "  dense: { kind: train, uses: standard, inputs: { model: init, data: data } }\n",
        ),
    ];
    let base_tlx = [
        ("data", "stage data: dataset modular { p = 7 }\n"),
        ("init", "stage init: model mlp_modular(data = data)\n"),
        ("dense", "stage dense: train standard(model = init, data = data)\n"),
    ];
    for entry in registry.entries() {
        let text = describe(&registry, &entry.id()).unwrap();
        let (_, examples) =
            text.split_once("Example stage (YAML):\nstages:\n").expect("a YAML example");
        let (yaml, tlx) = examples.split_once("\nExample stage (tlx):\n").expect("a tlx example");
        let name = yaml.trim_start().split(':').next().unwrap();
        let others = |base: &[(&str, &str)]| {
            base.iter().filter(|(n, _)| *n != name).map(|(_, s)| *s).collect::<String>()
        };
        let yaml_file = format!("name: example\nseed: 0\nstages:\n{}{yaml}", others(&base_yaml));
        let tlx_file = format!("experiment example {{\n{}{tlx}}}\n", others(&base_tlx));
        for (file, source) in [("example.yaml", &yaml_file), ("example.tlx", &tlx_file)] {
            if let Err(d) = ticketlab_dsl::load_source(file, source.as_bytes(), &registry, &[]) {
                panic!("the example of {} does not check:\n{source}\n{}", entry.id(), d.render());
            }
        }
    }
}

/// A tiny experiment using both example plugins, run by the engine: the mask it stores is the
/// host rule applied to the trained weights.
#[test]
fn a_tiny_experiment_uses_both_example_plugins() {
    let (pruner_lib, task_lib) = (example("noisy_magnitude"), example("modsub"));
    let text = format!(
        "name: dynamic_plugins
seed: 3
plugins: [{pruner}, {task}]
stages:
  data: {{ kind: dataset, uses: modsub, with: {{ p: 7, train_fraction: 0.5 }} }}
  init: {{ kind: model, uses: mlp_modular, with: {{ d_emb: 8, width: 6 }}, inputs: {{ data: data }} }}
  dense: {{ kind: train, uses: standard, with: {{ steps: 5, eval_every: 5, resume_every: 0 }}, inputs: {{ model: init, data: data }} }}
  mask: {{ kind: prune, uses: noisy_magnitude, with: {{ rate: 0.6, scope: layerwise, noise: 0.5 }}, inputs: {{ from: dense, data: data }} }}
",
        pruner = pruner_lib.display(),
        task = task_lib.display()
    );
    // What the CLI does: load the file's libraries, then check the file against the registry.
    let mut registry = Registry::builtin().unwrap();
    for lib in ticketlab_dsl::plugin_paths("dynamic.yaml", text.as_bytes())
        .unwrap_or_else(|d| panic!("{}", d.render()))
    {
        register_library(&mut registry, Path::new(&lib)).unwrap();
    }
    let ir = ticketlab_dsl::load_source("dynamic.yaml", text.as_bytes(), &registry, &[])
        .unwrap_or_else(|d| panic!("{}", d.render()));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("store"));
    let planned = plan(&ir, &registry, Some(&store), &Runtime::default()).unwrap();
    let options = ExecOptions {
        runtime: Runtime { base_dir: dir.path().to_path_buf(), ..Runtime::default() },
        jobs: 1,
        ..ExecOptions::default()
    };
    let exec = execute(&planned, &registry, &store, &options, &mut NoEvents);
    assert!(exec.is_ok(), "{:?}", exec.error.map(|e| e.to_string()));

    let Some(Artifact::Dataset(data)) = exec.artifacts.get("data") else { panic!("data") };
    assert!(data.description.starts_with("(a-b) mod 7"), "{}", data.description);
    let Some(Artifact::Run(run)) = exec.artifacts.get("dense") else { panic!("dense") };
    let Some(Artifact::Mask(mask)) = exec.artifacts.get("mask") else { panic!("mask") };
    let dense: MaskSet = run
        .init
        .prunable
        .iter()
        .map(|n| (n.clone(), HostTensor::full(run.final_params[n].shape.clone(), 1.0)))
        .collect();
    let seed = ir.stage("mask").unwrap().seed;
    let scores = host_noisy_magnitude(&run.final_params, &dense, 0.5, seed);
    let expected = pruning::select_per_layer(&dense, &scores, |_, total| {
        (0.4 * total as f64).round() as usize
    });
    assert_eq!(mask.masks, expected);
    assert!(mask.pruner.starts_with("pruner/noisy_magnitude"), "{}", mask.pruner);
}

/// The example crates' own tests (`tests/snapshot.rs`: a tiny experiment with the plugin, run
/// by the `ticketlab` program and pinned with insta), run as a researcher runs them, against
/// the program built with these tests.
#[test]
fn example_crates_pass_their_own_tests() {
    for name in ["modsub", "noisy_magnitude"] {
        let stdout = cargo("test", &format!("plugins/examples/{name}"));
        assert!(
            stdout.contains("1 passed"),
            "plugins/examples/{name} ran no snapshot test:\n{stdout}"
        );
    }
}

/// Each example is a crate to copy on its own, so the snapshot test is a copy in each, not a
/// shared file: the copies must stay the same.
#[test]
fn the_example_snapshot_tests_are_one_file() {
    let read = |name: &str| {
        std::fs::read_to_string(root().join(format!("plugins/examples/{name}/tests/snapshot.rs")))
            .unwrap()
    };
    assert_eq!(
        read("modsub"),
        read("noisy_magnitude"),
        "change both copies of tests/snapshot.rs alike"
    );
}

// ---- bad libraries -------------------------------------------------------------------------

fn load_error(path: &Path) -> String {
    match register_library(&mut Registry::default(), path) {
        Ok(ids) => panic!("{} loaded with plugins {ids:?}", path.display()),
        Err(e) => redact(&e.to_string()),
    }
}

#[test]
fn refuses_a_path_that_does_not_exist() {
    let missing = build_dir().join("debug").join("libno_such_plugin.so");
    insta::assert_snapshot!(load_error(&missing), @"plugin `[BUILD]/debug/libno_such_plugin.so`: no such file; build the plugin crate (`cargo build`) and pass the library it produces, e.g. `target/debug/libmy_plugin.so`");
}

#[test]
fn refuses_a_directory() {
    build("tests/fixtures/bad_plugins");
    let dir = build_dir().join("debug");
    insta::assert_snapshot!(load_error(&dir), @"plugin `[BUILD]/debug`: is not a file; pass the shared library itself, e.g. `target/debug/libmy_plugin.so`");
}

#[test]
fn refuses_a_file_that_is_not_a_library() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, "not a shared library\n").unwrap();
    let err = load_error(&fake);
    // The loader's own words differ between platforms; keep them out of the snapshot.
    let start = err.find("library (").expect("loader detail") + "library (".len();
    let end = err[start..].find("); pass").expect("end of loader detail") + start;
    let shown = format!("{}[loader message]{}", &err[..start], &err[end..])
        .replace(&redact(&dir.path().canonicalize().unwrap().display().to_string()), "[DIR]");
    insta::assert_snapshot!(shown, @"plugin `[DIR]/libfake.so`: is not a loadable shared library ([loader message]); pass a `cdylib` built with ticketlab-plugin-sdk");
}

/// A library cut short (an interrupted copy or build) is refused with a message, in this
/// process: before the check, the system loader mapped it and the process died of SIGBUS.
#[test]
fn refuses_a_truncated_library_without_crashing() {
    let whole = std::fs::read(example("noisy_magnitude")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for keep in [whole.len() / 2, whole.len() - 1, 100] {
        let cut = dir.path().join(format!("libcut{keep}.so"));
        std::fs::write(&cut, &whole[..keep]).unwrap();
        let err = load_error(&cut);
        assert!(
            err.contains("is truncated or malformed") && err.contains("rebuild the plugin"),
            "{err}"
        );
    }
}

#[test]
fn refuses_a_library_without_the_abi_version() {
    insta::assert_snapshot!(load_error(&fixture("not_a_plugin")), @"plugin `[BUILD]/debug/libnot_a_plugin.so`: is not a ticketlab plugin: it does not export `ticketlab_plugin_abi_version`; export its plugins with `ticketlab_plugin_sdk::export_pruner!(Type)` or `export_dataset!(Type)`");
}

#[test]
fn refuses_a_library_without_the_entry_symbol() {
    insta::assert_snapshot!(load_error(&fixture("no_entry")), @"plugin `[BUILD]/debug/libno_entry.so`: exports the plugin ABI version but no `ticketlab_plugin_entry`; export its plugins with `ticketlab_plugin_sdk::export_pruner!(Type)` or `export_dataset!(Type)` instead of defining the symbols by hand");
}

#[test]
fn refuses_an_abi_mismatch_before_calling_anything_else() {
    // The library's entry function returns null: reaching it would give another error.
    insta::assert_snapshot!(load_error(&fixture("wrong_abi")), @"plugin `[BUILD]/debug/libwrong_abi.so`: was built for plugin ABI version 1001, but this ticketlab speaks version 1; rebuild the plugin against the ticketlab-plugin-sdk of this ticketlab (0.1.0)");
}

#[test]
fn refuses_a_name_taken_by_a_built_in() {
    let mut registry = Registry::builtin().unwrap();
    let before = registry.entries().count();
    let err = register_library(&mut registry, &fixture("collides")).unwrap_err();
    insta::assert_snapshot!(redact(&err.to_string()), @"plugin `pruner/magnitude`: registered twice: built into ticketlab by `ticketlab_plugins::pruners::magnitude` and loaded from [BUILD]/debug/libcollides.so; rename one of them");
    // The built-in is untouched and nothing of the library was added.
    assert_eq!(registry.get(PluginKind::Pruner, "magnitude").unwrap().origin, Origin::BuiltIn);
    assert_eq!(registry.entries().count(), before);
}

#[test]
fn naming_a_library_twice_registers_it_once() {
    let lib = example("noisy_magnitude");
    let mut registry = Registry::builtin().unwrap();
    let before = registry.entries().count();
    assert_eq!(register_library(&mut registry, &lib).unwrap(), ["pruner/noisy_magnitude"]);
    // The same file again, by another spelling of its path, or a copy of it elsewhere: nothing
    // new, no error, and the plugin keeps the origin it was first loaded from.
    let other_spelling = lib.parent().unwrap().join(".").join(lib.file_name().unwrap());
    assert_eq!(register_library(&mut registry, &lib).unwrap(), ["pruner/noisy_magnitude"]);
    assert_eq!(
        register_library(&mut registry, &other_spelling).unwrap(),
        ["pruner/noisy_magnitude"]
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(lib.file_name().unwrap());
    std::fs::copy(&lib, &copy).unwrap();
    assert_eq!(register_library(&mut registry, &copy).unwrap(), ["pruner/noisy_magnitude"]);
    assert_eq!(registry.entries().count(), before + 1);
    let Origin::Dynamic { path, .. } =
        &registry.get(PluginKind::Pruner, "noisy_magnitude").unwrap().origin
    else {
        panic!("dynamic")
    };
    assert_eq!(path, &lib.canonicalize().unwrap());
    // A different library with a taken name is still refused.
    let err = register_library(&mut registry, &fixture("collides")).unwrap_err();
    assert!(err.to_string().contains("registered twice"), "{err}");
}

/// Through the binary, as users run it: a library named twice with `--plugin`, or both in the
/// experiment file and with `--plugin`, is loaded once.
#[test]
fn the_binary_loads_a_library_named_twice_once() {
    use crate::cli::{stderr, stdout, ticketlab};
    let lib = example("noisy_magnitude");
    let lib = lib.to_str().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let listed = ticketlab(&["plugins", "list", "--plugin", lib, "--plugin", lib], cwd.path());
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let rows: Vec<String> = stdout(&listed)
        .lines()
        .filter(|l| l.contains("noisy_magnitude"))
        .map(str::to_string)
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].starts_with("pruner") && rows[0].contains("dynamic"), "{rows:?}");

    let file = cwd.path().join("twice.yaml");
    std::fs::write(
        &file,
        format!(
            "name: twice
seed: 0
plugins: [{lib}]
stages:
  data: {{ kind: dataset, uses: modular, with: {{ p: 7 }} }}
  init: {{ kind: model, uses: mlp_modular, inputs: {{ data: data }} }}
  dense: {{ kind: train, uses: standard, with: {{ steps: 5 }}, inputs: {{ model: init, data: data }} }}
  mask: {{ kind: prune, uses: noisy_magnitude, with: {{ rate: 0.6 }}, inputs: {{ from: dense, data: data }} }}
"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let checked = ticketlab(&["check", file, "--plugin", lib], cwd.path());
    assert_eq!(checked.status.code(), Some(0), "{}", stderr(&checked));
    // A different library with a taken name is still refused, with exit code 2.
    let collides = fixture("collides");
    let refused = ticketlab(
        &["plugins", "list", "--plugin", lib, "--plugin", collides.to_str().unwrap()],
        cwd.path(),
    );
    assert_eq!(refused.status.code(), Some(2));
    // The message as words, without the report's frame and line breaks.
    let words = stderr(&refused)
        .split_whitespace()
        .filter(|w| !["×", "│"].contains(w))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(words.contains("registered twice: built into ticketlab by `ticketlab_plugins::pruners::magnitude` and loaded from"), "{words}");
}

/// A plugin that takes its process down (a stack overflow, an abort) fails only its stage: the
/// program runs every plugin call in a child process. The stages that do not need it finish and
/// stay stored, and the run directory is written.
#[test]
fn a_crashing_plugin_fails_its_stage_and_the_run_goes_on() {
    use crate::cli::{stderr, ticketlab};
    let lib = fixture("misbehaving");
    let lib = lib.to_str().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    for (stage, behave) in [("mask", "overflow"), ("mask", "abort"), ("other_data", "abort")] {
        let file = cwd.path().join(format!("crash_{stage}_{behave}.yaml"));
        let (mask_behave, data_behave) =
            if stage == "mask" { (behave, "ok") } else { ("ok", behave) };
        std::fs::write(
            &file,
            format!(
                "name: crash
seed: 0
plugins: [{lib}]
stages:
  data: {{ kind: dataset, uses: modular, with: {{ p: 7 }} }}
  other_data: {{ kind: dataset, uses: bad_data, with: {{ behave: {data_behave} }} }}
  init: {{ kind: model, uses: mlp_modular, inputs: {{ data: data }} }}
  dense: {{ kind: train, uses: standard, with: {{ steps: 5 }}, inputs: {{ model: init, data: data }} }}
  mask: {{ kind: prune, uses: misbehaving, with: {{ rate: 0.5, behave: {mask_behave} }}, inputs: {{ from: dense, data: data }} }}
"
            ),
        )
        .unwrap();
        let out = ticketlab(
            &["run", file.to_str().unwrap(), "--out", &format!("run_{stage}_{behave}"), "--quiet"],
            cwd.path(),
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{stage} {behave}: {err}");
        let words = err
            .split_whitespace()
            .filter(|w| !["×", "│"].contains(w))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(words.contains(&format!("stage `{stage}` failed")), "{words}");
        assert!(
            words.contains("was aborted (SIGABRT") && words.contains("libmisbehaving"),
            "{words}"
        );
        assert!(words.contains("only this stage fails"), "{words}");
        let run = cwd.path().join(format!("run_{stage}_{behave}"));
        assert!(run.join("manifest.json").is_file(), "{stage} {behave}: no run directory");
        let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
        assert!(summary.contains("\"dense\""), "the dense arm finished: {summary}");
    }
}

/// An experiment whose prune stage uses the misbehaving pruner with `behave`.
fn misbehaving_experiment(dir: &Path, behave: &str) -> PathBuf {
    let lib = fixture("misbehaving");
    let file = dir.join(format!("{behave}.yaml"));
    std::fs::write(
        &file,
        format!(
            "name: {behave}
seed: 0
plugins: [{}]
stages:
  data: {{ kind: dataset, uses: modular, with: {{ p: 7 }} }}
  init: {{ kind: model, uses: mlp_modular, inputs: {{ data: data }} }}
  dense: {{ kind: train, uses: standard, with: {{ steps: 5 }}, inputs: {{ model: init, data: data }} }}
  mask: {{ kind: prune, uses: misbehaving, with: {{ rate: 0.5, behave: {behave} }}, inputs: {{ from: dense, data: data }} }}
",
            lib.display()
        ),
    )
    .unwrap();
    file
}

/// The `ticketlab plugin-host` processes serving calls for the process `parent`.
fn plugin_hosts_of(parent: u32) -> Vec<u32> {
    let marker = format!("TICKETLAB_PLUGIN_PARENT={parent}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
        })
        .collect()
}

/// Waits until `pred` holds, for at most `seconds`.
fn eventually(seconds: u64, pred: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if pred() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    pred()
}

/// A plugin call that never returns is killed at `--plugin-timeout`: its stage fails with the
/// library named and the fix, the others finish, and no plugin-host process is left.
#[test]
fn a_plugin_that_never_returns_fails_its_stage_at_the_time_limit() {
    let cwd = tempfile::tempdir().unwrap();
    let file = misbehaving_experiment(cwd.path(), "loop");
    let start = std::time::Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ticketlab"))
        .args(["run", file.to_str().unwrap(), "--out", "run", "--quiet", "--plugin-timeout", "2"])
        .current_dir(cwd.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let parent = child.id();
    let out = child.wait_with_output().unwrap();
    // miette wraps long lines, at spaces and after hyphens.
    let err = String::from_utf8_lossy(&out.stderr).replace("\n  │ ", " ").replace("- ", "-");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(start.elapsed().as_secs() < 60, "the time limit holds: {:?}", start.elapsed());
    assert!(
        err.contains("stage `mask` failed") && err.contains("did not return within 2 s"),
        "{err}"
    );
    assert!(err.contains("libmisbehaving") && err.contains("--plugin-timeout"), "{err}");
    assert!(plugin_hosts_of(parent).is_empty(), "no plugin-host is left");
    assert!(cwd.path().join("run/summary.json").is_file(), "the other stages finished");
}

/// A stop request kills a plugin call in progress at once, and a plugin-host whose parent is
/// killed (SIGKILL, nothing to clean up) dies with it.
#[test]
fn plugin_hosts_stop_with_the_run_and_die_with_their_parent() {
    let cwd = tempfile::tempdir().unwrap();
    let file = misbehaving_experiment(cwd.path(), "loop");
    for signal in ["TERM", "KILL"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticketlab"))
            .args(["run", file.to_str().unwrap(), "--quiet", "--plugin-timeout", "0"])
            .current_dir(cwd.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let parent = child.id();
        assert!(eventually(120, || !plugin_hosts_of(parent).is_empty()), "the call started");
        let killed = Command::new("kill").args([format!("-{signal}"), parent.to_string()]).status();
        assert!(killed.unwrap().success());
        let status = child.wait().unwrap();
        if signal == "TERM" {
            assert_eq!(status.code(), Some(3), "a stopped run exits with 3");
        }
        assert!(
            eventually(10, || plugin_hosts_of(parent).is_empty()),
            "{signal}: a plugin-host is left"
        );
    }
}

fn misbehaving(behave: &str) -> String {
    let err = score_with(&fixture("misbehaving"), "misbehaving", &[("behave", behave.into())], 0)
        .expect_err("refused");
    redact(&err.to_string())
}

#[test]
fn a_well_behaved_fixture_scores_fine() {
    let (weights, _) = weights_and_mask();
    let scores = score_with(&fixture("misbehaving"), "misbehaving", &[], 0).unwrap();
    for (name, s) in &scores {
        assert_eq!(s.data, weights[name].data.iter().map(|w| w.abs()).collect::<Vec<_>>());
    }
}

#[test]
fn a_panicking_pruner_is_an_error() {
    insta::assert_snapshot!(misbehaving("panic"), @"plugin `pruner/misbehaving`: panicked at misbehaving/src/lib.rs:25:24: index out of bounds: the len is 3 but the index is 7; this is a bug in the plugin (library [BUILD]/debug/libmisbehaving.so)");
}

#[test]
fn a_refusing_pruner_is_an_error() {
    insta::assert_snapshot!(misbehaving("refuse"), @"plugin `pruner/misbehaving`: refused: this model is too small to score (library [BUILD]/debug/libmisbehaving.so)");
}

#[test]
fn scores_of_the_wrong_shape_are_refused() {
    insta::assert_snapshot!(misbehaving("wrong_shape"), @"plugin `pruner/misbehaving`: returned 23 scores for layer `a.weight` of shape [4, 6], which has 24 weights; return one score per weight (library [BUILD]/debug/libmisbehaving.so)");
}

#[test]
fn scores_for_too_few_layers_are_refused() {
    insta::assert_snapshot!(misbehaving("missing_layer"), @"plugin `pruner/misbehaving`: returned 1 score vectors for the model's 2 prunable layers (a.weight, b.weight); return one per layer, in order (library [BUILD]/debug/libmisbehaving.so)");
}

#[test]
fn nan_scores_are_refused() {
    insta::assert_snapshot!(misbehaving("nan"), @"plugin `pruner/misbehaving`: returned NaN as the score of weight 1 of layer `a.weight`; scores must be numbers (check for 0/0 or log of negatives) (library [BUILD]/debug/libmisbehaving.so)");
}

fn bad_data(behave: &str) -> Result<Dataset> {
    let lib = fixture("misbehaving");
    let e = entry(&lib, "bad_data");
    registry_of(&lib)
        .dataset("bad_data")?
        .build(&params(&e, &[("behave", behave.into())]), &stage_context(0))
}

#[test]
fn a_well_behaved_fixture_dataset_builds() {
    let d = bad_data("ok").unwrap();
    assert_eq!((d.train.len(), d.test.len(), d.info.output_dim), (2, 1, 2));
}

#[test]
fn broken_datasets_are_refused() {
    let errors: Vec<String> = ["panic", "ragged", "bad_label", "nan_input", "empty"]
        .iter()
        .map(|b| format!("{b}: {}", redact(&bad_data(b).expect_err("refused").to_string())))
        .collect();
    insta::assert_snapshot!(errors.join("\n"), @"
    panic: plugin `dataset/bad_data`: panicked at misbehaving/src/lib.rs:65:24: dataset exploded; this is a bug in the plugin (library [BUILD]/debug/libmisbehaving.so)
    ragged: plugin `dataset/bad_data`: returned 5 train inputs, not a multiple of the input shape [2] (2 values per example) (library [BUILD]/debug/libmisbehaving.so)
    bad_label: plugin `dataset/bad_data`: returned test label 2 at index 0; labels must be integers in 0..2 (library [BUILD]/debug/libmisbehaving.so)
    nan_input: plugin `dataset/bad_data`: returned a non-finite train input (NaN) at index 3 (library [BUILD]/debug/libmisbehaving.so)
    empty: plugin `dataset/bad_data`: returned an empty test split; both splits need at least one example (library [BUILD]/debug/libmisbehaving.so)
    ");
}
