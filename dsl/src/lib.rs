//! ticketlab experiment files: the YAML and `.tlx` front ends, the checker, sweeps, and
//! lowering to the stage IR.
//!
//! The usual path is [`load`] (or [`load_with`] for the command line's sweep flags): read a
//! file, apply `--set` overrides, check it against the plugin registry and expand its sweep into
//! an [`ExperimentIr`]. Every failure is a [`Diagnostics`] holding all the problems found,
//! rendered as text that names the file, line, column and key of each.
//!
//! Problems are collected across phases: a structural mistake that a front end can step over
//! (a negative `seed`, a stage without `kind`, `sweep seeds = 0`) and bad command-line flags do
//! not stop the checker, which checks everything that does not depend on the broken part (see
//! [`ast::Gaps`]). Only text that cannot be parsed at all (malformed YAML, a `.tlx` syntax
//! error, binary data) stops at the first problem.

pub mod ast;
pub mod check;
pub mod claims;
pub mod diag;
pub mod extends;
pub mod fmt;
pub mod implied;
pub mod lower;
pub mod overrides;
pub mod random;
pub mod sweep;
pub mod tlx;
pub mod yaml;

use std::path::Path;

use ticketlab_api::budget::Budget;
use ticketlab_api::ir::ExperimentIr;
use ticketlab_api::plugin::registry::Registry;

pub use ast::Experiment;
pub use diag::{Diag, Diagnostics, SourceFile};

/// Changes to an experiment given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOverrides {
    /// `--set STAGE.PARAM=VALUE` (and `--set seed=N`), in order.
    pub set: Vec<String>,
    /// `--grid STAGE.PARAM=[V1, V2, ...]`: axes added to the sweep's grid.
    pub grid: Vec<String>,
    /// `--zip STAGE.PARAM=[V1, V2, ...]`: axes added to the sweep's zip.
    pub zip: Vec<String>,
    /// `--seeds N`: the number of seed repeats.
    pub seeds: Option<u64>,
    /// `--random STAGE.PARAM=DIST`: parameters drawn at random (with `samples`).
    pub random: Vec<String>,
    /// `--samples N`: how many random points to draw.
    pub samples: Option<u64>,
    /// `--sample-seed S`: the seed of the random draws.
    pub sample_seed: Option<u64>,
    /// The memory a stage may use (`--max-memory`): stages estimated beyond it are refused at
    /// the value to change.
    pub budget: Budget,
}

impl CliOverrides {
    /// Only `--set` overrides.
    pub fn set(overrides: &[String]) -> Self {
        Self { set: overrides.to_vec(), ..Self::default() }
    }
}

/// How deeply mappings, lists and brackets may nest in an experiment file. A stage's parameter
/// value sits at level 4 in YAML (the file, `stages`, the stage, `with`) and at level 2 in
/// `.tlx` (`experiment { ... }`, the stage's `{ ... }`), so real files stay far below; deeper
/// files are refused with a diagnostic before any recursive parsing starts, so that no input
/// can exhaust the stack.
pub const MAX_NESTING: usize = 64;

/// The most sweep points (grid combinations x zip rows x seed repeats) one experiment may have:
/// far beyond any study one machine or cluster runs, and small enough that checking and
/// planning the expanded stages stays within memory.
pub const MAX_SWEEP_POINTS: u64 = 100_000;

/// The two forms of an experiment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// The experiment language (`.tlx`).
    Tlx,
}

impl Format {
    /// The form of a file, by its extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "yaml" | "yml" => Some(Format::Yaml),
            "tlx" => Some(Format::Tlx),
            _ => None,
        }
    }
}

fn format_of(path: &Path, text: &str) -> Result<Format, Diagnostics> {
    Format::from_path(path).ok_or_else(|| {
        Diagnostics::single(
            SourceFile::new(path, text),
            Diag::new("unknown kind of experiment file")
                .help("experiment files end in `.yaml`, `.yml` or `.tlx`"),
        )
    })
}

