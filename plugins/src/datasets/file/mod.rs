//! The `file` dataset: your own data from a file, without writing Rust.
//!
//! Formats (from the extension of `path`, or `format`; an unknown extension is recognised by the
//! content):
//!
//! - `.csv` / `.tsv`: a header row naming the columns, then one example per row. The column
//!   `label` (default `label`) holds the targets; every other column is a feature, unless
//!   `features` lists the feature columns (in the order the network sees them).
//! - `.npz` (numpy's `np.savez` / `np.savez_compressed`) and `.safetensors`: the arrays named by
//!   `x` (inputs, `[n, ...]`) and `y` (targets, `[n]`, or `[n, k]` for regression).
//! - `.npy`: `path` is the inputs, `y_path` the targets (and `test_y_path` the test targets).
//!
//! Inputs of any integer or float type (float32, float64, int8 to int64, uint8 to uint64, bool,
//! and float16/bfloat16 in safetensors) become float32 as given: no scaling, no squeezing to
//! bytes. Each example's shape is `x`'s without its first axis (a table's rows are flat, a 1-D
//! `x` is one value per example). Every value must be finite.
//!
//! `task: classification` (the default) takes integer labels `0..K-1` (stored as integers or as
//! floats with integer values); `K` is `classes`, or the largest label + 1 over both files.
//! `task: regression` takes real targets, one output per target column; train it with
//! `loss: mse` (the `standard` trainer's default, cross-entropy, is for classes).
//!
//! The test split is either a second file (`test_path`, same format and columns; all of `path`
//! trains and nothing is random) or a seeded split of `path`: `train_fraction` of the examples
//! (0: 0.8) train, the first `int(f * n)` after a ChaCha8 shuffle seeded with `split_seed` (-1:
//! the stage's derived seed), as the `modular` task splits. Each split keeps the file's order.
//!
//! A relative path is looked up as MNIST's `path` is: its folder from the experiment file's
//! directory upwards, then the working directory. The files' contents enter the stage's cache
//! key ([`DatasetPlugin::input_files`]), so editing a file computes the stage again, and the
//! stages downstream of it. [`DatasetPlugin::shape`] gives nothing (the shapes are in the
//! file, which it cannot read), so `plan` shows no memory estimate for the stage; the memory
//! budget (`--max-memory`) is checked against each file's size or array headers before its
//! values are read.
//!
//! Every refusal names the parameter to change, or the file with its line (CSV) or the array
//! index of the bad value: a missing file, array or column (with the ones there are), a ragged
//! or non-numeric row, NaN or an infinity, a label that is not an integer or out of range, `x`
//! and `y` of different lengths, an empty split, a file too large for the budget.
//!
//! ```yaml
//! stages:
//!   data: { kind: dataset, uses: file, with: { path: blobs.npz, x: x, y: y, train_fraction: 0.75 } }
//!   init: { kind: model, uses: mlp, with: { hidden: [64, 64] }, inputs: { data: data } }
//! ```
//!
//! Or a table with its own test file, for regression:
//!
//! ```yaml
//!   data: { kind: dataset, uses: file, with: { path: train.csv, test_path: test.csv, label: price, task: regression } }
//! ```

mod arrays;
mod npy;
mod safetensors;
mod table;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use ticketlab_api::budget::Budget;
use ticketlab_api::data::{Dataset, DatasetInfo, Split, Targets};
use ticketlab_api::plugin::{DatasetPlugin, ParamSpec, ParamType, Params, StageContext};
use ticketlab_api::tensor::HostTensor;
use ticketlab_api::{Error, Result, register_plugin};

use self::arrays::{Array, Examples, require_finite};
use self::npy::{Npz, Origin, read_npy};
use self::safetensors::SafetensorsFile;
use self::table::{TableSpec, read_table};

/// The most classes a classification file may have (labels up to `MAX_CLASSES - 1`).
pub const MAX_CLASSES: usize = 1 << 20;

/// The training fraction when `train_fraction` is 0 and there is no `test_path`.
pub const DEFAULT_TRAIN_FRACTION: f64 = 0.8;

