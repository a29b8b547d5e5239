//! The content-addressed store: every finished stage's result, by key.
//!
//! Layout of a store directory (`.ticketlab/` under the working directory by default):
//!
//! ```text
//! objects/<key>/meta.json          what the object is; written last (its presence = finished)
//! objects/<key>/*.safetensors      tensors: weights, masks, checkpoints, dataset arrays
//! objects/<key>/metrics.jsonl      a run's evaluation records, one JSON object per line
//! objects/<key>/*.json             everything else (summaries, specs, analysis values)
//! partial/<key>.safetensors        the resumable state of a training stage still running
//! tmp/                             objects and states being written
//! leases/<key>.json                which process computes a stage ([`crate::lease`])
//! active/<host>.<pid>.<n>.json     the runs in progress and the keys they need ([`ActiveRun`])
//! ```
//!
//! Writes are atomic: an object is written into a fresh folder under `tmp/`, every file is
//! flushed to disk, `meta.json` last, and the folder is renamed to `objects/<key>` in one step.
//! A reader therefore sees an object completely or not at all, and a killed process leaves at
//! most a stray folder in `tmp/`. A partial training state is a single file replaced the same
//! way. `meta.json` records the SHA-256 of every other file; loading checks them, and an object
//! that does not match is reported as corrupt with its path and never deleted: the user decides
//! (delete the folder to recompute the stage).
//!
//! The store never rewrites a finished object: a stage whose key is present is loaded, not
//! recomputed.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod active;
mod housekeeping;
pub(crate) mod tensors;

pub use self::active::ActiveRun;
pub use self::housekeeping::{WRITTEN_FOLDERS, probe_writable};

use self::tensors::{Entry, Read};
use super::key::{CORE_VERSION, StageKey};
use ticketlab_api::artifact::{
    AnalysisArtifact, ArchSpec, Artifact, DensityReport, MaskArtifact, ModelArtifact, RunArtifact,
};
use ticketlab_api::data::{Dataset, DatasetInfo, Split, Targets};
use ticketlab_api::ir::{ArtifactType, StageKind};
use ticketlab_api::metrics::{EvalRecord, RunSummary};
use ticketlab_api::plugin::TrainState;
use ticketlab_api::tensor::NamedTensors;
use ticketlab_api::{Error, Result};

/// Version of the object layout; objects of another version are refused as corrupt.
pub const STORE_FORMAT: u32 = 1;

/// The name of the default store directory.
pub const DEFAULT_DIR: &str = ".ticketlab";

/// What `meta.json` says about an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// [`STORE_FORMAT`] of the writer.
    pub format: u32,
    /// The object's key.
    pub key: StageKey,
    /// The stage that produced it (objects are shared between experiments with equal keys; this
    /// is the first producer's name).
    pub stage: String,
    /// The stage kind.
    pub kind: StageKind,
    /// The plugin fingerprint, if any.
    pub plugin: Option<String>,
    /// The artifact type stored.
    pub artifact: ArtifactType,
    /// The stage's parameters (for people browsing the store).
    pub params: BTreeMap<String, Value>,
    /// The stage's seed.
    pub seed: u64,
    /// ticketlab-engine version of the writer.
    pub ticketlab: String,
    /// Seconds the stage took to compute.
    pub seconds: f64,
    /// SHA-256 of every other file in the object.
    pub files: BTreeMap<String, String>,
}

/// Describes the stage whose artifact is being stored.
#[derive(Debug, Clone)]
pub struct ObjectInfo<'a> {
    /// Stage name.
    pub stage: &'a str,
    /// Stage kind.
    pub kind: StageKind,
    /// Plugin fingerprint.
    pub plugin: Option<&'a str>,
    /// Parameters.
    pub params: &'a BTreeMap<String, Value>,
    /// Seed.
    pub seed: u64,
    /// Compute time in seconds.
    pub seconds: f64,
}