/// Decodes a file's bytes, refusing binary data, invalid UTF-8 and empty files.
fn decode(bytes: &[u8], path: &Path) -> Result<SourceFile, Diagnostics> {
    let lossy = || SourceFile::new(path, String::from_utf8_lossy(bytes).into_owned());
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        let src = lossy();
        // The NUL byte is valid UTF-8, so it sits right after the lossy prefix.
        let at = String::from_utf8_lossy(&bytes[..at]).len();
        return Err(Diagnostics::single(
            src,
            Diag::new("this is a binary file, not an experiment file")
                .label(ast::Span::new(at, at + 1), "NUL byte")
                .help("experiment files are UTF-8 text (YAML or .tlx)"),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        Err(e) => {
            let at = e.valid_up_to();
            return Err(Diagnostics::single(
                lossy(),
                Diag::new("the file is not valid UTF-8")
                    .label(ast::Span::new(at, at + 1), "invalid byte")
                    .help("save the file as UTF-8 text"),
            ));
        }
    };
    let text = text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text);
    if text.trim().is_empty() {
        return Err(Diagnostics::single(
            SourceFile::new(path, text),
            Diag::new("the file is empty")
                .help("start from experiments/quickstart.yaml or experiments/quickstart.tlx"),
        ));
    }
    Ok(SourceFile::new(path, text))
}

/// Parses `text` in the given form; `display_path` is only used to show locations.
pub fn parse_str(
    text: &str,
    format: Format,
    display_path: &Path,
) -> Result<(Experiment, SourceFile), Diagnostics> {
    let src = decode(text.as_bytes(), display_path)?;
    match parse_partial(&src.text, format) {
        (Some(ast), diags) if diags.is_empty() => Ok((ast, src)),
        (_, diags) => Err(collect(src, diags)),
    }
}

/// The tree as far as it can be read (see [`ast::Gaps`]) and every problem found.
fn parse_partial(text: &str, format: Format) -> (Option<Experiment>, Vec<Diag>) {
    match format {
        Format::Yaml => yaml::parse_partial(text),
        Format::Tlx => tlx::parse_partial(text),
    }
}

/// Parses file contents, taking the form from the extension of `name`.
pub fn parse_source(name: &str, bytes: &[u8]) -> Result<(Experiment, SourceFile), Diagnostics> {
    let path = Path::new(name);
    let src = decode(bytes, path)?;
    let format = format_of(path, &src.text)?;
    parse_str(&src.text, format, path)
}

/// Reads and parses an experiment file (`.yaml`, `.yml` or `.tlx`).
pub fn parse_file(path: &Path) -> Result<(Experiment, SourceFile), Diagnostics> {
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostics::single(
            SourceFile::new(path, ""),
            Diag::new(format!("cannot read the file: {e}"))
                .help("check the path and its permissions"),
        )
    })?;
    parse_source(&path.display().to_string(), &bytes)
}

/// The dynamic plugin libraries the file declares (`plugins:`), to load before checking.
pub fn declared_plugins(ast: &Experiment) -> Vec<String> {
    ast.plugins.iter().map(|p| p.node.clone()).collect()
}

/// Parses file contents and returns the plugin libraries they declare.
///
/// Fails only when the text cannot be parsed into an experiment at all; other problems of the
/// file are left for [`load_source`] to report together with the checker's, after the
/// libraries are loaded.
pub fn plugin_paths(name: &str, bytes: &[u8]) -> Result<Vec<String>, Diagnostics> {
    let path = Path::new(name);
    let src = decode(bytes, path)?;
    let format = format_of(path, &src.text)?;
    match parse_partial(&src.text, format) {
        (Some(ast), _) => Ok(declared_plugins(&ast)),
        (None, diags) => Err(collect(src, diags)),
    }
}

/// Applies `--set STAGE.PARAM=VALUE` overrides (and `--set seed=N`) to the syntax tree.
pub fn apply_overrides(
    ast: &mut Experiment,
    overrides: &[String],
    src: &SourceFile,
) -> Result<(), Diagnostics> {
    overrides::apply(ast, overrides).map_err(|d| collect(src.clone(), d))
}

/// Checks the experiment against the registry and lowers it, sweep expanded, to the IR.
pub fn check_and_lower(
    ast: &Experiment,
    src: &SourceFile,
    registry: &Registry,
) -> Result<ExperimentIr, Diagnostics> {
    lower::lower(ast, registry, &src.text).map_err(|d| collect(src.clone(), d))
}

