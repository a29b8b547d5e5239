//! Command-line changes to an experiment, applied to the syntax tree before checking:
//! `--set STAGE.PARAM=VALUE` overrides and the sweep flags `--grid`, `--zip` and `--seeds`.
//!
//! Values are parsed as YAML (`0.3`, `true`, `adamw`, `[1, 2]`). An overridden parameter keeps
//! the span of the value it replaces (or of its stage, when the file does not set it), and
//! remembers the `--set` argument so that diagnostics can name it.
//!
//! The sweep flags extend the file's sweep exactly as more `sweep` lines in the file would: a
//! `--grid` axis joins the product of the grid axes, a `--zip` axis joins the zipped axes (and
//! must have as many values as they do), `--seeds N` sets the number of seed repeats. A flag
//! that sweeps a parameter the file already sweeps replaces the file's axis (in `grid` or
//! `zip`), and `--seeds` replaces the file's `seeds`. Each axis added remembers its flag, so
//! that the checker's diagnostics about it name the flag.
//!
//! A `--set` on a parameter that is swept is refused: the sweep's values would silently win.
//! `--set STAGE.uses=NAME` changes the plugin a stage uses, and `--set '*.PARAM=VALUE'` sets the
//! parameter on every stage that has it ([`expand_wildcards`]).

use serde_yaml::Value as Yaml;

use crate::ast::{
    Experiment, ParamAst, RandomAst, RandomAxis, Span, Spanned, StageAst, SweepAst, SweepAxis,
    is_ident,
};
use crate::diag::Diag;
use crate::yaml;
use ticketlab_api::ir::StageKind;
use ticketlab_api::plugin::registry::{Registry, suggestion};

/// `--set '*.PARAM=VALUE'` as one `--set STAGE.PARAM=VALUE` for every stage that has the
/// parameter (its plugin's or its kind's), in file order; other overrides as they are. A
/// wildcard no stage takes is a problem naming the parameters there are.
pub fn expand_wildcards(
    ast: &Experiment,
    overrides: &[String],
    registry: &Registry,
) -> (Vec<String>, Vec<Diag>) {
    let (mut out, mut diags) = (Vec::new(), Vec::new());
    for o in overrides {
        let Some((param, value)) = o.strip_prefix("*.").and_then(|rest| rest.split_once('='))
        else {
            out.push(o.clone());
            continue;
        };
        let param = param.trim();
        let mut known: Vec<&str> = Vec::new();
        let mut matched = false;
        for stage in &ast.stages {
            let params = stage_params(stage, registry);
            if params.contains(&param) {
                out.push(format!("{}.{param}={value}", stage.name.node));
                matched = true;
            }
            for p in params {
                if !known.contains(&p) {
                    known.push(p);
                }
            }
        }
        if !matched {
            diags.push(
                Diag::new(format!("`--set {o}`: no stage has a parameter `{param}`"))
                    .help(suggestion(param, &known, "parameters of this experiment's stages")),
            );
        }
    }
    (out, diags)
}

/// The parameters a stage takes: its kind's and its plugin's (none for an unknown one).
fn stage_params<'r>(stage: &StageAst, registry: &'r Registry) -> Vec<&'r str> {
    let Some(kind) = StageKind::parse(stage.kind_name()) else { return Vec::new() };
    let core = kind.core_params().iter().map(|p| p.name);
    let plugin = kind
        .plugin_kind()
        .zip(stage.uses.as_ref())
        .and_then(|(k, uses)| registry.get(k, &uses.node))
        .map(|e| e.params.iter().map(|p| p.name).collect::<Vec<_>>())
        .unwrap_or_default();
    core.chain(plugin).collect()
}

/// Applies every override in order; on failure, a problem per bad override (the others are
/// applied all the same).
pub fn apply(ast: &mut Experiment, overrides: &[String]) -> Result<(), Vec<Diag>> {
    let mut diags = Vec::new();
    for o in overrides {
        if let Err(d) = apply_one(ast, o) {
            diags.push(d);
        }
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

/// Which group of sweep axes a flag adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axes {
    /// `--grid`: combined with every other grid axis.
    Grid,
    /// `--zip`: paired index by index with the other zip axes.
    Zip,
}

impl Axes {
    fn flag(self) -> &'static str {
        match self {
            Axes::Grid => "--grid",
            Axes::Zip => "--zip",
        }
    }
}

