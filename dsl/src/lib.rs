//! ticketlab experiment files: the YAML and `.tlx` front ends, the checker, sweeps, and
//! lowering to the stage IR.
//!
//! The usual path is [`load`]: read a file, apply `--set` overrides, check it against the
//! plugin registry and expand its sweep into an [`ExperimentIr`]. Every failure is a
//! [`Diagnostics`] holding all the problems found, rendered as text that names the file, line,
//! column and key of each.

pub mod ast;
pub mod check;
pub mod diag;
pub mod fmt;
pub mod lower;
pub mod overrides;
pub mod sweep;
pub mod tlx;
pub mod yaml;

use std::path::Path;

use ticketlab_core::ir::ExperimentIr;
use ticketlab_core::plugin::registry::Registry;

pub use ast::Experiment;
pub use diag::{Diag, Diagnostics, SourceFile};

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
            Diag::new("unknown kind of experiment file").help("experiment files end in `.yaml`, `.yml` or `.tlx`"),
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
            Diag::new("the file is empty").help("start from experiments/quickstart.yaml or experiments/quickstart.tlx"),
        ));
    }
    Ok(SourceFile::new(path, text))
}

/// Parses `text` in the given form; `display_path` is only used to show locations.
pub fn parse_str(text: &str, format: Format, display_path: &Path) -> Result<(Experiment, SourceFile), Diagnostics> {
    let src = decode(text.as_bytes(), display_path)?;
    let parsed = match format {
        Format::Yaml => yaml::parse(&src.text),
        Format::Tlx => tlx::parse(&src.text),
    };
    match parsed {
        Ok(ast) => Ok((ast, src)),
        Err(diags) => Err(collect(src, diags)),
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
            Diag::new(format!("cannot read the file: {e}")).help("check the path and its permissions"),
        )
    })?;
    parse_source(&path.display().to_string(), &bytes)
}

/// The dynamic plugin libraries the file declares (`plugins:`), to load before checking.
pub fn declared_plugins(ast: &Experiment) -> Vec<String> {
    ast.plugins.iter().map(|p| p.node.clone()).collect()
}

/// Parses file contents and returns the plugin libraries they declare.
pub fn plugin_paths(name: &str, bytes: &[u8]) -> Result<Vec<String>, Diagnostics> {
    parse_source(name, bytes).map(|(ast, _)| declared_plugins(&ast))
}

/// Applies `--set STAGE.PARAM=VALUE` overrides (and `--set seed=N`) to the syntax tree.
pub fn apply_overrides(ast: &mut Experiment, overrides: &[String], src: &SourceFile) -> Result<(), Diagnostics> {
    overrides::apply(ast, overrides).map_err(|d| collect(src.clone(), d))
}

/// Checks the experiment against the registry and lowers it, sweep expanded, to the IR.
pub fn check_and_lower(ast: &Experiment, src: &SourceFile, registry: &Registry) -> Result<ExperimentIr, Diagnostics> {
    lower::lower(ast, registry).map_err(|d| collect(src.clone(), d))
}

/// Parses, applies overrides, checks and lowers an experiment file.
pub fn load(path: &Path, registry: &Registry, overrides: &[String]) -> Result<ExperimentIr, Diagnostics> {
    let (mut ast, src) = parse_file(path)?;
    apply_overrides(&mut ast, overrides, &src)?;
    check_and_lower(&ast, &src, registry)
}

/// Like [`load`] for contents already read; the form comes from the extension of `name`.
pub fn load_source(
    name: &str,
    bytes: &[u8],
    registry: &Registry,
    overrides: &[String],
) -> Result<ExperimentIr, Diagnostics> {
    let (mut ast, src) = parse_source(name, bytes)?;
    apply_overrides(&mut ast, overrides, &src)?;
    check_and_lower(&ast, &src, registry)
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