/// Parses, applies `--set` overrides, checks and lowers an experiment file.
pub fn load(
    path: &Path,
    registry: &Registry,
    overrides: &[String],
) -> Result<ExperimentIr, Diagnostics> {
    load_with(path, registry, &CliOverrides::set(overrides))
}

/// Like [`load`] with every command-line change: `--set`, `--grid`, `--zip`, `--seeds`.
pub fn load_with(
    path: &Path,
    registry: &Registry,
    cli: &CliOverrides,
) -> Result<ExperimentIr, Diagnostics> {
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostics::single(
            SourceFile::new(path, ""),
            Diag::new(format!("cannot read the file: {e}"))
                .help("check the path and its permissions"),
        )
    })?;
    load_source_with(&path.display().to_string(), &bytes, registry, cli)
}

/// Like [`load`] for contents already read; the form comes from the extension of `name`.
pub fn load_source(
    name: &str,
    bytes: &[u8],
    registry: &Registry,
    overrides: &[String],
) -> Result<ExperimentIr, Diagnostics> {
    load_source_with(name, bytes, registry, &CliOverrides::set(overrides))
}

/// Like [`load_with`] for contents already read; the form comes from the extension of `name`.
///
/// Every problem goes into one report: the front end's, the flags' and the checker's (the
/// checker runs whenever the text parses into an experiment).
pub fn load_source_with(
    name: &str,
    bytes: &[u8],
    registry: &Registry,
    cli: &CliOverrides,
) -> Result<ExperimentIr, Diagnostics> {
    let path = Path::new(name);
    let src = decode(bytes, path)?;
    let format = format_of(path, &src.text)?;
    let (ast, mut diags) = parse_partial(&src.text, format);
    let Some(mut ast) = ast else { return Err(collect(src, diags)) };
    diags.extend(overrides::apply_sweep_flags(&mut ast, &cli.grid, &cli.zip, cli.seeds));
    diags.extend(overrides::apply_random_flags(
        &mut ast,
        &cli.random,
        cli.samples,
        cli.sample_seed,
    ));
    diags.extend(random::draw_into_zip(&mut ast));
    // A wildcard reaches the stages whose kind and plugin, written or taken through
    // `extends`, have the parameter.
    let (set, refused) = overrides::expand_wildcards(&extends::resolve(&ast).0, &cli.set, registry);
    diags.extend(refused);
    if let Err(d) = overrides::apply(&mut ast, &set) {
        diags.extend(d);
    }
    match check::check(&ast, registry) {
        Ok(checked) if diags.is_empty() => {
            let mut ir = lower::lower_checked(&checked);
            match claims::lower(&ast.claims, &ir, &src.text) {
                Ok(claims) => ir.claims = claims,
                Err(refused) => diags.extend(refused),
            }
            let resolved = extends::resolve(&ast).0;
            diags.extend(check::memory::refusals(&resolved, &ir, registry, &cli.budget));
            if diags.is_empty() {
                return Ok(ir);
            }
            Err(collect(src, diags))
        }
        Ok(_) => Err(collect(src, diags)),
        Err(more) => {
            diags.extend(more);
            Err(collect(src, diags))
        }
    }
}

/// Writes the syntax tree in the given form (deterministic; parsing the result gives back the
/// same experiment).
pub fn format_ast(ast: &Experiment, to: Format) -> String {
    match to {
        Format::Yaml => fmt::to_yaml(ast),
        Format::Tlx => fmt::to_tlx(ast),
    }
}

/// Parses file contents (form from the extension of `name`) and writes them in the form `to`.
pub fn format(name: &str, bytes: &[u8], to: Format) -> Result<String, Diagnostics> {
    let (ast, _) = parse_source(name, bytes)?;
    Ok(format_ast(&ast, to))
}

fn collect(src: SourceFile, diags: Vec<diag::Diag>) -> Diagnostics {
    let mut out = Diagnostics::new(src);
    for d in diags {
        out.push(d);
    }
    out
}
