//! Human-readable views of the registry: `ticketlab plugins list` and
//! `ticketlab plugins describe KIND/NAME`.
//!
//! Both outputs are deterministic (the registry is sorted by kind, then name); the only path
//! shown is a dynamic plugin's library in `describe`.

use serde_json::Value;

use super::registry::{Origin, PluginEntry, Registry, suggestion};
use super::{ParamSpec, ParamType, Params, PluginKind};
use crate::ir::StageKind;
use crate::text::table;
use crate::{Error, Result};

/// A table of every plugin: kind, name, version, origin (`built-in` or `dynamic`) and summary,
/// sorted by kind (in [`PluginKind::ALL`] order) then name.
pub fn list(registry: &Registry) -> String {
    let rows: Vec<[String; 5]> = registry
        .entries()
        .map(|e| {
            [
                e.kind.to_string(),
                e.name.clone(),
                e.version.clone(),
                e.origin.label().to_string(),
                e.summary.clone(),
            ]
        })
        .collect();
    table(&["kind", "name", "version", "origin", "summary"], &rows)
}

/// The stage kind whose stages use plugins of `kind`.
pub fn stage_kind(kind: PluginKind) -> StageKind {
    match kind {
        PluginKind::Dataset => StageKind::Dataset,
        PluginKind::Architecture => StageKind::Model,
        PluginKind::Trainer => StageKind::Train,
        PluginKind::Pruner => StageKind::Prune,
        PluginKind::Analysis => StageKind::Analyze,
        PluginKind::Report => StageKind::Report,
    }
}

/// Finds the plugin named by `id` (`KIND/NAME`), with errors that say what would be valid.
pub fn find<'r>(registry: &'r Registry, id: &str) -> Result<&'r PluginEntry> {
    let Some((kind, name)) = id.split_once('/') else {
        let matches: Vec<String> =
            registry.entries().filter(|e| e.name == id).map(PluginEntry::id).collect();
        let hint = match matches.as_slice() {
            [] => "e.g. `pruner/magnitude`".to_string(),
            found => format!(
                "did you mean {}?",
                found.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(" or ")
            ),
        };
        return Err(Error::plugin(id, format!("name plugins as KIND/NAME; {hint}")));
    };
    let kind = PluginKind::parse(kind).ok_or_else(|| {
        let all = PluginKind::ALL.map(PluginKind::as_str);
        Error::plugin(
            id,
            format!("unknown plugin kind `{kind}`; {}", suggestion(kind, &all, "kinds")),
        )
    })?;
    registry.require(kind, name)
}

/// A plugin's description: origin, summary, every parameter a stage using it accepts (the
/// stage kind's own first, then the plugin's) with type, default, range and doc, and an example
/// stage in YAML and in the `.tlx` form.
pub fn describe(registry: &Registry, id: &str) -> Result<String> {
    let entry = find(registry, id)?;
    let stage = stage_kind(entry.kind);
    let origin = match &entry.origin {
        Origin::BuiltIn => entry.origin.label().to_string(),
        Origin::Dynamic { path, .. } => format!("{} from {}", entry.origin.label(), path.display()),
    };
    let mut out = format!("{} {} ({origin})\n{}\n", entry.id(), entry.version, entry.summary);
    let mut section = |title: String, params: &[ParamSpec]| {
        out.push_str(&format!("\n{title}:\n"));
        if params.is_empty() {
            out.push_str("  (none)\n");
        }
        for p in params {
            out.push_str(&format!("  {}: {}\n      {}\n", p.name, signature(p), p.doc));
        }
    };
    if !stage.core_params().is_empty() {
        section(format!("Parameters of every {} stage", stage.as_str()), stage.core_params());
    }
    section(format!("Parameters of {} `{}`", entry.kind, entry.name), &entry.params);
    let example = Example::of(entry, stage);
    out.push_str(&format!(
        "\nExample stage (YAML):\n{}\nExample stage (tlx):\n{}",
        example.yaml(),
        example.tlx()
    ));
    Ok(out)
}