const FORMATS: &[&str] = &["auto", "csv", "tsv", "npz", "npy", "safetensors"];

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("path", ParamType::Str, "the data file: .csv or .tsv (a header row, then one example per row), .npz or .safetensors (the arrays `x` and `y`), or .npy (the inputs; the targets are in `y_path`); a relative path is looked up from the experiment file's directory (its folder part upwards), then the working directory"),
    ParamSpec::new("format", ParamType::Choice(FORMATS), "the format of `path` and `test_path`; `auto`: from the file name's extension, else from the content").default("\"auto\""),
    ParamSpec::new("x", ParamType::Str, ".npz and .safetensors: the name of the inputs array, shape [n, ...]").default("\"x\""),
    ParamSpec::new("y", ParamType::Str, ".npz and .safetensors: the name of the targets array, shape [n] (or [n, k] for regression)").default("\"y\""),
    ParamSpec::new("y_path", ParamType::Str, ".npy only (required there): the .npy file of the targets, `path` being the inputs").default("\"\""),
    ParamSpec::new("label", ParamType::Str, ".csv and .tsv: the column of the targets").default("\"label\""),
    ParamSpec::new("features", ParamType::StrList, ".csv and .tsv: the feature columns, in the order the network sees them; [] = every column but `label`, in the file's order").default("[]"),
    ParamSpec::new("task", ParamType::Choice(&["classification", "regression"]), "`classification`: integer labels 0..K-1; `regression`: real targets, one output per target column (train with `loss: mse`)").default("\"classification\""),
    ParamSpec::new("classes", ParamType::Int, "classification: the number of classes K (the network's outputs); 0 = the largest label + 1, over `path` and `test_path`").default("0").range(0.0, MAX_CLASSES as f64),
    ParamSpec::new("test_path", ParamType::Str, "a second file of the same format (and columns) holding the test split: all of `path` trains and no random numbers are drawn; \"\" = split `path` by `train_fraction`").default("\"\""),
    ParamSpec::new("test_y_path", ParamType::Str, ".npy with `test_path` (required there): the .npy file of the test targets").default("\"\""),
    ParamSpec::new("train_fraction", ParamType::Float, "without `test_path`: the fraction of the examples of `path` that train (the first int(f*n) after a seeded shuffle; each split keeps the file's order); 0 = 0.8. Not with `test_path`").default("0").range_exclusive(0.0, 1.0),
    ParamSpec::new("split_seed", ParamType::Int, "without `test_path`: the seed of the train/test shuffle; -1 = the stage's derived seed").default("-1").min(-1.0),
];

/// A file format the plugin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Tsv,
    Npz,
    Npy,
    Safetensors,
}

impl Format {
    /// The format called `name` (`auto` is none).
    fn parse(name: &str) -> Option<Self> {
        match name {
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "npz" => Some(Format::Npz),
            "npy" => Some(Format::Npy),
            "safetensors" => Some(Format::Safetensors),
            _ => None,
        }
    }

    /// The format the extension of `file` names, if it names one.
    fn of_extension(file: &str) -> Option<Self> {
        let ext = Path::new(file).extension()?.to_str()?.to_ascii_lowercase();
        Self::parse(&ext)
    }

    /// The format of the file at `path` from its first bytes: the npy and zip magic numbers,
    /// a safetensors header length followed by `{`, else text (a tab in the header row: TSV).
    fn of_content(path: &Path) -> Result<Self> {
        let mut head = Vec::with_capacity(4096);
        std::fs::File::open(path)
            .and_then(|f| f.take(4096).read_to_end(&mut head))
            .map_err(|e| Error::io(path, e))?;
        if head.starts_with(b"\x93NUMPY") {
            return Ok(Format::Npy);
        }
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            return Ok(Format::Npz);
        }
        if head.len() > 8 && head[8] == b'{' {
            return Ok(Format::Safetensors);
        }
        let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        Ok(if first_line.contains(&b'\t') { Format::Tsv } else { Format::Csv })
    }

    fn name(self) -> &'static str {
        match self {
            Format::Csv => ".csv",
            Format::Tsv => ".tsv",
            Format::Npz => ".npz",
            Format::Npy => ".npy",
            Format::Safetensors => ".safetensors",
        }
    }

    fn is_table(self) -> bool {
        matches!(self, Format::Csv | Format::Tsv)
    }
}

/// What to learn from the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Classification,
    Regression,
}

/// Where the test split comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SplitRule {
    /// The file `test_path`.
    File,
    /// A seeded shuffle of `path`: the fraction that trains and the seed (`None`: the stage's).
    Fraction(f64, Option<u64>),
}