/// A store rooted at a directory. Creating a `Store` touches nothing on disk; directories are
/// created by the first write.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// A store at `root` (e.g. `.ticketlab` or the value of `--store`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default store under `cwd`: `cwd/.ticketlab`.
    pub fn in_dir(cwd: &Path) -> Self {
        Self::new(cwd.join(DEFAULT_DIR))
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of the object `key` (which may not exist).
    pub fn object_dir(&self, key: &StageKey) -> PathBuf {
        self.root.join("objects").join(key.as_str())
    }

    /// The partial training state file of `key` (which may not exist).
    pub fn partial_path(&self, key: &StageKey) -> PathBuf {
        self.root.join("partial").join(format!("{key}.safetensors"))
    }

    /// Whether a finished object exists for `key`.
    pub fn contains(&self, key: &StageKey) -> bool {
        self.object_dir(key).join("meta.json").is_file()
    }

    /// Every finished object, sorted by stage name then key, with its size on disk; an object
    /// whose `meta.json` cannot be read is listed with the reason.
    pub fn objects(&self) -> Result<Vec<StoredObject>> {
        let dir = self.root.join("objects");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = StageKey::parse(&name) else { continue };
            if !self.contains(&key) {
                continue;
            }
            let meta = self.meta(&key).map_err(|e| e.to_string());
            out.push(StoredObject { bytes: folder_bytes(&entry.path()), meta, key });
        }
        out.sort_by(|a, b| {
            let stage =
                |o: &StoredObject| o.meta.as_ref().map(|m| m.stage.clone()).unwrap_or_default();
            stage(a).cmp(&stage(b)).then_with(|| a.key.as_str().cmp(b.key.as_str()))
        });
        Ok(out)
    }

    /// Removes the finished object `key` and any partial state of it.
    pub fn remove(&self, key: &StageKey) -> Result<()> {
        let dir = self.object_dir(key);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        self.remove_partial(key)
    }

    /// The metadata of a finished object.
    pub fn meta(&self, key: &StageKey) -> Result<ObjectMeta> {
        let dir = self.object_dir(key);
        let path = dir.join("meta.json");
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let meta: ObjectMeta = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(&dir, "meta.json", &e.to_string()))?;
        if meta.format != STORE_FORMAT {
            return Err(corrupt(
                &dir,
                "meta.json",
                &format!("store format {} (this ticketlab writes {STORE_FORMAT})", meta.format),
            ));
        }
        if &meta.key != key {
            return Err(corrupt(&dir, "meta.json", &format!("it names key {}", meta.key)));
        }
        Ok(meta)
    }

    /// Loads the artifact stored under `key`, checking every file against `meta.json`.
    pub fn load(&self, key: &StageKey) -> Result<Artifact> {
        let meta = self.meta(key)?;
        let dir = self.object_dir(key);
        let files = ObjectFiles { dir: &dir, meta: &meta };
        decode(&files, meta.artifact).map_err(|(file, msg)| corrupt(&dir, &file, &msg))
    }

    /// Stores `artifact` under `key` atomically. If the object already exists (another process
    /// finished the same stage first) the existing one is kept.
    pub fn save(&self, key: &StageKey, info: &ObjectInfo<'_>, artifact: &Artifact) -> Result<()> {
        let files = encode(artifact).map_err(|e| {
            Error::Store(format!("cannot encode the result of stage `{}`: {e}", info.stage))
        })?;
        let meta = ObjectMeta {
            format: STORE_FORMAT,
            key: key.clone(),
            stage: info.stage.to_string(),
            kind: info.kind,
            plugin: info.plugin.map(str::to_string),
            artifact: artifact_type(artifact),
            params: info.params.clone(),
            seed: info.seed,
            ticketlab: CORE_VERSION.to_string(),
            seconds: info.seconds,
            files: files.iter().map(|(n, b)| (n.clone(), sha256(b))).collect(),
        };
        let tmp = self.fresh_tmp(key.as_str())?;
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for (name, bytes) in &files {
            write_synced(&tmp.join(name), bytes)?;
        }
        let meta_bytes =
            serde_json::to_vec_pretty(&meta).map_err(|e| Error::Store(e.to_string()))?;
        write_synced(&tmp.join("meta.json"), &meta_bytes)?;
        sync_dir(&tmp);
        let objects = self.root.join("objects");
        fs::create_dir_all(&objects).map_err(|e| Error::io(&objects, e))?;
        let dest = self.object_dir(key);
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_dir_all(&tmp);
            if self.contains(key) {
                return Ok(());
            }
            let fix = if dest.exists() {
                "that folder exists without a meta.json, left over from an interrupted write: delete it and run again"
            } else {
                "check that the store's objects/ folder is writable"
            };
            return Err(Error::Store(format!(
                "cannot move the result of stage `{}` into {}: {e}; {fix}",
                info.stage,
                dest.display()
            )));
        }
        sync_dir(&objects);
        Ok(())
    }

    /// The step reached by a saved partial training state, if there is one.
    pub fn partial_step(&self, key: &StageKey) -> Result<Option<u64>> {
        Ok(self.load_partial(key)?.map(|s| s.step))
    }

    /// The saved partial training state of `key`, if any.
    pub fn load_partial(&self, key: &StageKey) -> Result<Option<TrainState>> {
        let path = self.partial_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        decode_state(&bytes).map(Some).map_err(|msg| {
            Error::Store(format!(
                "the saved training state {} is corrupt: {msg}; delete it to train this stage from the start",
                path.display()
            ))
        })
    }

    /// Saves (replacing atomically) the partial training state of `key`.
    pub fn save_partial(&self, key: &StageKey, state: &TrainState) -> Result<()> {
        let bytes = encode_state(state)
            .map_err(|e| Error::Store(format!("cannot encode a training state: {e}")))?;
        let dir = self.root.join("partial");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tmp = self.fresh_tmp(&format!("partial-{key}"))?;
        write_synced(&tmp, &bytes)?;
        let dest = self.partial_path(key);
        fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
        sync_dir(&dir);
        Ok(())
    }

    /// Removes the partial state of `key` (after the stage finished); missing is fine.
    pub fn remove_partial(&self, key: &StageKey) -> Result<()> {
        let path = self.partial_path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// A path under `tmp/` that nobody else uses.
    fn fresh_tmp(&self, stem: &str) -> Result<PathBuf> {
        let dir = self.root.join("tmp");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        // Host and pid: processes on several machines may share the store.
        Ok(dir.join(format!("{stem}.{}.{}.{n}", host_name(), std::process::id())))
    }
}

