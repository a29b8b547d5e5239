//! Parameter schemas sent by libraries as JSON, turned into [`ParamSpec`]s.
//!
//! [`ParamSpec`] holds `&'static str`s (built-in schemas are constants), so the strings of a
//! dynamic schema are leaked: a library's plugins live for the whole process anyway, and each
//! library is loaded once.

use serde::Deserialize;
use serde_json::Value;

use ticketlab_api::ir::StageKind;
use ticketlab_api::plugin::{ParamSpec, ParamType, PluginKind};

/// One parameter as `ParamDecl::to_json` in the SDK writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decl {
    name: String,
    #[serde(rename = "type")]
    ty: Value,
    default: Option<Value>,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    max_exclusive: bool,
    #[serde(default)]
    doc: String,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn param_type(ty: &Value) -> Result<ParamType, String> {
    let simple = match ty.as_str() {
        Some("int") => ParamType::Int,
        Some("float") => ParamType::Float,
        Some("bool") => ParamType::Bool,
        Some("string") => ParamType::Str,
        Some("int_list") => ParamType::IntList,
        Some("float_list") => ParamType::FloatList,
        Some("string_list") => ParamType::StrList,
        _ => {
            let choices = ty
                .get("choice")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| {
                    format!(
                        "unknown type {ty}; expected `int`, `float`, `bool`, `string`, `int_list`, `float_list`, \
                         `string_list` or {{\"choice\": [strings]}}"
                    )
                })?;
            if choices.is_empty() {
                return Err("a choice needs at least one option".into());
            }
            let choices: Vec<&'static str> = choices.into_iter().map(leak).collect();
            return Ok(ParamType::Choice(Box::leak(choices.into_boxed_slice())));
        }
    };
    Ok(simple)
}

/// Parses a library's schema for a plugin of `kind`. Refuses malformed entries, duplicate
/// names, names the stage kind already uses for its core parameters (e.g. a pruner's `rate`),
/// and defaults that fail their own type or range.
pub(super) fn parse(kind: PluginKind, json: &str) -> Result<Vec<ParamSpec>, String> {
    let decls: Vec<Decl> =
        serde_json::from_str(json).map_err(|e| format!("not a JSON list of parameters ({e})"))?;
    let core = StageKind::ALL
        .into_iter()
        .find(|s| s.plugin_kind() == Some(kind))
        .map(StageKind::core_params)
        .unwrap_or_default();
    let mut specs: Vec<ParamSpec> = Vec::with_capacity(decls.len());
    for d in decls {
        let name = &d.name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "parameter name `{name}` must be non-empty and use only letters, digits and `_`"
            ));
        }
        if specs.iter().any(|s| s.name == name) {
            return Err(format!("parameter `{name}` is declared twice"));
        }
        if core.iter().any(|c| c.name == name) {
            return Err(format!(
                "parameter `{name}` is already a parameter of every {kind} stage; rename it"
            ));
        }
        let ty = param_type(&d.ty).map_err(|e| format!("parameter `{name}`: {e}"))?;
        let mut spec = ParamSpec::new(leak(d.name.clone()), ty, leak(d.doc));
        spec.min = d.min;
        spec.max = d.max;
        spec.max_exclusive = d.max_exclusive;
        if let Some(default) = d.default {
            spec.check(&default)
                .map_err(|e| format!("parameter `{name}`: its default is invalid: {e}"))?;
            spec.default = Some(leak(default.to_string()));
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_with_ranges_and_defaults() {
        let specs = parse(
            PluginKind::Pruner,
            r#"[{"name": "noise", "type": "float", "default": 0.1, "min": 0.0, "max": 1.0, "max_exclusive": true, "doc": "scale"},
                {"name": "mode", "type": {"choice": ["a", "b"]}, "default": "b", "doc": "which"},
                {"name": "widths", "type": "int_list", "doc": "w"}]"#,
        )
        .unwrap();
        assert_eq!(
            specs[0],
            ParamSpec::new("noise", ParamType::Float, "scale")
                .default("0.1")
                .range_exclusive(0.0, 1.0)
        );
        assert_eq!(specs[1].ty, ParamType::Choice(&["a", "b"]));
        assert_eq!(specs[1].default_value(), Some(Value::from("b")));
        assert_eq!((specs[2].ty, specs[2].default), (ParamType::IntList, None));
    }

    #[test]
    fn bad_schemas_are_refused_with_the_reason() {
        let err = |json: &str| parse(PluginKind::Pruner, json).unwrap_err();
        assert!(err("{}").starts_with("not a JSON list of parameters"));
        assert_eq!(
            err(r#"[{"name": "rate", "type": "float"}]"#),
            "parameter `rate` is already a parameter of every pruner stage; rename it"
        );
        assert_eq!(
            err(r#"[{"name": "a", "type": "int"}, {"name": "a", "type": "int"}]"#),
            "parameter `a` is declared twice"
        );
        assert!(
            err(r#"[{"name": "a", "type": "complex"}]"#)
                .starts_with("parameter `a`: unknown type \"complex\"")
        );
        assert_eq!(
            err(r#"[{"name": "a", "type": "float", "default": 2.0, "max": 1.0}]"#),
            "parameter `a`: its default is invalid: 2 is out of range: expected a value <= 1"
        );
        assert!(
            err(r#"[{"name": "a", "type": "int", "colour": 1}]"#)
                .contains("unknown field `colour`")
        );
        // Datasets have no core parameters, so `rate` is fine there.
        assert!(parse(PluginKind::Dataset, r#"[{"name": "rate", "type": "float"}]"#).is_ok());
    }
}
