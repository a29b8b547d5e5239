//! Checking one stage: its kind, plugin and parameters, with the helpers that describe a
//! parameter in a message.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use ticketlab_api::Error;
use ticketlab_api::ir::StageKind;
use ticketlab_api::plugin::registry::suggestion;
use ticketlab_api::plugin::{ParamSpec, Params};

use super::{CheckedStage, Checker};
use crate::ast::{ParamAst, Span, StageAst};
use crate::diag::Diag;

pub(super) fn spec_help(spec: &ParamSpec) -> String {
    let mut ty = spec.ty.describe();
    if spec.min.is_some() || spec.max.is_some() {
        ty.push_str(&format!(", {}", spec.describe_range()));
    }
    if let Some(other) = spec.at_most {
        ty.push_str(&format!(", at most `{other}`"));
    }
    format!("`{}` ({ty}): {}", spec.name, spec.doc)
}

/// Where parameter `key` of stage `s` is written: its value's span and the note of a `--set`
/// that gave it; the stage's name when the file leaves it to its default (or `key` is `None`).
pub(crate) fn param_place(s: &StageAst, key: Option<&str>) -> (Span, String) {
    let given = key.and_then(|k| s.with.iter().find(|p| p.key.node == k));
    (given.map_or(s.name.span, |p| p.value.span), given.map(set_by_note).unwrap_or_default())
}

/// The parameter an error is about, if it names one, and its message.
pub(crate) fn param_error(e: &Error) -> (Option<&str>, String) {
    match e {
        Error::Param { key, message } => (Some(key.as_str()), message.clone()),
        other => (None, other.to_string()),
    }
}

/// Where a value came from when not from the stage's own text: ` (from `--set ...`)`,
/// ` (inherited from `dense`)` or both.
fn set_by_note(p: &ParamAst) -> String {
    match (&p.set_by, &p.inherited) {
        (Some(s), Some(from)) => format!(" (from `--set {s}`, inherited from `{from}`)"),
        (Some(s), None) => format!(" (from `--set {s}`)"),
        (None, Some(from)) => format!(" (inherited from `{from}`)"),
        (None, None) => String::new(),
    }
}