/// Applies the sweep flags: `grid` and `zip` arguments of the form `STAGE.PARAM=[V1, V2, ...]`
/// (values in YAML flow syntax) and `seeds`, the number of seed repeats. Returns a problem per
/// bad flag (the others are applied all the same); the checker checks the axes themselves.
pub fn apply_sweep_flags(
    ast: &mut Experiment,
    grid: &[String],
    zip: &[String],
    seeds: Option<u64>,
) -> Vec<Diag> {
    let mut diags = Vec::new();
    let mut added: Vec<(Axes, SweepAxis)> = Vec::new();
    for (which, args) in [(Axes::Grid, grid), (Axes::Zip, zip)] {
        for arg in args {
            match parse_axis(ast, which, arg) {
                Ok(axis) => added.push((which, axis)),
                Err(d) => diags.push(d),
            }
        }
    }
    if seeds == Some(0) {
        diags.push(
            Diag::new("`--seeds 0`: the number of seed repeats must be at least 1")
                .help("give `--seeds 1` (no repeats) or more"),
        );
    }
    let seeds = seeds.filter(|&n| n > 0);
    if added.is_empty() && seeds.is_none() {
        return diags;
    }
    let span = Span::point(ast.name.span.start);
    let sweep = ast.sweep.get_or_insert_with(|| SweepAst { span, ..SweepAst::default() });
    // A flag's axis replaces the file's axis of the same parameter, wherever it was.
    for (_, axis) in &added {
        let from_file = |a: &SweepAxis| a.set_by.is_none() && a.key.node == axis.key.node;
        sweep.grid.retain(|a| !from_file(a));
        sweep.zip.retain(|a| !from_file(a));
    }
    for (which, axis) in added {
        match which {
            Axes::Grid => sweep.grid.push(axis),
            Axes::Zip => sweep.zip.push(axis),
        }
    }
    if let Some(n) = seeds {
        let span = sweep.seeds.as_ref().map_or(span, |s| s.span);
        sweep.seeds = Some(Spanned::new(n, span));
    }
    diags
}

/// Applies `--random STAGE.PARAM=DIST` (repeatable), `--samples N` and `--sample-seed S` to the
/// sweep's `random` block: a flag's parameter replaces the file's axis or random parameter of
/// the same key, `--samples` and `--sample-seed` the file's. The distributions are checked
/// when drawn ([`crate::random::draw_into_zip`]).
pub fn apply_random_flags(
    ast: &mut Experiment,
    random: &[String],
    samples: Option<u64>,
    sample_seed: Option<u64>,
) -> Vec<Diag> {
    let mut diags = Vec::new();
    if random.is_empty() && samples.is_none() && sample_seed.is_none() {
        return diags;
    }
    if samples == Some(0) {
        diags.push(
            Diag::new("`--samples 0`: draw at least one point").help("give `--samples 1` or more"),
        );
    }
    let has_random = ast.sweep.as_ref().is_some_and(|s| s.random.is_some());
    if random.is_empty() && !has_random {
        diags.push(
            Diag::new("`--samples` and `--sample-seed` go with random parameters, and neither the file nor the command line draws one")
                .help("add `--random STAGE.PARAM=DIST`, e.g. `--random dense.lr=\"loguniform(1e-4, 1e-2)\"`"),
        );
        return diags;
    }
    let span = Span::point(ast.name.span.start);
    let mut added = Vec::new();
    for arg in random {
        let shown = format!("--random {arg}");
        let Some((key, dist)) = arg.split_once('=') else {
            diags.push(
                Diag::new(format!("`{shown}`: expected `STAGE.PARAM=DIST`"))
                    .help("write e.g. `--random dense.lr=\"loguniform(1e-4, 1e-2)\"`"),
            );
            continue;
        };
        let key = key.trim().to_string();
        let at = flag_span(ast, &key);
        added.push(RandomAxis {
            key: Spanned::new(key, at),
            dist: Spanned::new(dist.trim().to_string(), at),
            set_by: Some(shown),
        });
    }
    let sweep = ast.sweep.get_or_insert_with(|| SweepAst { span, ..SweepAst::default() });
    // A flag's parameter replaces the file's, wherever the file sweeps it.
    let keys: Vec<String> = added.iter().map(|a| a.key.node.clone()).collect();
    sweep.grid.retain(|a| a.set_by.is_some() || !keys.contains(&a.key.node));
    sweep.zip.retain(|a| a.set_by.is_some() || !keys.contains(&a.key.node));
    let block = sweep.random.get_or_insert_with(|| RandomAst { span, ..RandomAst::default() });
    block.axes.retain(|a| !keys.contains(&a.key.node));
    block.axes.extend(added);
    if let Some(n) = samples.filter(|&n| n > 0) {
        block.samples = Some(Spanned::new(n, block.samples.as_ref().map_or(span, |s| s.span)));
    }
    if let Some(s) = sample_seed {
        block.seed = Some(Spanned::new(s, block.seed.as_ref().map_or(span, |x| x.span)));
    }
    diags
}

