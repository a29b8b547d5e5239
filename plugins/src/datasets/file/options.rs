//! The `file` dataset's parameters, read and checked against each other: everything that
//! needs no file.

use std::io::Read;
use std::path::Path;

use ticketlab_api::plugin::Params;
use ticketlab_api::{Error, Result};

use super::{DEFAULT_TRAIN_FRACTION, FORMATS};

/// A file format the plugin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Csv,
    Tsv,
    Npz,
    Npy,
    Safetensors,
}

impl Format {
    /// The format called `name` (`auto` is none).
    pub(super) fn parse(name: &str) -> Option<Self> {
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
    pub(super) fn of_extension(file: &str) -> Option<Self> {
        let ext = Path::new(file).extension()?.to_str()?.to_ascii_lowercase();
        Self::parse(&ext)
    }

    /// The format of the file at `path` from its first bytes: the npy and zip magic numbers,
    /// a safetensors header length followed by `{`, else text (a tab in the header row: TSV).
    pub(super) fn of_content(path: &Path) -> Result<Self> {
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

    pub(super) fn name(self) -> &'static str {
        match self {
            Format::Csv => ".csv",
            Format::Tsv => ".tsv",
            Format::Npz => ".npz",
            Format::Npy => ".npy",
            Format::Safetensors => ".safetensors",
        }
    }

    pub(super) fn is_table(self) -> bool {
        matches!(self, Format::Csv | Format::Tsv)
    }
}

/// What to learn from the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Task {
    Classification,
    Regression,
}

/// Where the test split comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum SplitRule {
    /// The file `test_path`.
    File,
    /// A seeded shuffle of `path`: the fraction that trains and the seed (`None`: the stage's).
    Fraction(f64, Option<u64>),
}

/// The parameters, read and checked against each other (everything that needs no file).
#[derive(Debug)]
pub(super) struct Options {
    pub(super) path: String,
    /// `format`, unless `auto`.
    pub(super) explicit: Option<Format>,
    /// The format of `path`: `format`, else its extension's (`None`: known from the content).
    pub(super) format: Option<Format>,
    pub(super) x: String,
    pub(super) y: String,
    pub(super) y_path: String,
    pub(super) label: String,
    pub(super) features: Vec<String>,
    pub(super) task: Task,
    /// 0: counted from the data.
    pub(super) classes: usize,
    pub(super) test_path: String,
    pub(super) test_y_path: String,
    pub(super) split: SplitRule,
}

/// One data file of the stage and its parameter: `path` (with `y_path`) or `test_path` (with
/// `test_y_path`).
#[derive(Clone, Copy)]
pub(super) struct Part<'a> {
    pub(super) key: &'static str,
    pub(super) y_key: &'static str,
    pub(super) given: &'a str,
    pub(super) y_given: &'a str,
}

impl Options {
    pub(super) fn new(params: &Params) -> Result<Self> {
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
            "classification" => Task::Classification,
            "regression" => Task::Regression,
            other => {
                return Err(Error::param(
                    "task",
                    format!("`{other}` is not one of classification, regression"),
                ));
            }
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
    pub(super) fn check(&self, fraction: f64, split_seed: i64) -> Result<()> {
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
        match self.format {
            Some(format) => self.check_format(format),
            None => Ok(()),
        }
    }

    /// The refusals of parameters that do not fit `format`, the format of `path`: known here
    /// from `format` or the extension, or by `build` from the file's content (the parameters
    /// are checked against it there).
    pub(super) fn check_format(&self, format: Format) -> Result<()> {
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
    pub(super) fn test_format(&self) -> Option<Format> {
        if self.test_path.is_empty() {
            return None;
        }
        self.explicit.or_else(|| Format::of_extension(&self.test_path))
    }

    pub(super) fn main_part(&self) -> Part<'_> {
        Part { key: "path", y_key: "y_path", given: &self.path, y_given: &self.y_path }
    }

    pub(super) fn test_part(&self) -> Option<Part<'_>> {
        (!self.test_path.is_empty()).then_some(Part {
            key: "test_path",
            y_key: "test_y_path",
            given: &self.test_path,
            y_given: &self.test_y_path,
        })
    }
}

pub(super) fn targets_of(format: Format) -> &'static str {
    if format == Format::Npy { "the file `y_path`" } else { "the array `y`" }
}

pub(super) fn inputs_of(format: Format) -> &'static str {
    if format == Format::Npy { "the whole array" } else { "the array `x`" }
}
