//! `--set STAGE.PARAM=VALUE` overrides, applied to the syntax tree before checking.
//!
//! The value is parsed as YAML (`0.3`, `true`, `adamw`, `[1, 2]`). An overridden parameter keeps
//! the span of the value it replaces (or of its stage, when the file does not set it), and
//! remembers the `--set` argument so that diagnostics can name it.

use serde_yaml::Value as Yaml;

use crate::ast::{Experiment, ParamAst, Spanned, is_ident};
use crate::check::suggestion;
use crate::diag::Diag;
use crate::yaml;

/// Applies every override in order; on failure, a problem per bad override.
pub fn apply(ast: &mut Experiment, overrides: &[String]) -> Result<(), Vec<Diag>> {
    let mut diags = Vec::new();
    for o in overrides {
        if let Err(d) = apply_one(ast, o) {
            diags.push(d);
        }
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

fn apply_one(ast: &mut Experiment, arg: &str) -> Result<(), Diag> {
    let bad = |msg: String, help: &str| Diag::new(format!("`--set {arg}`: {msg}")).help(help.to_string());
    let Some((key, text)) = arg.split_once('=') else {
        return Err(bad("expected `STAGE.PARAM=VALUE`".into(), "write e.g. `--set mask.rate=0.3`"));
    };
    let key = key.trim();
    let value: Yaml = serde_yaml::from_str(text).map_err(|e| {
        let e = e.to_string();
        let e = e.split(" at line ").next().unwrap_or(&e).to_string();
        bad(
            format!("the value `{text}` is not valid YAML: {e}"),
            "quote strings that contain `:` or `#`, and close brackets",
        )
    })?;
    let value = yaml::to_json(&value)
        .map_err(|e| bad(format!("the value `{text}`: {e}"), "give a number, string, boolean or list"))?;
    if key == "seed" {
        let seed = value.as_u64().ok_or_else(|| {
            bad(format!("`seed` must be a non-negative integer, found `{text}`"), "write e.g. `--set seed=1`")
        })?;
        let span = ast.seed.as_ref().map_or(ast.name.span, |s| s.span);
        ast.seed = Some(Spanned::new(seed, span));
        return Ok(());
    }
    let Some((stage, param)) = key.split_once('.') else {
        return Err(bad(
            format!("`{key}` is not `STAGE.PARAM`"),
            "name the stage and its parameter, e.g. `--set mask.rate=0.3`",
        ));
    };
    if !is_ident(param) {
        return Err(bad(format!("`{param}` is not a parameter name"), "parameter names are letters, digits and `_`"));
    }
    let names: Vec<String> = ast.stages.iter().map(|s| s.name.node.clone()).collect();
    let Some(s) = ast.stages.iter_mut().find(|s| s.name.node == stage) else {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        return Err(bad(format!("there is no stage `{stage}`"), &suggestion(stage, &names, "stages")));
    };
    match s.with.iter_mut().find(|p| p.key.node == param) {
        Some(p) => {
            p.value.node = value;
            p.set_by = Some(arg.to_string());
        }
        None => s.with.push(ParamAst {
            key: Spanned::new(param.to_string(), s.name.span),
            value: Spanned::new(value, s.name.span),
            set_by: Some(arg.to_string()),
        }),
    }
    Ok(())
}