/// One `--grid`/`--zip` argument as an axis; its spans point at the swept stage when the file
/// has it (else they are empty and the diagnostics show no place in the file).
fn parse_axis(ast: &Experiment, which: Axes, arg: &str) -> Result<SweepAxis, Diag> {
    let flag = which.flag();
    let shown = format!("{flag} {arg}");
    let bad =
        |msg: String, help: &str| Diag::new(format!("`{shown}`: {msg}")).help(help.to_string());
    let example = format!("write e.g. `{flag} mask.rate=[0.3,0.6,0.9]`");
    let Some((key, text)) = arg.split_once('=') else {
        return Err(bad("expected `STAGE.PARAM=[VALUE, ...]`".into(), &example));
    };
    let key = key.trim();
    if key == "seed" {
        return Err(bad(
            "the root seed is not swept with a list".into(),
            "use `--seeds N` to repeat the experiment with root seeds seed, seed + 1, ..., seed + N - 1",
        ));
    }
    let values: Yaml = serde_yaml::from_str(text).map_err(|e| {
        bad(
            format!("the values `{text}` are not valid YAML: {}", yaml_message(&e)),
            "write the values as a YAML list such as `[0.3, 0.6]`; quote strings that contain `:`, `#` or `,`",
        )
    })?;
    let Yaml::Sequence(items) = values else {
        return Err(bad(
            format!("expected a list of values in brackets, found `{}`", text.trim()),
            &example,
        ));
    };
    let mut out = Vec::new();
    for item in &items {
        let v = yaml::to_json(item).map_err(|e| {
            bad(format!("the values `{text}`: {e}"), "give numbers, strings, booleans or lists")
        })?;
        if nesting(&v) >= crate::MAX_NESTING {
            return Err(bad(
                format!("the nesting is too deep: more than {} levels", crate::MAX_NESTING),
                "flatten the values",
            ));
        }
        out.push(v);
    }
    let span = flag_span(ast, key);
    Ok(SweepAxis {
        key: Spanned::new(key.to_string(), span),
        values: out.into_iter().map(|v| Spanned::new(v, span)).collect(),
        span,
        set_by: Some(shown),
    })
}

/// Where a flag on `STAGE.PARAM` points in the file: the stage's name when the file has the
/// stage, else nowhere (the diagnostic then shows no place in the file).
fn flag_span(ast: &Experiment, key: &str) -> Span {
    key.split_once('.')
        .and_then(|(stage, _)| ast.stage(stage))
        .map_or(Span::point(0), |s| s.name.span)
}