/// The parameters, read and checked against each other (everything that needs no file).
#[derive(Debug)]
struct Options {
    path: String,
    /// `format`, unless `auto`.
    explicit: Option<Format>,
    /// The format of `path`: `format`, else its extension's (`None`: known from the content).
    format: Option<Format>,
    x: String,
    y: String,
    y_path: String,
    label: String,
    features: Vec<String>,
    task: Task,
    /// 0: counted from the data.
    classes: usize,
    test_path: String,
    test_y_path: String,
    split: SplitRule,
}

/// One data file of the stage and its parameter: `path` (with `y_path`) or `test_path` (with
/// `test_y_path`).
#[derive(Clone, Copy)]
struct Part<'a> {
    key: &'static str,
    y_key: &'static str,
    given: &'a str,
    y_given: &'a str,
}

impl Options {
    fn new(params: &Params) -> Result<Self> {
        let text = |key: &str, default: &str| -> Result<String> {
            Ok(if params.get(key).is_some() {
                params.str(key)?.to_string()
            } else {
                default.into()
            })
        };
        let path = params.str("path")?.to_string();
        if path.trim().is_empty() {
            return Err(Error::param(
                "path",
                "is empty; give the data file (.csv, .tsv, .npz, .npy or .safetensors)",
            ));
        }
        let explicit = match text("format", "auto")?.as_str() {
            "auto" => None,
            name => Some(Format::parse(name).ok_or_else(|| {
                Error::param("format", format!("`{name}` is not one of {}", FORMATS.join(", ")))
            })?),
        };
        let format = explicit.or_else(|| Format::of_extension(&path));
        let features =
            if params.get("features").is_some() { params.str_list("features")? } else { vec![] };
        let task = match text("task", "classification")?.as_str() {
            "regression" => Task::Regression,
            _ => Task::Classification,
        };
        let classes = if params.get("classes").is_some() { params.usize("classes")? } else { 0 };
        let fraction = if params.get("train_fraction").is_some() {
            params.f64("train_fraction")?
        } else {
            0.0
        };
        let split_seed =
            if params.get("split_seed").is_some() { params.i64("split_seed")? } else { -1 };
        let test_path = text("test_path", "")?;
        let split = if test_path.is_empty() {
            let fraction = if fraction == 0.0 { DEFAULT_TRAIN_FRACTION } else { fraction };
            SplitRule::Fraction(fraction, u64::try_from(split_seed).ok())
        } else {
            SplitRule::File
        };
        let options = Options {
            path,
            explicit,
            format,
            x: text("x", "x")?,
            y: text("y", "y")?,
            y_path: text("y_path", "")?,
            label: text("label", "label")?,
            features,
            task,
            classes,
            test_path,
            test_y_path: text("test_y_path", "")?,
            split,
        };
        options.check(fraction, split_seed)?;
        Ok(options)
    }