/// `number, default 0.6, range [0, 1)` or `integer, required`.
fn signature(p: &ParamSpec) -> String {
    let mut s = p.ty.describe();
    match p.default {
        Some(d) => s.push_str(&format!(", default {d}")),
        None => s.push_str(", required"),
    }
    let num = |v: f64| Value::from(v).to_string().trim_end_matches(".0").to_string();
    match (p.min, p.max) {
        (None, None) => {}
        (Some(a), None) => s.push_str(&format!(", at least {}", num(a))),
        (None, Some(b)) => s.push_str(&format!(
            ", {} {}",
            if p.max_exclusive { "below" } else { "at most" },
            num(b)
        )),
        (Some(a), Some(b)) => s.push_str(&format!(
            ", range [{}, {}{}",
            num(a),
            num(b),
            if p.max_exclusive { ")" } else { "]" }
        )),
    }
    if let Some(other) = p.at_most {
        s.push_str(&format!(", at most `{other}`"));
    }
    s
}

/// A value that passes `p`'s checks: its default, or a placeholder for required parameters.
fn example_value(p: &ParamSpec) -> Value {
    if let Some(v) = p.default_value() {
        return v;
    }
    let number = match (p.min, p.max) {
        (Some(a), Some(b)) => (a + b) / 2.0,
        (Some(a), None) => a.max(1.0),
        (None, Some(b)) => b.min(1.0),
        (None, None) => 1.0,
    };
    let int = match (p.min, p.max) {
        (Some(a), _) => a.ceil().max(1.0).min(p.max.unwrap_or(f64::INFINITY).floor()),
        (None, Some(b)) => b.floor().min(1.0),
        (None, None) => 1.0,
    } as i64;
    match p.ty {
        ParamType::Int => Value::from(int),
        ParamType::Float => Value::from(number),
        ParamType::Bool => Value::from(false),
        ParamType::Str => Value::from("value"),
        ParamType::Choice(c) => Value::from(c.first().copied().unwrap_or_default()),
        ParamType::WeightsAt => Value::from("final"),
        ParamType::IntList => Value::from(vec![int]),
        ParamType::FloatList => Value::from(vec![number]),
        ParamType::StrList => Value::from(vec!["value"]),
        ParamType::Record(fields) => {
            Value::Object(fields.iter().map(|f| (f.name.to_string(), example_value(f))).collect())
        }
    }
}

/// An example stage using a plugin: its name, kind, plugin, parameters and inputs.
struct Example {
    name: &'static str,
    stage: StageKind,
    plugin: String,
    params: Vec<(&'static str, Value)>,
    /// Port, connected stage(s), whether the port takes a list.
    inputs: Vec<(&'static str, &'static str, bool)>,
}

impl Example {
    fn of(entry: &PluginEntry, stage: StageKind) -> Self {
        let name = match stage {
            StageKind::Dataset => "data",
            StageKind::Model => "init",
            StageKind::Train => "dense",
            StageKind::Prune => "mask",
            StageKind::Rewind => "ticket",
            StageKind::Analyze => "analysis",
            StageKind::Report => "compare",
        };
        let params = stage
            .core_params()
            .iter()
            .chain(&entry.params)
            .map(|p| (p.name, example_value(p)))
            .collect();
        // Required ports (a prune stage's `data` when its pruner scores with data), or the runs
        // of analyses and reports (whose ports are all optional).
        let defaults =
            Params::new().with_defaults(stage.core_params()).with_defaults(&entry.params);
        let needs_data = stage == StageKind::Prune && entry.instance.needs_data(&defaults);
        let inputs = stage
            .ports()
            .iter()
            .filter(|p| {
                p.required
                    || (p.name == "data" && needs_data)
                    || (p.name == "runs" && !stage.ports().iter().any(|q| q.required))
            })
            .map(|p| {
                let from = match p.name {
                    "data" => "data",
                    "model" | "models" => "init",
                    "from" | "runs" => "dense",
                    _ => "mask",
                };
                (p.name, from, p.many)
            })
            .collect();
        Example { name, stage, plugin: entry.name.clone(), params, inputs }
    }