/// How many lists and mappings nest in `v` (0 for a scalar), the limit files have too.
fn nesting(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// serde_yaml's message without its own "at line L column C" (meaningless for a flag).
fn yaml_message(e: &serde_yaml::Error) -> String {
    let e = e.to_string();
    e.split(" at line ").next().unwrap_or(&e).to_string()
}

/// The axis sweeping `key`, if any.
fn swept<'a>(ast: &'a Experiment, key: &str) -> Option<&'a SweepAxis> {
    let sweep = ast.sweep.as_ref()?;
    sweep.grid.iter().chain(&sweep.zip).find(|a| a.key.node == key)
}

fn apply_one(ast: &mut Experiment, arg: &str) -> Result<(), Diag> {
    let bad =
        |msg: String, help: &str| Diag::new(format!("`--set {arg}`: {msg}")).help(help.to_string());
    let Some((key, text)) = arg.split_once('=') else {
        return Err(bad("expected `STAGE.PARAM=VALUE`".into(), "write e.g. `--set mask.rate=0.3`"));
    };
    let key = key.trim();
    let value: Yaml = serde_yaml::from_str(text).map_err(|e| {
        bad(
            format!("the value `{text}` is not valid YAML: {}", yaml_message(&e)),
            "quote strings that contain `:` or `#`, and close brackets",
        )
    })?;
    let value = yaml::to_json(&value).map_err(|e| {
        bad(format!("the value `{text}`: {e}"), "give a number, string, boolean or list")
    })?;
    if nesting(&value) > crate::MAX_NESTING {
        return Err(bad(
            format!("the nesting is too deep: more than {} levels", crate::MAX_NESTING),
            "flatten the value",
        ));
    }
    if key == "seed" {
        let seed = value.as_u64().ok_or_else(|| {
            bad(
                format!("`seed` must be a non-negative integer, found `{text}`"),
                "write e.g. `--set seed=1`",
            )
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
        return Err(bad(
            format!("`{param}` is not a parameter name"),
            "parameter names are letters, digits and `_`",
        ));
    }
    if let Some(axis) = swept(ast, key) {
        let help = format!(
            "to run other values, sweep them instead: `--grid {key}=[{}]` (it replaces the file's axis)",
            text.trim()
        );
        let d = match &axis.set_by {
            Some(flag) => Diag::new(format!("`--set {arg}`: `{key}` is swept by `{flag}`, so a single value cannot be set"))
                .help(format!("give the values in `{flag}` instead")),
            None => Diag::new(format!(
                "`--set {arg}`: `{key}` is swept by the file, so a single value set here would be ignored"
            ))
            .label(axis.key.span, "swept here")
            .help(help),
        };
        return Err(d);
    }
    let names: Vec<String> = ast.stages.iter().map(|s| s.name.node.clone()).collect();
    let unread = ast.gaps.unread_stages.contains(stage);
    let Some(s) = ast.stages.iter_mut().find(|s| s.name.node == stage) else {
        if unread {
            // The stage is in the file but could not be read (already reported).
            return Ok(());
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        return Err(bad(
            format!("there is no stage `{stage}`"),
            &suggestion(stage, &names, "stages"),
        ));
    };
    if param == crate::check::USES {
        // `STAGE.uses` chooses the stage's plugin, as in the file.
        let Some(name) = value.as_str() else {
            return Err(bad(
                format!("`uses` names a plugin, found `{text}`"),
                "write e.g. `--set mask.uses=snip`",
            ));
        };
        let span = s.uses.as_ref().map_or(s.name.span, |u| u.span);
        s.uses = Some(Spanned::new(name.to_string(), span));
        return Ok(());
    }
    set_param(s, param, value, arg);
    Ok(())
}

fn set_param(s: &mut StageAst, param: &str, value: serde_json::Value, arg: &str) {
    match s.with.iter_mut().find(|p| p.key.node == param) {
        Some(p) => {
            p.value.node = value;
            p.set_by = Some(arg.to_string());
        }
        None => s.with.push(ParamAst {
            key: Spanned::new(param.to_string(), s.name.span),
            value: Spanned::new(value, s.name.span),
            set_by: Some(arg.to_string()),
            inherited: None,
        }),
    }
}