    /// The refusals that need no file: values that contradict each other.
    fn check(&self, fraction: f64, split_seed: i64) -> Result<()> {
        if !self.test_path.is_empty() {
            if fraction != 0.0 {
                return Err(Error::param(
                    "train_fraction",
                    "is set together with `test_path`: give `test_path` (a second file holding \
                     the test split) or `train_fraction` (to split `path`), not both",
                ));
            }
            if split_seed != -1 {
                return Err(Error::param(
                    "split_seed",
                    "seeds the split of `path`, which `test_path` replaces; remove one of them",
                ));
            }
        } else if !self.test_y_path.is_empty() {
            return Err(Error::param(
                "test_y_path",
                "is set without `test_path`: set `test_path` to the .npy file of the test inputs, \
                 or remove `test_y_path`",
            ));
        }
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::param(
                "train_fraction",
                format!("{fraction} is out of range: expected a value in (0, 1), or 0 for 0.8"),
            ));
        }
        if let (Some(main), Some(test)) = (self.format, self.test_format())
            && main != test
        {
            return Err(Error::param(
                "test_path",
                format!(
                    "is a {} file but `path` is a {} file; give the test split in the format of `path`",
                    test.name(),
                    main.name()
                ),
            ));
        }
        match self.task {
            Task::Regression if self.classes != 0 => {
                return Err(Error::param(
                    "classes",
                    "counts the classes of `task: classification`; remove it for regression",
                ));
            }
            _ if self.classes == 1 => {
                return Err(Error::param(
                    "classes",
                    "is 1; classification needs at least 2 classes (0 counts them from the labels)",
                ));
            }
            _ => {}
        }
        for (i, f) in self.features.iter().enumerate() {
            if *f == self.label {
                return Err(Error::param(
                    "features",
                    format!(
                        "lists `{f}`, the label column; features are the inputs, `label` the targets"
                    ),
                ));
            }
            if self.features[..i].contains(f) {
                return Err(Error::param("features", format!("lists `{f}` twice")));
            }
        }
        let Some(format) = self.format else { return Ok(()) };
        let name = format.name();
        if format == Format::Npy {
            if self.y_path.is_empty() {
                return Err(Error::param(
                    "y_path",
                    "is needed: a .npy file holds one array, the inputs (`path`); set `y_path` to \
                     the .npy file of the targets (or use one .npz with both)",
                ));
            }
            if !self.test_path.is_empty() && self.test_y_path.is_empty() {
                return Err(Error::param(
                    "test_y_path",
                    "is needed with a .npy `test_path`: set it to the .npy file of the test targets",
                ));
            }
        } else {
            for key in ["y_path", "test_y_path"] {
                let value = if key == "y_path" { &self.y_path } else { &self.test_y_path };
                if !value.is_empty() {
                    return Err(Error::param(
                        key,
                        format!(
                            "is for .npy files only; a {name} file holds the targets itself ({})",
                            if format.is_table() { "the `label` column" } else { "the array `y`" }
                        ),
                    ));
                }
            }
        }
        if format.is_table() {
            for (key, value) in [("x", &self.x), ("y", &self.y)] {
                if *value != key {
                    let instead = if key == "x" { "`features`" } else { "`label`" };
                    return Err(Error::param(
                        key,
                        format!(
                            "names an array of a .npz or .safetensors file; a {name} file's columns are chosen with {instead}"
                        ),
                    ));
                }
            }
        } else {
            if self.label != "label" {
                return Err(Error::param(
                    "label",
                    format!(
                        "names a column of a .csv or .tsv file; a {name} file's targets are {}",
                        targets_of(format)
                    ),
                ));
            }
            if !self.features.is_empty() {
                return Err(Error::param(
                    "features",
                    format!(
                        "lists columns of a .csv or .tsv file; a {name} file's inputs are {}",
                        inputs_of(format)
                    ),
                ));
            }
            if format == Format::Npy && (self.x != "x" || self.y != "y") {
                let key = if self.x != "x" { "x" } else { "y" };
                return Err(Error::param(
                    key,
                    "names an array inside a .npz or .safetensors file; a .npy file is one array: \
                     the inputs are `path`, the targets `y_path`",
                ));
            }
        }
        Ok(())
    }

    /// The format of `test_path` as `format`, else its extension, says.
    fn test_format(&self) -> Option<Format> {
        if self.test_path.is_empty() {
            return None;
        }
        self.explicit.or_else(|| Format::of_extension(&self.test_path))
    }

    fn main_part(&self) -> Part<'_> {
        Part { key: "path", y_key: "y_path", given: &self.path, y_given: &self.y_path }
    }

    fn test_part(&self) -> Option<Part<'_>> {
        (!self.test_path.is_empty()).then_some(Part {
            key: "test_path",
            y_key: "test_y_path",
            given: &self.test_path,
            y_given: &self.test_y_path,
        })
    }
}

fn targets_of(format: Format) -> &'static str {
    if format == Format::Npy { "the file `y_path`" } else { "the array `y`" }
}

fn inputs_of(format: Format) -> &'static str {
    if format == Format::Npy { "the whole array" } else { "the array `x`" }
}

/// Where the file `given` (the value of parameter `key`) is: its folder found as MNIST's data
/// directory is ([`super::mnist::resolve`]: from `base_dir` upwards, then the working
/// directory), with its file name.
fn locate(given: &str, base_dir: &Path) -> Option<PathBuf> {
    let given = Path::new(given);
    let name = given.file_name()?;
    let folder = given.parent().unwrap_or(Path::new(""));
    super::mnist::resolve(folder, base_dir).ok().map(|dir| dir.join(name))
}

