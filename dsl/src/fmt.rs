//! Formatting: the syntax tree written back as YAML or `.tlx` text.
//!
//! The output is deterministic (file order of stages, parameters and inputs is kept) and parses
//! back to the same experiment: strings are left plain only when they read back as the same
//! string, and are otherwise written as double-quoted JSON strings, which both forms accept.

use std::fmt::Write;

use serde_json::Value;

use crate::ast::{ClaimAst, Experiment, InputAst, ParamAst, StageAst, SweepAxis, is_ident};
use crate::tlx::KEYWORDS;

/// Longest `.tlx` stage line before its parameters go one per line.
const TLX_WIDTH: usize = 100;

/// The experiment as YAML.
pub fn to_yaml(ast: &Experiment) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name: {}", yaml_str(&ast.name.node));
    if let Some(d) = &ast.description {
        let _ = writeln!(out, "description: {}", yaml_str(&d.node));
    }
    if let Some(s) = &ast.seed {
        let _ = writeln!(out, "seed: {}", s.node);
    }
    if !ast.plugins.is_empty() {
        let list: Vec<String> = ast.plugins.iter().map(|p| yaml_str(&p.node)).collect();
        let _ = writeln!(out, "plugins: [{}]", list.join(", "));
    }
    out.push_str(if ast.stages.is_empty() { "stages: {}\n" } else { "stages:\n" });
    for s in &ast.stages {
        yaml_stage(&mut out, s);
    }
    if let Some(sw) = &ast.sweep {
        out.push_str("sweep:\n");
        if !sw.grid.is_empty() {
            let _ = writeln!(out, "  grid: {}", yaml_axes(&sw.grid));
        }
        if !sw.zip.is_empty() {
            let _ = writeln!(out, "  zip: {}", yaml_axes(&sw.zip));
        }
        if let Some(n) = &sw.seeds {
            let _ = writeln!(out, "  seeds: {}", n.node);
        }
        if let Some(r) = &sw.random {
            out.push_str("  random:\n");
            if let Some(n) = &r.samples {
                let _ = writeln!(out, "    samples: {}", n.node);
            }
            if let Some(n) = &r.seed {
                let _ = writeln!(out, "    seed: {}", n.node);
            }
            let over: Vec<String> = r
                .axes
                .iter()
                .map(|a| format!("{}: {}", yaml_str(&a.key.node), yaml_str(&a.dist.node)))
                .collect();
            let _ = writeln!(out, "    over: {{ {} }}", over.join(", "));
        }
        if sw.grid.is_empty() && sw.zip.is_empty() && sw.seeds.is_none() && sw.random.is_none() {
            out.truncate(out.len() - "sweep:\n".len());
            out.push_str("sweep: {}\n");
        }
    }
    if !ast.claims.is_empty() {
        out.push_str("claims:\n");
    }
    for c in &ast.claims {
        let _ = writeln!(out, "  {}:", yaml_str(&c.name.node));
        for (key, value) in claim_fields(c) {
            let _ = writeln!(out, "    {key}: {}", yaml_str(value));
        }
    }
    out
}

/// A claim's fields as written, in the order both forms write them.
fn claim_fields(c: &ClaimAst) -> Vec<(&'static str, &str)> {
    let mut fields = Vec::new();
    if let Some(t) = &c.text {
        fields.push(("text", t.node.as_str()));
    }
    fields.push(("holds", c.holds.node.as_str()));
    if let Some(s) = &c.seeds {
        fields.push(("seeds", s.node.as_str()));
    }
    fields
}

fn yaml_stage(out: &mut String, s: &StageAst) {
    let _ = writeln!(out, "  {}:", yaml_str(&s.name.node));
    if let Some(k) = &s.kind {
        let _ = writeln!(out, "    kind: {}", yaml_str(&k.node));
    }
    if let Some(u) = &s.uses {
        let _ = writeln!(out, "    uses: {}", yaml_str(&u.node));
    }
    if let Some(e) = &s.extends {
        let _ = writeln!(out, "    extends: {}", yaml_str(&e.node));
    }
    if !s.with.is_empty() {
        let items: Vec<String> = s
            .with
            .iter()
            .map(|p| format!("{}: {}", yaml_str(&p.key.node), yaml_value(&p.value.node)))
            .collect();
        let _ = writeln!(out, "    with: {{ {} }}", items.join(", "));
    }
    if !s.inputs.is_empty() {
        let items: Vec<String> = s
            .inputs
            .iter()
            .map(|i| format!("{}: {}", yaml_str(&i.port.node), yaml_refs(i)))
            .collect();
        let _ = writeln!(out, "    inputs: {{ {} }}", items.join(", "));
    }
}

fn yaml_refs(i: &InputAst) -> String {
    let refs: Vec<String> = i.refs.iter().map(|r| yaml_str(&r.node)).collect();
    if i.list || refs.len() != 1 { format!("[{}]", refs.join(", ")) } else { refs.join("") }
}

fn yaml_axes(axes: &[SweepAxis]) -> String {
    let items: Vec<String> = axes
        .iter()
        .map(|a| {
            let values: Vec<String> = a.values.iter().map(|v| yaml_value(&v.node)).collect();
            format!("{}: [{}]", yaml_str(&a.key.node), values.join(", "))
        })
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// A string as a YAML scalar usable in block and flow context.
fn yaml_str(s: &str) -> String {
    let plain_chars = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    let reads_back = plain_chars
        && matches!(serde_yaml::from_str::<serde_yaml::Value>(s), Ok(serde_yaml::Value::String(ref t)) if t == s);
    if reads_back { s.to_string() } else { json_str(s) }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn yaml_value(v: &Value) -> String {
    match v {
        Value::String(s) => yaml_str(s),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(yaml_value).collect::<Vec<_>>().join(", "))
        }
        Value::Object(m) => {
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{}: {}", yaml_str(k), yaml_value(v))).collect();
            if items.is_empty() { "{}".into() } else { format!("{{ {} }}", items.join(", ")) }
        }
        other => other.to_string(),
    }
}