fn corrupt(dir: &Path, file: &str, message: &str) -> Error {
    Error::Store(format!(
        "stored object {} is corrupt ({file}: {message}); it was left in place: delete that folder to recompute the stage",
        dir.display()
    ))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Best effort: makes a rename durable (not supported everywhere, hence no error).
fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

fn artifact_type(a: &Artifact) -> ArtifactType {
    match a {
        Artifact::Dataset(_) => ArtifactType::Dataset,
        Artifact::Model(_) => ArtifactType::Model,
        Artifact::Mask(_) => ArtifactType::Mask,
        Artifact::Run(_) => ArtifactType::Run,
        Artifact::Analysis(_) => ArtifactType::Analysis,
    }
}

// ---- encoding -----------------------------------------------------------------------------

/// The JSON part of a model (tensors are stored separately).
#[derive(Serialize, Deserialize)]
struct ModelJson {
    arch: ArchSpec,
    prunable: Vec<String>,
    origin: String,
    masked: bool,
}

impl ModelJson {
    fn of(m: &ModelArtifact) -> Self {
        Self {
            arch: m.arch.clone(),
            prunable: m.prunable.clone(),
            origin: m.origin.clone(),
            masked: m.mask.is_some(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct MaskJson {
    report: DensityReport,
    pruner: String,
    rate: f64,
    scored_at: Option<u64>,
    warnings: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct RunJson {
    init: ModelJson,
    summary: RunSummary,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "targets", rename_all = "snake_case")]
enum TargetsJson {
    Classes { n_classes: usize },
    Regression,
}

#[derive(Serialize, Deserialize)]
struct DatasetJson {
    description: String,
    info: DatasetInfo,
    train: TargetsJson,
    test: TargetsJson,
}

type Files = Vec<(String, Vec<u8>)>;

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    let mut b = serde_json::to_vec_pretty(v).map_err(|e| e.to_string())?;
    b.push(b'\n');
    Ok(b)
}

fn model_tensors(m: &ModelArtifact) -> Vec<(String, Entry<'_>)> {
    let mut e = tensors::entries("params/", &m.params);
    if let Some(mask) = &m.mask {
        e.extend(tensors::entries("mask/", mask));
    }
    e
}

fn split_entries<'a>(prefix: &str, s: &'a Split) -> (Vec<(String, Entry<'a>)>, TargetsJson) {
    let mut e = vec![(format!("{prefix}/x"), Entry::F32(&s.x))];
    let t = match &s.y {
        Targets::Classes { labels, n_classes } => {
            e.push((format!("{prefix}/labels"), Entry::U32(vec![labels.len()], labels)));
            TargetsJson::Classes { n_classes: *n_classes }
        }
        Targets::Regression { values } => {
            e.push((format!("{prefix}/values"), Entry::F32(values)));
            TargetsJson::Regression
        }
    };
    (e, t)
}

fn encode(a: &Artifact) -> Result<Files, String> {
    let st = |entries| tensors::to_bytes(entries, None);
    Ok(match a {
        Artifact::Dataset(d) => {
            let (mut e, train) = split_entries("train", &d.train);
            let (e2, test) = split_entries("test", &d.test);
            e.extend(e2);
            let j = DatasetJson {
                description: d.description.clone(),
                info: d.info.clone(),
                train,
                test,
            };
            vec![("data.safetensors".into(), st(e)?), ("dataset.json".into(), json(&j)?)]
        }
        Artifact::Model(m) => vec![
            ("model.safetensors".into(), st(model_tensors(m))?),
            ("model.json".into(), json(&ModelJson::of(m))?),
        ],
        Artifact::Mask(m) => {
            let j = MaskJson {
                report: m.report.clone(),
                pruner: m.pruner.clone(),
                rate: m.rate,
                scored_at: m.scored_at,
                warnings: m.warnings.clone(),
            };
            vec![
                ("mask.safetensors".into(), st(tensors::entries("", &m.masks))?),
                ("mask.json".into(), json(&j)?),
            ]
        }
        Artifact::Run(r) => {
            let mut ck = Vec::new();
            for (step, params) in &r.checkpoints {
                ck.extend(tensors::entries(&format!("{step}/"), params));
            }
            let mut metrics = Vec::new();
            for rec in &r.records {
                serde_json::to_writer(&mut metrics, rec).map_err(|e| e.to_string())?;
                metrics.push(b'\n');
            }
            vec![
                ("init.safetensors".into(), st(model_tensors(&r.init))?),
                ("final.safetensors".into(), st(tensors::entries("", &r.final_params))?),
                ("checkpoints.safetensors".into(), st(ck)?),
                ("metrics.jsonl".into(), metrics),
                (
                    "run.json".into(),
                    json(&RunJson { init: ModelJson::of(&r.init), summary: r.summary.clone() })?,
                ),
            ]
        }
        Artifact::Analysis(x) => vec![("analysis.json".into(), json(x.as_ref())?)],
    })
}

// ---- decoding -----------------------------------------------------------------------------

/// Reads an object's files, checking each against its recorded hash.
struct ObjectFiles<'a> {
    dir: &'a Path,
    meta: &'a ObjectMeta,
}

type DecodeResult<T> = std::result::Result<T, (String, String)>;

impl ObjectFiles<'_> {
    fn bytes(&self, name: &str) -> DecodeResult<Vec<u8>> {
        let fail = |m: String| (name.to_string(), m);
        let expected =
            self.meta.files.get(name).ok_or_else(|| fail("not listed in meta.json".into()))?;
        let bytes = fs::read(self.dir.join(name)).map_err(|e| fail(e.to_string()))?;
        if &sha256(&bytes) != expected {
            return Err(fail("content does not match the hash recorded in meta.json".into()));
        }
        Ok(bytes)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> DecodeResult<T> {
        let bytes = self.bytes(name)?;
        parse_json(&bytes).map_err(|e| (name.to_string(), e))
    }
}

/// Parses JSON with the YAML parser (JSON is valid YAML): its float parsing is exact, whereas
/// serde_json's default parser may be one unit in the last place off, and cached results must
/// equal fresh ones bit for bit. Non-finite floats are `null` ([`crate::json_float`]).
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    serde_yaml::from_slice(bytes).map_err(|e| e.to_string())
}

fn read<'a>(name: &str, bytes: &'a [u8]) -> DecodeResult<Read<'a>> {
    Read::parse(bytes).map_err(|e| (name.to_string(), e))
}