/// [`locate`], refusing a file that does not exist at the parameter `key`.
fn require_file(key: &str, given: &str, base_dir: &Path) -> Result<PathBuf> {
    let found = locate(given, base_dir).filter(|p| p.is_file());
    found.ok_or_else(|| {
        let base = std::fs::canonicalize(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
        let place = match locate(given, base_dir) {
            Some(p) => p.display().to_string(),
            None => format!("`{given}` under {} or a folder above it", base.display()),
        };
        Error::param(
            key,
            format!(
                "no such file: {place}; a relative path is read from the experiment file's directory ({})",
                base.display()
            ),
        )
    })
}

/// The `file` dataset plugin.
#[derive(Default)]
struct FileDataset;

impl DatasetPlugin for FileDataset {
    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let options = Options::new(params)?;
        let base = &ctx.runtime.base_dir;
        let budget = &ctx.runtime.budget;
        let main = options.main_part();
        let (main_path, format) = resolve_part(&options, main, base)?;
        let train = load(&options, main, &main_path, format, None, base, budget)?;
        let test = match options.test_part() {
            Some(part) => {
                let (test_path, test_format) = resolve_part(&options, part, base)?;
                if test_format != format {
                    return Err(Error::param(
                        "test_path",
                        format!(
                            "{} is a {} file but `path` is a {} file; give the test split in the format of `path`",
                            test_path.display(),
                            test_format.name(),
                            format.name()
                        ),
                    ));
                }
                let columns = train.columns.as_deref();
                let test = load(&options, part, &test_path, format, columns, base, budget)?;
                Some((test_path, test))
            }
            None => None,
        };
        assemble(&options, (main_path, train), test, ctx.seed)
    }

    fn check(&self, params: &Params) -> Result<()> {
        Options::new(params).map(|_| ())
    }

    /// A split by `test_path`, or by a fixed `split_seed`, draws no random numbers.
    fn uses_seed(&self, params: &Params) -> bool {
        let test_path = params.get("test_path").and_then(|v| v.as_str()).unwrap_or_default();
        let split_seed = params.get("split_seed").and_then(|v| v.as_i64()).unwrap_or(-1);
        test_path.is_empty() && split_seed == -1
    }

    /// `path`, `y_path`, `test_path` and `test_y_path`, those that are set, resolved as `build`
    /// resolves them (a file not found is given as joined to `base_dir`, for the planner to
    /// report).
    fn input_files(&self, params: &Params, base_dir: &Path) -> Vec<PathBuf> {
        ["path", "y_path", "test_path", "test_y_path"]
            .iter()
            .filter_map(|key| params.get(key).and_then(|v| v.as_str()))
            .filter(|given| !given.is_empty())
            .map(|given| locate(given, base_dir).unwrap_or_else(|| base_dir.join(given)))
            .collect()
    }
}

/// The file of `part` and its format (`format`, its extension, or its content).
fn resolve_part(options: &Options, part: Part<'_>, base: &Path) -> Result<(PathBuf, Format)> {
    let path = require_file(part.key, part.given, base)?;
    let format = match options.explicit.or_else(|| Format::of_extension(part.given)) {
        Some(f) => f,
        None => Format::of_content(&path)?,
    };
    if format == Format::Npy && part.y_given.is_empty() {
        return Err(Error::param(
            part.y_key,
            format!(
                "is needed: {} is a .npy file, which holds one array (the inputs); set `{}` to the .npy file of the targets",
                path.display(),
                part.y_key
            ),
        ));
    }
    Ok((path, format))
}