/// The experiment as `.tlx`.
pub fn to_tlx(ast: &Experiment) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "experiment {} {{", tlx_name(&ast.name.node));
    if let Some(d) = &ast.description {
        let _ = writeln!(out, "  description = {}", json_str(&d.node));
    }
    if let Some(s) = &ast.seed {
        let _ = writeln!(out, "  seed = {}", s.node);
    }
    if !ast.plugins.is_empty() {
        let list: Vec<String> = ast.plugins.iter().map(|p| json_str(&p.node)).collect();
        let _ = writeln!(out, "  plugins = [{}]", list.join(", "));
    }
    if !ast.stages.is_empty() {
        out.push('\n');
    }
    for s in &ast.stages {
        tlx_stage(&mut out, s);
    }
    if let Some(sw) = &ast.sweep {
        if !sw.grid.is_empty() || !sw.zip.is_empty() || sw.seeds.is_some() || sw.random.is_some() {
            out.push('\n');
        }
        if !sw.grid.is_empty() {
            let _ = writeln!(out, "  sweep grid {{ {} }}", tlx_axes(&sw.grid));
        }
        if !sw.zip.is_empty() {
            let _ = writeln!(out, "  sweep zip {{ {} }}", tlx_axes(&sw.zip));
        }
        if let Some(n) = &sw.seeds {
            let _ = writeln!(out, "  sweep seeds = {}", n.node);
        }
        if let Some(r) = &sw.random {
            let mut entries: Vec<String> = Vec::new();
            entries.extend(r.samples.as_ref().map(|n| format!("samples = {}", n.node)));
            entries.extend(r.seed.as_ref().map(|n| format!("seed = {}", n.node)));
            entries.extend(
                r.axes
                    .iter()
                    .map(|a| format!("{} = {}", tlx_key(&a.key.node), json_str(&a.dist.node))),
            );
            let _ = writeln!(out, "  sweep random {{ {} }}", entries.join(", "));
        }
    }
    for (i, c) in ast.claims.iter().enumerate() {
        if i == 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "  claim {} {{", tlx_name(&c.name.node));
        for (key, value) in claim_fields(c) {
            let _ = writeln!(out, "    {key} = {}", json_str(value));
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

fn tlx_stage(out: &mut String, s: &StageAst) {
    let mut head = format!("  stage {}", tlx_name(&s.name.node));
    if let Some(k) = &s.kind {
        let _ = write!(head, ": {}", tlx_name(&k.node));
        if let Some(u) = &s.uses {
            let _ = write!(head, " {}", tlx_name(&u.node));
        }
    }
    if let Some(e) = &s.extends {
        let _ = write!(head, " extends {}", tlx_name(&e.node));
        // Without a kind the plugin cannot follow it: `stage NAME extends STAGE uses PLUGIN`.
        if let (None, Some(u)) = (&s.kind, &s.uses) {
            let _ = write!(head, " uses {}", tlx_name(&u.node));
        }
    }
    if !s.inputs.is_empty() {
        let items: Vec<String> = s.inputs.iter().map(tlx_input).collect();
        let _ = write!(head, "({})", items.join(", "));
    }
    let params: Vec<String> = s.with.iter().map(tlx_param).collect();
    if params.is_empty() {
        let _ = writeln!(out, "{head}");
        return;
    }
    let line = format!("{head} {{ {} }}", params.join(", "));
    if line.len() <= TLX_WIDTH {
        let _ = writeln!(out, "{line}");
    } else {
        let _ = writeln!(out, "{head} {{");
        for p in params {
            let _ = writeln!(out, "    {p}");
        }
        out.push_str("  }\n");
    }
}

fn tlx_input(i: &InputAst) -> String {
    let refs: Vec<String> = i.refs.iter().map(|r| tlx_name(&r.node)).collect();
    let target =
        if i.list || refs.len() != 1 { format!("[{}]", refs.join(", ")) } else { refs.join("") };
    format!("{} = {target}", tlx_name(&i.port.node))
}

fn tlx_param(p: &ParamAst) -> String {
    format!("{} = {}", tlx_name(&p.key.node), tlx_value(&p.value.node))
}

fn tlx_axes(axes: &[SweepAxis]) -> String {
    let items: Vec<String> = axes
        .iter()
        .map(|a| {
            let values: Vec<String> = a.values.iter().map(|v| tlx_value(&v.node)).collect();
            format!("{} = [{}]", tlx_key(&a.key.node), values.join(", "))
        })
        .collect();
    items.join(", ")
}

/// A sweep key: bare as `stage.param` when both are identifiers, else a quoted string.
fn tlx_key(key: &str) -> String {
    match key.split_once('.') {
        Some((s, p)) if is_ident(s) && is_ident(p) => key.to_string(),
        _ => json_str(key),
    }
}

/// A name: bare when it is an identifier and not a keyword, else a quoted string.
fn tlx_name(s: &str) -> String {
    if is_ident(s) && !KEYWORDS.contains(&s) { s.to_string() } else { json_str(s) }
}

fn tlx_value(v: &Value) -> String {
    match v {
        Value::String(s) => json_str(s),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(tlx_value).collect::<Vec<_>>().join(", "))
        }
        Value::Object(m) => {
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{} = {}", tlx_name(k), tlx_value(v))).collect();
            if items.is_empty() { "{}".into() } else { format!("{{ {} }}", items.join(", ")) }
        }
        other => other.to_string(),
    }
}