    /// The stage as an entry of a YAML file's `stages:` mapping.
    fn yaml(&self) -> String {
        let mut s = format!(
            "stages:\n  {}:\n    kind: {}\n    uses: {}\n",
            self.name,
            self.stage.as_str(),
            self.plugin
        );
        if !self.params.is_empty() {
            s.push_str("    with:\n");
            for (k, v) in &self.params {
                s.push_str(&format!("      {k}: {}\n", yaml_value(v)));
            }
        }
        if !self.inputs.is_empty() {
            s.push_str("    inputs:\n");
            for (port, from, many) in &self.inputs {
                let v = if *many { format!("[{from}]") } else { from.to_string() };
                s.push_str(&format!("      {port}: {v}\n"));
            }
        }
        s
    }

    /// The stage in the `.tlx` form: `stage NAME: KIND PLUGIN(port = stage) { key = value }`
    /// (the parentheses only when the stage has inputs).
    fn tlx(&self) -> String {
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(
                |(port, from, many)| {
                    if *many { format!("{port} = [{from}]") } else { format!("{port} = {from}") }
                },
            )
            .collect();
        let mut s = format!("stage {}: {} {}", self.name, self.stage.as_str(), self.plugin);
        if !inputs.is_empty() {
            s.push_str(&format!("({})", inputs.join(", ")));
        }
        if self.params.is_empty() {
            s.push_str(" {}\n");
        } else {
            s.push_str(" {\n");
            for (k, v) in &self.params {
                s.push_str(&format!("  {k} = {}\n", tlx_value(v)));
            }
            s.push_str("}\n");
        }
        s
    }
}

/// A JSON value in the `.tlx` form: JSON, except that a record is `{ key = value, ... }`.
fn tlx_value(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{k} = {}", tlx_value(v))).collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(items) => {
            format!("[{}]", items.iter().map(tlx_value).collect::<Vec<_>>().join(", "))
        }
        _ => v.to_string(),
    }
}

/// A JSON value in YAML: strings plain when unambiguous, everything else as JSON (valid YAML).
fn yaml_value(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
                );
            if plain { s.clone() } else { v.to_string() }
        }
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_show_type_default_and_range() {
        let p =
            ParamSpec::new("rate", ParamType::Float, "r").default("0.6").range_exclusive(0.0, 1.0);
        assert_eq!(signature(&p), "number, default 0.6, range [0, 1)");
        assert_eq!(
            signature(&ParamSpec::new("p", ParamType::Int, "p").min(2.0)),
            "integer, required, at least 2"
        );
        assert_eq!(
            signature(&ParamSpec::new("x", ParamType::Float, "x").range(0.5, 2.5)),
            "number, required, range [0.5, 2.5]"
        );
    }

    #[test]
    fn placeholders_pass_their_own_checks() {
        let specs = [
            ParamSpec::new("a", ParamType::Int, "").min(2.0),
            ParamSpec::new("b", ParamType::Float, "").range_exclusive(0.0, 1.0),
            ParamSpec::new("c", ParamType::Choice(&["x", "y"]), ""),
            ParamSpec::new("d", ParamType::IntList, "").range(3.0, 9.0),
            ParamSpec::new("e", ParamType::Int, "").range(-5.0, -2.0),
        ];
        for p in &specs {
            let v = example_value(p);
            assert_eq!(p.check(&v), Ok(()), "{} = {v}", p.name);
        }
    }

    #[test]
    fn yaml_strings_are_quoted_only_when_needed() {
        assert_eq!(yaml_value(&Value::from("global")), "global");
        assert_eq!(yaml_value(&Value::from("yes")), "\"yes\"");
        assert_eq!(yaml_value(&Value::from("2000")), "\"2000\"");
        assert_eq!(yaml_value(&Value::from("a b")), "\"a b\"");
    }

    #[test]
    fn ids_must_name_a_kind() {
        let r = Registry::default();
        assert_eq!(
            find(&r, "magnitude").err().unwrap().to_string(),
            "plugin `magnitude`: name plugins as KIND/NAME; e.g. `pruner/magnitude`"
        );
        assert!(find(&r, "pruners/magnitude").err().unwrap().to_string().contains(
            "unknown plugin kind `pruners`; did you mean `pruner`? kinds: dataset, architecture"
        ));
    }
}