/// Reads the examples of `part`, found at `path` (the feature columns of a table being `columns`
/// when given: the training file's, for the test file).
fn load(
    options: &Options,
    part: Part<'_>,
    path: &Path,
    format: Format,
    columns: Option<&[String]>,
    base: &Path,
    budget: &Budget,
) -> Result<Examples> {
    let origin = |name| Origin { path, name, key: part.key };
    let (x, y, y_path) = match format {
        Format::Csv | Format::Tsv => {
            let spec = TableSpec {
                delimiter: if format == Format::Csv { b',' } else { b'\t' },
                label: &options.label,
                features: columns.unwrap_or(&options.features),
                missing_key: (part.key == "test_path").then_some("test_path"),
                key: part.key,
            };
            return read_table(path, &spec, budget);
        }
        Format::Npz => {
            let mut npz = Npz::open(path)?;
            let x = npz.read::<f32>(origin(&options.x), "x", budget)?;
            let y = npz.read::<f64>(origin(&options.y), "y", budget)?;
            (x, y, path.to_path_buf())
        }
        Format::Safetensors => {
            let file = SafetensorsFile::open(path, part.key, budget)?;
            let x = file.read::<f32>(origin(&options.x), "x", budget)?;
            let y = file.read::<f64>(origin(&options.y), "y", budget)?;
            (x, y, path.to_path_buf())
        }
        Format::Npy => {
            let y_path = require_file(part.y_key, part.y_given, base)?;
            let x = read_npy::<f32>(origin("x"), budget)?;
            let y = read_npy::<f64>(Origin { path: &y_path, name: "y", key: part.y_key }, budget)?;
            (x, y, y_path)
        }
    };
    let (x_name, y_name) = match format {
        Format::Npy => ("x", "y"),
        _ => (options.x.as_str(), options.y.as_str()),
    };
    check_arrays(path, x_name, &x, &y_path, y_name, &y)?;
    Ok(Examples { x, y, lines: None, columns: None, y_name: y_name.to_string() })
}

/// Refuses arrays that are not one row per example, of the same length, with finite values.
fn check_arrays(
    x_path: &Path,
    x_name: &str,
    x: &Array<f32>,
    y_path: &Path,
    y_name: &str,
    y: &Array<f64>,
) -> Result<()> {
    for (path, name, shape) in [(x_path, x_name, &x.shape), (y_path, y_name, &y.shape)] {
        if shape.is_empty() {
            return Err(Error::data(
                path,
                format!(
                    "`{name}` is a single number; it must hold one row per example, shape [n, ...]"
                ),
            ));
        }
    }
    let (n, m) = (x.shape[0], y.shape[0]);
    if n != m {
        return Err(Error::data(
            y_path,
            format!(
                "`{y_name}` has {m} rows (shape {:?}) but `{x_name}` has {n} (shape {:?}); both need one row per example",
                y.shape, x.shape
            ),
        ));
    }
    if n == 0 {
        return Err(Error::data(
            x_path,
            format!("`{x_name}` holds no examples (shape {:?})", x.shape),
        ));
    }
    if x.data.is_empty() {
        return Err(Error::data(
            x_path,
            format!("`{x_name}` has shape {:?}: its examples hold no values", x.shape),
        ));
    }
    require_finite(x_path, x_name, x)?;
    require_finite(y_path, y_name, y)
}

/// Turns the examples into the dataset: targets, shapes, the split and a description.
fn assemble(
    options: &Options,
    (main_path, main): (PathBuf, Examples),
    test: Option<(PathBuf, Examples)>,
    stage_seed: u64,
) -> Result<Dataset> {
    let input_shape = example_shape(&main.x.shape);
    if let Some((test_path, t)) = &test {
        let test_shape = example_shape(&t.x.shape);
        if test_shape != input_shape {
            return Err(Error::data(
                test_path,
                format!(
                    "its examples have shape {test_shape:?} but those of `path` have {input_shape:?}; both files need the same inputs"
                ),
            ));
        }
    }
    let files: Vec<(&Path, &Examples)> = std::iter::once((main_path.as_path(), &main))
        .chain(test.as_ref().map(|(p, e)| (p.as_path(), e)))
        .collect();
    let (output_dim, what) = match options.task {
        Task::Classification => {
            let classes = count_classes(options.classes, &files)?;
            (classes, format!("{classes} classes"))
        }
        Task::Regression => {
            let width = |e: &Examples| example_shape(&e.y.shape).iter().product::<usize>();
            let k = width(&main);
            if let Some((test_path, t)) = &test
                && width(t) != k
            {
                return Err(Error::data(
                    test_path,
                    format!(
                        "has {} targets per example but `path` has {k}; both files need the same targets",
                        width(t)
                    ),
                ));
            }
            let s = if k == 1 { "" } else { "s" };
            (k, format!("regression of {k} target{s} (train with `loss: mse`)"))
        }
    };
    let info = DatasetInfo { input_shape: input_shape.clone(), output_dim, tokens: None };
    let file_name =
        |p: &Path| p.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let (train, test, split) = match test {
        Some((test_path, t)) => {
            let how = format!("test split from {}", file_name(&test_path));
            (to_split(main, options, output_dim), to_split(t, options, output_dim), how)
        }
        None => {
            let SplitRule::Fraction(fraction, split_seed) = options.split else {
                return Err(Error::Internal("a split by file without `test_path`".into()));
            };
            let n = main.len();
            let n_train = (fraction * n as f64) as usize;
            if n_train == 0 || n_train >= n {
                let empty = if n_train == 0 { "training" } else { "test" };
                return Err(Error::param(
                    "train_fraction",
                    format!(
                        "{fraction} of the {n} examples of {} leaves the {empty} split empty; use a fraction that keeps at least one example on each side, or give `test_path`",
                        main_path.display()
                    ),
                ));
            }
            let seed = split_seed.unwrap_or(stage_seed);
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            let (mut train_rows, mut test_rows) =
                (order[..n_train].to_vec(), order[n_train..].to_vec());
            train_rows.sort_unstable();
            test_rows.sort_unstable();
            let all = to_split(main, options, output_dim);
            let how = format!("train_fraction {fraction}, split seed {seed}");
            (all.select(&train_rows), all.select(&test_rows), how)
        }
    };
    let description = format!(
        "{}: {what}, inputs {input_shape:?}; {} train / {} test examples ({split})",
        file_name(&main_path),
        train.len(),
        test.len()
    );
    Ok(Dataset { description, info, train, test })
}

