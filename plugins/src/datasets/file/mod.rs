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
mod options;
mod safetensors;
mod table;
#[cfg(test)]
mod tests;

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
use self::options::{Format, Options, Part, SplitRule, Task};
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
        if options.format.is_none() {
            options.check_format(format)?;
        }
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
    Ok(Examples { x, y, lines: None, columns: None, y_name: y_name.to_string(), y_file: y_path })
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
    if y.data.is_empty() {
        return Err(Error::data(
            y_path,
            format!("`{y_name}` has shape {:?}: its examples hold no targets", y.shape),
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
    let files: Vec<&Examples> =
        std::iter::once(&main).chain(test.as_ref().map(|(_, e)| e)).collect();
    let (output_dim, what) = match options.task {
        Task::Classification => {
            let classes = count_classes(options.classes, &files)?;
            (classes, format!("{classes} classes"))
        }
        Task::Regression => {
            let width = |e: &Examples| example_shape(&e.y.shape).iter().product::<usize>();
            let k = width(&main);
            if let Some((_, t)) = &test
                && width(t) != k
            {
                return Err(Error::data(
                    &t.y_file,
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
fn count_classes(given: usize, files: &[&Examples]) -> Result<usize> {
    let mut largest = 0usize;
    for &e in files {
        let path = e.y_file.as_path();
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
            &files[0].y_file,
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