fn model_from(j: ModelJson, st: &Read<'_>, file: &str) -> DecodeResult<ModelArtifact> {
    let f = |e: String| (file.to_string(), e);
    let params = st.f32_with_prefix("params/").map_err(f)?;
    let mask = if j.masked { Some(st.f32_with_prefix("mask/").map_err(f)?) } else { None };
    Ok(ModelArtifact { arch: j.arch, params, mask, prunable: j.prunable, origin: j.origin })
}

fn split_from(st: &Read<'_>, prefix: &str, t: TargetsJson) -> std::result::Result<Split, String> {
    let x = st.f32(&format!("{prefix}/x"))?;
    let y = match t {
        TargetsJson::Classes { n_classes } => {
            Targets::Classes { labels: st.u32(&format!("{prefix}/labels"))?, n_classes }
        }
        TargetsJson::Regression => {
            Targets::Regression { values: st.f32(&format!("{prefix}/values"))? }
        }
    };
    if y.len() != x.shape.first().copied().unwrap_or(0) {
        return Err(format!(
            "{prefix}: {} inputs but {} targets",
            x.shape.first().copied().unwrap_or(0),
            y.len()
        ));
    }
    Ok(Split { x, y })
}

fn decode(files: &ObjectFiles<'_>, ty: ArtifactType) -> DecodeResult<Artifact> {
    Ok(match ty {
        ArtifactType::Dataset => {
            let j: DatasetJson = files.json("dataset.json")?;
            let bytes = files.bytes("data.safetensors")?;
            let st = read("data.safetensors", &bytes)?;
            let f = |e: String| ("data.safetensors".to_string(), e);
            let train = split_from(&st, "train", j.train).map_err(f)?;
            let test = split_from(&st, "test", j.test).map_err(f)?;
            Artifact::Dataset(Box::new(Dataset {
                description: j.description,
                info: j.info,
                train,
                test,
            }))
        }
        ArtifactType::Model => {
            let j: ModelJson = files.json("model.json")?;
            let bytes = files.bytes("model.safetensors")?;
            let st = read("model.safetensors", &bytes)?;
            Artifact::Model(Box::new(model_from(j, &st, "model.safetensors")?))
        }
        ArtifactType::Mask => {
            let j: MaskJson = files.json("mask.json")?;
            let bytes = files.bytes("mask.safetensors")?;
            let masks = read("mask.safetensors", &bytes)?
                .f32_with_prefix("")
                .map_err(|e| ("mask.safetensors".to_string(), e))?;
            Artifact::Mask(Box::new(MaskArtifact {
                masks,
                report: j.report,
                pruner: j.pruner,
                rate: j.rate,
                scored_at: j.scored_at,
                warnings: j.warnings,
            }))
        }
        ArtifactType::Run => {
            let j: RunJson = files.json("run.json")?;
            let init_bytes = files.bytes("init.safetensors")?;
            let init =
                model_from(j.init, &read("init.safetensors", &init_bytes)?, "init.safetensors")?;
            let final_bytes = files.bytes("final.safetensors")?;
            let final_params = read("final.safetensors", &final_bytes)?
                .f32_with_prefix("")
                .map_err(|e| ("final.safetensors".to_string(), e))?;
            let ck_bytes = files.bytes("checkpoints.safetensors")?;
            let all = read("checkpoints.safetensors", &ck_bytes)?
                .f32_with_prefix("")
                .map_err(|e| ("checkpoints.safetensors".to_string(), e))?;
            let checkpoints =
                group_by_step(all).map_err(|e| ("checkpoints.safetensors".to_string(), e))?;
            let metrics = files.bytes("metrics.jsonl")?;
            let records = parse_jsonl(&metrics).map_err(|e| ("metrics.jsonl".to_string(), e))?;
            Artifact::Run(Box::new(RunArtifact {
                init,
                final_params,
                checkpoints,
                records,
                summary: j.summary,
            }))
        }
        ArtifactType::Analysis => {
            Artifact::Analysis(Box::new(files.json::<AnalysisArtifact>("analysis.json")?))
        }
    })
}