/// The shape of one example of an array of `shape` (`[1]` for a 1-D array).
fn example_shape(shape: &[usize]) -> Vec<usize> {
    if shape.len() <= 1 { vec![1] } else { shape[1..].to_vec() }
}

/// The number of classes: `given`, or the largest label + 1; refuses labels that are not
/// integers in range, naming where they are.
fn count_classes(given: usize, files: &[(&Path, &Examples)]) -> Result<usize> {
    let mut largest = 0usize;
    for &(path, e) in files {
        let per_example = example_shape(&e.y.shape).iter().product::<usize>();
        if per_example != 1 {
            return Err(Error::data(
                path,
                format!(
                    "`{}` has shape {:?}: classification needs one integer label per example, shape [n] \
                     (for one-hot rows save `y.argmax(1)`; for real-valued targets use `task: regression`)",
                    e.y_name, e.y.shape
                ),
            ));
        }
        let limit = if given == 0 { MAX_CLASSES } else { given };
        for (i, &v) in e.y.data.iter().enumerate() {
            if v < 0.0 || v.fract() != 0.0 {
                return Err(Error::data(
                    path,
                    format!(
                        "{}: {v} is not a class label (an integer 0..K-1); for real-valued targets use `task: regression`",
                        e.locate_y(i)
                    ),
                ));
            }
            if v >= limit as f64 {
                let why = if given == 0 {
                    format!(
                        "more than {MAX_CLASSES} classes are not supported; labels must be 0..K-1"
                    )
                } else {
                    format!(
                        "`classes` is {given}, so labels must be 0..{}; raise `classes` or fix the label",
                        given - 1
                    )
                };
                return Err(Error::data(
                    path,
                    format!("{}: label {v} is out of range: {why}", e.locate_y(i)),
                ));
            }
            largest = largest.max(v as usize);
        }
    }
    if given != 0 {
        return Ok(given);
    }
    if largest == 0 {
        return Err(Error::data(
            files[0].0,
            "every label is 0: classification needs at least 2 classes (set `classes` if the others are real but absent here)",
        ));
    }
    Ok(largest + 1)
}

/// The examples as one split: inputs `[n, ...]` and the task's targets.
fn to_split(e: Examples, options: &Options, output_dim: usize) -> Split {
    let n = e.len();
    let mut shape = vec![n];
    shape.extend(example_shape(&e.x.shape));
    let y = match options.task {
        Task::Classification => Targets::Classes {
            labels: e.y.data.iter().map(|&v| v as u32).collect(),
            n_classes: output_dim,
        },
        Task::Regression => Targets::Regression {
            values: HostTensor::new(
                vec![n, output_dim],
                e.y.data.iter().map(|&v| v as f32).collect(),
            ),
        },
    };
    Split { x: HostTensor::new(shape, e.x.data), y }
}

register_plugin!(
    Dataset,
    "file",
    "1.0.0",
    "Your own data from a .csv/.tsv table or .npz/.npy/.safetensors arrays; classification or regression",
    PARAMS,
    FileDataset
);