impl Checker<'_> {
    pub(super) fn stage(&mut self, s: &StageAst, names: &[&str]) -> Option<CheckedStage> {
        let name = s.name.node.as_str();
        let kinds: Vec<&str> = StageKind::ALL.iter().map(|k| k.as_str()).collect();
        // A stage without a kind of its own took one from the stage it extends.
        let written = s.kind.as_ref()?;
        let Some(kind) = StageKind::parse(&written.node) else {
            // An inherited kind is reported at the stage that writes it.
            let inherited = self
                .parent(s)
                .is_some_and(|p| p.kind.as_ref().is_some_and(|k| k.span == written.span));
            if !inherited {
                self.error(
                    Diag::new(format!("unknown kind `{}` in stage `{name}`", written.node))
                        .label(written.span, "unknown kind")
                        .help(suggestion(&written.node, &kinds, "stage kinds")),
                );
            }
            return None;
        };
        let plugin = self.plugin(s, kind);
        let params = self.params(s, kind, plugin.as_deref());
        // A prune stage needs `data` when its pruner scores with data.
        let entry =
            kind.plugin_kind().zip(plugin.as_deref()).and_then(|(k, p)| self.registry.get(k, p));
        let scores_with_data = match (kind, entry, &params) {
            (StageKind::Prune, Some(e), Some(p)) if e.instance.needs_data(&Params(p.clone())) => {
                plugin.as_deref()
            }
            _ => None,
        };
        let inputs = self.inputs(s, kind, names, scores_with_data);
        Some(CheckedStage { name: name.to_string(), kind, plugin, params: params?, inputs })
    }

    /// The stage's plugin name if it is valid for the kind (None for rewind).
    fn plugin(&mut self, s: &StageAst, kind: StageKind) -> Option<String> {
        let name = s.name.node.as_str();
        let Some(pk) = kind.plugin_kind() else {
            if let Some(uses) = &s.uses {
                self.error(
                    Diag::new(format!("rewind stage `{name}` takes no `uses`"))
                        .label(uses.span, "rewind is built into the core")
                        .help(format!(
                            "remove `uses: {}`; choose the behaviour with `mode:` (rewind, reinit, norm_l1, norm_l2)",
                            uses.node
                        )),
                );
            }
            return None;
        };
        let known = self.registry.names(pk);
        let Some(uses) = &s.uses else {
            if self.gaps.uses.contains(name) {
                return None;
            }
            self.error(
                Diag::new(format!(
                    "stage `{name}` ({}) does not say which {pk} it uses",
                    kind.as_str()
                ))
                .label(s.name.span, format!("needs `uses: <{pk}>`"))
                .help(format!(
                    "add `uses:`; known {pk} plugins: {}",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                )),
            );
            return None;
        };
        if self.registry.get(pk, &uses.node).is_none() {
            self.error(
                Diag::new(format!("unknown {pk} plugin `{}` in stage `{name}`", uses.node))
                    .label(uses.span, format!("no {pk} called `{}`", uses.node))
                    .help(format!(
                        "{}; for a plugin from a library, load the library with `--plugin PATH` or a `plugins:` list in the file",
                        suggestion(&uses.node, &known, &format!("known {pk} plugins"))
                    )),
            );
            return None;
        }
        Some(uses.node.clone())
    }

    pub(super) fn params(
        &mut self,
        s: &StageAst,
        kind: StageKind,
        plugin: Option<&str>,
    ) -> Option<BTreeMap<String, Value>> {
        let name = s.name.node.as_str();
        // Without a known plugin the valid keys are unknown: report nothing more here.
        let specs = self.specs(kind, plugin)?;
        let what = match plugin {
            Some(p) => format!("{}/{p}", kind.as_str()),
            None => kind.as_str().to_string(),
        };
        let valid: Vec<&str> = specs.iter().map(|p| p.name).collect();
        let mut out = BTreeMap::new();
        let mut ok = true;
        let mut seen: HashMap<&str, Span> = HashMap::new();
        // Problems with an inherited parameter that the stage extended reports as well.
        let quiet = self.parent_checks_alike(s);
        for p in &s.with {
            let quiet = quiet && p.inherited.is_some();
            let key = p.key.node.as_str();
            if let Some(prev) = seen.get(key) {
                self.error(
                    Diag::new(format!("parameter `{name}.{key}` is given twice"))
                        .label(p.key.span, "given again here")
                        .label(*prev, "first given here")
                        .help("remove one of them"),
                );
                ok = false;
                continue;
            }
            seen.insert(key, p.key.span);
            let Some(spec) = specs.iter().find(|sp| sp.name == key) else {
                if quiet {
                    ok = false;
                    continue;
                }
                self.error(
                    Diag::new(format!(
                        "unknown parameter `{key}` in stage `{name}` ({what}){}",
                        set_by_note(p)
                    ))
                    .label(p.key.span, "unknown parameter")
                    .help(suggestion(
                        key,
                        &valid,
                        &format!("parameters of {what}"),
                    )),
                );
                ok = false;
                continue;
            };
            if let Err(e) = spec.check(&p.value.node) {
                if quiet {
                    ok = false;
                    continue;
                }
                self.error(
                    Diag::new(format!("invalid value for `{name}.{key}`{}: {e}", set_by_note(p)))
                        .label(p.value.span, "invalid value")
                        .help(spec_help(spec)),
                );
                ok = false;
                continue;
            }
            out.insert(key.to_string(), spec.normalised(&p.value.node));
        }
        for spec in &specs {
            if out.contains_key(spec.name) || seen.contains_key(spec.name) {
                continue;
            }
            match spec.default_value() {
                Some(d) => {
                    out.insert(spec.name.to_string(), d);
                }
                None if self.gaps.params.contains(name) => ok = false,
                None => {
                    self.error(
                        Diag::new(format!(
                            "stage `{name}` ({what}) needs parameter `{}`",
                            spec.name
                        ))
                        .label(s.name.span, format!("`{}` missing", spec.name))
                        .help(format!(
                            "add `{}` under `with`; {}",
                            spec.name,
                            spec_help(spec)
                        )),
                    );
                    ok = false;
                }
            }
        }
        // Bounds between parameters, with every value known (defaults filled).
        let values: serde_json::Map<String, Value> =
            out.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for spec in &specs {
            if let Err(e) = spec.check_bound(&values) {
                let (span, note) = param_place(s, Some(spec.name));
                self.error(
                    Diag::new(format!("invalid value for `{name}.{}`{note}: {e}", spec.name))
                        .label(span, "beyond its bound")
                        .help(spec_help(spec)),
                );
                ok = false;
            }
        }
        // The plugin's own check of how its values combine.
        let entry = kind.plugin_kind().zip(plugin).and_then(|(pk, p)| self.registry.get(pk, p));
        if let (true, Some(entry)) = (ok, entry)
            && let Err(e) = entry.instance.check(&Params(out.clone()))
        {
            let (key, message) = param_error(&e);
            let (span, note) = param_place(s, key);
            let subject =
                key.map_or_else(|| format!("stage `{name}`"), |k| format!("`{name}.{k}`"));
            self.error(
                Diag::new(format!("invalid value for {subject}{note}: {message}"))
                    .label(span, "refused by the plugin")
                    .help(format!("see `ticketlab plugins describe {what}`")),
            );
            ok = false;
        }
        ok.then_some(out)
    }
}