/// `<step>/<name>` tensors into checkpoints by step.
fn group_by_step(all: NamedTensors) -> std::result::Result<BTreeMap<u64, NamedTensors>, String> {
    let mut out: BTreeMap<u64, NamedTensors> = BTreeMap::new();
    for (full, t) in all {
        let (step, name) = full
            .split_once('/')
            .ok_or_else(|| format!("tensor `{full}` is not named <step>/<param>"))?;
        let step: u64 =
            step.parse().map_err(|_| format!("tensor `{full}` is not named <step>/<param>"))?;
        out.entry(step).or_default().insert(name.to_string(), t);
    }
    Ok(out)
}

fn parse_jsonl(bytes: &[u8]) -> std::result::Result<Vec<EvalRecord>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_json(l.as_bytes()).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

// ---- partial training states --------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct StateJson {
    step: u64,
    rng_counter: u64,
    records: Vec<EvalRecord>,
}

fn encode_state(s: &TrainState) -> Result<Vec<u8>, String> {
    let mut e = tensors::entries("params/", &s.params);
    e.extend(tensors::entries("optimizer/", &s.optimizer));
    for (step, params) in &s.checkpoints {
        e.extend(tensors::entries(&format!("checkpoints/{step}/"), params));
    }
    let j = serde_json::to_string(&StateJson {
        step: s.step,
        rng_counter: s.rng_counter,
        records: s.records.clone(),
    })
    .map_err(|e| e.to_string())?;
    tensors::to_bytes(e, Some(HashMap::from([("state".to_string(), j)])))
}

fn decode_state(bytes: &[u8]) -> std::result::Result<TrainState, String> {
    let st = Read::parse(bytes)?;
    let j: StateJson =
        parse_json(st.meta("state").ok_or("the `state` metadata is missing")?.as_bytes())?;
    Ok(TrainState {
        step: j.step,
        params: st.f32_with_prefix("params/")?,
        optimizer: st.f32_with_prefix("optimizer/")?,
        records: j.records,
        checkpoints: group_by_step(st.f32_with_prefix("checkpoints/")?)?,
        rng_counter: j.rng_counter,
    })
}

/// One finished object of a store, as [`Store::objects`] lists it.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Its key.
    pub key: StageKey,
    /// Its metadata, or why it cannot be read.
    pub meta: std::result::Result<ObjectMeta, String>,
    /// Bytes on disk.
    pub bytes: u64,
}

/// The bytes of the files in `dir` and its subfolders.
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// This machine's host name (in temporary file names and leases, so that processes on several
/// machines sharing a store never collide).
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests;
