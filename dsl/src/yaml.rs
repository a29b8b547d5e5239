//! The YAML front end: experiment files as YAML documents.
//!
//! `serde_yaml` parses the text (and refuses malformed YAML and duplicate keys), anchors and
//! aliases are resolved by it and `<<` merge keys applied (`with: { <<: *recipe, steps: 100 }`
//! takes the anchored mapping's entries that are not written beside the `<<`); the document
//! is then walked into the [`Experiment`] syntax tree, with spans found by the `locate` module
//! (a scanner over the source text). Structural mistakes (a stage without `kind`, an unknown
//! top-level key, a number where a name belongs) are all collected; what they make unreadable
//! is left out of the tree and recorded in its [`Gaps`], so that the checker can still check
//! the rest of the file.

mod locate;

use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::ast::{
    ClaimAst, Experiment, Gaps, InputAst, ParamAst, RandomAst, RandomAxis, Span, Spanned, StageAst,
    SweepAst, SweepAxis,
};
use crate::diag::Diag;
use locate::{Locations, MAX_DEPTH};
use ticketlab_api::plugin::registry::suggestion;

const TOP_KEYS: &[&str] = &["name", "description", "seed", "plugins", "stages", "sweep", "claims"];

/// The keys of a claim.
const CLAIM_KEYS: &[&str] = &["text", "holds", "seeds"];
const STAGE_KEYS: &[&str] = &["kind", "uses", "extends", "with", "inputs"];
const SWEEP_KEYS: &[&str] = &["grid", "zip", "seeds", "random"];
const RANDOM_KEYS: &[&str] = &["samples", "seed", "over"];

/// Parses a YAML experiment; on failure, every problem found.
pub fn parse(text: &str) -> Result<Experiment, Vec<Diag>> {
    match parse_partial(text) {
        (Some(exp), diags) if diags.is_empty() => Ok(exp),
        (_, diags) => Err(diags),
    }
}

/// Parses a YAML experiment as far as it can be read: the tree, when the text is a YAML
/// mapping (with the parts that could not be read left out and recorded in its
/// [`Experiment::gaps`]), and every problem found. Malformed YAML gives no tree.
pub fn parse_partial(text: &str) -> (Option<Experiment>, Vec<Diag>) {
    let tabs = tab_indentation(text);
    if !tabs.is_empty() {
        return (None, tabs);
    }
    let locations = Locations::scan(text);
    if let Some(at) = locations.too_deep() {
        return (None, vec![too_deep(at)]);
    }
    let mut doc: Yaml = match serde_yaml::from_str(text) {
        Ok(doc) => doc,
        Err(e) => return (None, vec![yaml_error(text, &e, &locations)]),
    };
    // `<<: *recipe` merge keys: the aliased mapping's entries, under the keys written beside.
    if let Err(e) = doc.apply_merge() {
        let at = text.find("<<").unwrap_or(0);
        return (
            None,
            vec![
                Diag::new(format!("invalid YAML merge key: {}", yaml_message(&e)))
                    .label(Span::new(at, at + 2), "merged here")
                    .help("`<<` takes an alias of a mapping (`<<: *recipe`) or a list of them"),
            ],
        );
    }
    let mut w = Walker { loc: locations, diags: Vec::new(), gaps: Gaps::default() };
    let mut exp = w.experiment(&doc);
    if let Some(exp) = exp.as_mut() {
        exp.gaps = std::mem::take(&mut w.gaps);
    }
    (exp, w.diags)
}

/// Mappings and lists nested deeper than [`MAX_DEPTH`], the first deeper one starting at `at`.
fn too_deep(at: usize) -> Diag {
    Diag::new(format!("the nesting is too deep: more than {MAX_DEPTH} levels of mappings and lists"))
        .label(Span::new(at, at + 1), format!("level {} starts here", MAX_DEPTH + 1))
        .help("experiment files need only a few levels (stages, a stage, `with`, a value); close the brackets or flatten the structure")
}

/// Converts a YAML value (e.g. a `--set` value) to JSON.
pub fn to_json(v: &Yaml) -> Result<Value, String> {
    Ok(match v {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("`{n}` is not a finite number"))?
            }
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(m) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in m {
                let Yaml::String(k) = k else {
                    return Err(format!("mapping keys must be strings, found {}", describe(k)));
                };
                obj.insert(k.clone(), to_json(v)?);
            }
            Value::Object(obj)
        }
        Yaml::Tagged(t) => return Err(format!("YAML tags such as `{}` are not supported", t.tag)),
    })
}

/// Lines indented with tabs, which YAML forbids.
fn tab_indentation(text: &str) -> Vec<Diag> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(tab) = line[..indent_len].find('\t') {
            let at = offset + tab;
            out.push(
                Diag::new(format!("tab in the indentation of line {}", i + 1))
                    .label(Span::new(at, at + 1), "tab here")
                    .help("YAML indentation must use spaces; replace the tab with spaces"),
            );
        }
        offset += line.len();
    }
    out
}

/// serde_yaml's message without its own "at line L column C" (the renderer shows the place).
fn yaml_message(e: &serde_yaml::Error) -> String {
    let full = e.to_string();
    full.split(" at line ").next().unwrap_or(&full).to_string()
}

fn yaml_error(text: &str, e: &serde_yaml::Error, locations: &Locations) -> Diag {
    let full = e.to_string();
    // The location is shown by the renderer; drop serde_yaml's own "at line L column C".
    let message = match full.find(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    if let Some((prefix, key)) = message.split_once("duplicate entry with key ") {
        // serde_yaml names the mapping's path (`stages.data.with: `) and the key (`"p"`).
        let key = serde_json::from_str::<String>(key)
            .unwrap_or_else(|_| key.trim_matches('"').to_string());
        let prefix = prefix.trim_end().trim_end_matches(':');
        let full = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let at = e.location().map_or(0, |l| l.index().min(text.len()));
        let mut d = Diag::new(format!("duplicate key `{full}`"));
        match locations.duplicates().iter().find(|(path, _, _)| path.join(".") == full) {
            Some((_, first, second)) => {
                d = d.label(*second, "written again here").label(*first, "first written here")
            }
            None => d = d.label(Span::point(at), "in this mapping"),
        }
        return d.help("each key may appear once per mapping; remove or rename one of them");
    }
    let at = e.location().map_or(0, |l| l.index().min(text.len()));
    Diag::new(format!("invalid YAML: {message}")).label(Span::point(at), "here").help(
        "check the brackets, quotes and indentation up to here; see experiments/quickstart.yaml",
    )
}

fn describe(v: &Yaml) -> String {
    match v {
        Yaml::Null => "nothing (null)".into(),
        Yaml::Bool(b) => format!("boolean `{b}`"),
        Yaml::Number(n) => format!("number `{n}`"),
        Yaml::String(s) => format!("string `{s}`"),
        Yaml::Sequence(_) => "a list".into(),
        Yaml::Mapping(_) => "a mapping".into(),
        Yaml::Tagged(t) => format!("tagged value `{}`", t.tag),
    }
}

struct Walker {
    loc: Locations,
    diags: Vec<Diag>,
    gaps: Gaps,
}

impl Walker {
    fn key_span(&self, path: &[&str]) -> Span {
        self.loc.key(path)
    }

    fn value_span(&self, path: &[&str]) -> Span {
        self.loc.value(path)
    }

    fn error(&mut self, diag: Diag) {
        self.diags.push(diag);
    }

    /// Records that the value at `path` could not be read (and was reported).
    fn lost(&mut self, path: &[&str]) {
        let g = &mut self.gaps;
        match path {
            ["name", ..] => g.name = true,
            ["stages"] => g.stages = true,
            ["stages", s] => {
                g.unread_stages.insert(s.to_string());
            }
            ["stages", s, "uses", ..] => {
                g.uses.insert(s.to_string());
            }
            ["stages", s, "with", ..] => {
                g.params.insert(s.to_string());
            }
            ["stages", s, "inputs", ..] => {
                g.inputs.insert(s.to_string());
            }
            // Some other key of a stage: it may have been any of them.
            ["stages", s, ..] => {
                for set in [&mut g.uses, &mut g.params, &mut g.inputs] {
                    set.insert(s.to_string());
                }
            }
            ["sweep", ..] => g.sweep = true,
            _ => {}
        }
    }

    /// A mapping's entries with string keys; other keys are reported.
    fn entries<'y>(
        &mut self,
        m: &'y serde_yaml::Mapping,
        path: &[&str],
    ) -> Vec<(&'y str, &'y Yaml)> {
        let mut out = Vec::new();
        for (k, v) in m {
            match k {
                Yaml::String(s) => out.push((s.as_str(), v)),
                other => {
                    let mut child = path.to_vec();
                    child.push("?");
                    self.lost(&child);
                    let span = self.value_span(path);
                    self.error(
                        Diag::new(format!(
                            "key {} in `{}` is not a name",
                            describe(other),
                            path.join(".")
                        ))
                        .label(span, "in this mapping")
                        .help("keys must be names such as `rate`"),
                    );
                }
            }
        }
        out
    }

    fn expect_map<'y>(
        &mut self,
        v: &'y Yaml,
        path: &[&str],
        what: &str,
    ) -> Option<&'y serde_yaml::Mapping> {
        match v {
            Yaml::Mapping(m) => Some(m),
            other => {
                self.lost(path);
                let span = self.value_span(path);
                self.error(
                    Diag::new(format!(
                        "`{}` must be a mapping, found {}",
                        path.join("."),
                        describe(other)
                    ))
                    .label(span, "expected a mapping")
                    .help(format!("write {what}")),
                );
                None
            }
        }
    }

    fn string(&mut self, v: &Yaml, path: &[&str]) -> Option<Spanned<String>> {
        self.text(
            v,
            path,
            ("be a string", "expected a string"),
            "quote the value if it is meant as text",
        )
    }

    /// `v` as text; otherwise an error that `path` must `expected.0` (labelled `expected.1`).
    fn text(
        &mut self,
        v: &Yaml,
        path: &[&str],
        expected: (&str, &str),
        help: &str,
    ) -> Option<Spanned<String>> {
        let span = self.value_span(path);
        match v {
            Yaml::String(s) => Some(Spanned::new(s.clone(), span)),
            other => {
                self.lost(path);
                self.error(
                    Diag::new(format!(
                        "`{}` must {}, found {}",
                        path.join("."),
                        expected.0,
                        describe(other)
                    ))
                    .label(span, expected.1)
                    .help(help.to_string()),
                );
                None
            }
        }
    }

    fn count(&mut self, v: &Yaml, path: &[&str], min: u64) -> Option<Spanned<u64>> {
        let span = self.value_span(path);
        match v.as_u64() {
            Some(n) if n >= min => Some(Spanned::new(n, span)),
            _ => {
                self.lost(path);
                self.error(
                    Diag::new(format!(
                        "`{}` must be an integer >= {min}, found {}",
                        path.join("."),
                        describe(v)
                    ))
                    .label(span, "expected an integer")
                    .help(format!("write a whole number such as `{min}`")),
                );
                None
            }
        }
    }

    fn json(&mut self, v: &Yaml, path: &[&str]) -> Option<Spanned<Value>> {
        let span = self.value_span(path);
        match to_json(v) {
            Ok(j) => Some(Spanned::new(j, span)),
            Err(e) => {
                self.lost(path);
                self.error(
                    Diag::new(format!("`{}`: {e}", path.join(".")))
                        .label(span, "unsupported value"),
                );
                None
            }
        }
    }

    fn experiment(&mut self, doc: &Yaml) -> Option<Experiment> {
        let m = match doc {
            Yaml::Null => {
                self.error(
                    Diag::new("the file holds no experiment (it is empty or only comments)")
                        .help("start with `name:` and `stages:`; see experiments/quickstart.yaml"),
                );
                return None;
            }
            Yaml::Mapping(m) => m,
            other => {
                let span = self.value_span(&[]);
                self.error(
                    Diag::new(format!(
                        "an experiment file must be a mapping, found {}",
                        describe(other)
                    ))
                    .label(span, "expected `name:`, `stages:`, ...")
                    .help("start with `name:` and `stages:`; see experiments/quickstart.yaml"),
                );
                return None;
            }
        };
        let (mut name, mut description, mut seed, mut plugins, mut stages, mut sweep) =
            (None, None, None, Vec::new(), None, None);
        let mut claims = Vec::new();
        // Keys that a misspelt key was probably meant as: not reported again as missing.
        let mut meant = Vec::new();
        for (key, v) in self.entries(m, &[]) {
            match key {
                "name" => name = self.string(v, &["name"]),
                "description" => {
                    description = match v {
                        Yaml::Null => None,
                        _ => self.string(v, &["description"]),
                    }
                }
                "seed" => seed = self.count(v, &["seed"], 0),
                "plugins" => plugins = self.plugins(v),
                "stages" => stages = self.stages(v),
                "sweep" => sweep = self.sweep(v),
                "claims" => claims = self.claims(v),
                other => {
                    meant.extend(ticketlab_api::plugin::registry::closest(other, TOP_KEYS));
                    let span = self.key_span(&[other]);
                    self.error(
                        Diag::new(format!("unknown top-level key `{other}`"))
                            .label(span, "not an experiment key")
                            .help(suggestion(other, TOP_KEYS, "valid keys")),
                    );
                }
            }
        }
        if !m.contains_key("name") && !meant.contains(&"name") {
            self.error(
                Diag::new("the experiment has no `name`")
                    .label(Span::point(0), "expected `name:` in this file")
                    .help("add a line such as `name: my_experiment`"),
            );
        }
        if !m.contains_key("stages") && !meant.contains(&"stages") {
            self.error(
                Diag::new("the experiment has no `stages`")
                    .label(Span::point(0), "expected `stages:` in this file")
                    .help("add a `stages:` mapping; see experiments/quickstart.yaml"),
            );
        }
        let name = name.unwrap_or_else(|| {
            self.gaps.name = true;
            Spanned::new(String::new(), Span::point(0))
        });
        let stages = stages.unwrap_or_else(|| {
            self.gaps.stages = true;
            Vec::new()
        });
        Some(Experiment {
            name,
            description,
            seed,
            plugins,
            stages,
            sweep,
            claims,
            gaps: Gaps::default(),
        })
    }

    /// `claims: { NAME: { text: ..., holds: ..., seeds: ... } }`.
    fn claims(&mut self, v: &Yaml) -> Vec<ClaimAst> {
        if v.is_null() {
            return Vec::new();
        }
        let what = "one `NAME: { text: ..., holds: CONDITION, seeds: all }` entry per claim";
        let Some(m) = self.expect_map(v, &["claims"], what) else { return Vec::new() };
        let mut out = Vec::new();
        for (name, body) in self.entries(m, &["claims"]) {
            let base = ["claims", name];
            let name_span = self.key_span(&base);
            let Some(body) = self.expect_map(body, &base, "`{ text: ..., holds: CONDITION }`")
            else {
                continue;
            };
            let (mut text, mut holds, mut seeds) = (None, None, None);
            for (key, v) in self.entries(body, &base) {
                let path = ["claims", name, key];
                match key {
                    "text" => text = self.string(v, &path),
                    "holds" => {
                        holds = self.text(
                            v,
                            &path,
                            ("be a condition", "expected a condition"),
                            "write the condition as text, quoted when it holds `: ` (an aggregation such as `min(mask.rate: ...)`): `holds: \"...\"`",
                        )
                    }
                    "seeds" => seeds = self.string(v, &path),
                    other => {
                        let span = self.key_span(&path);
                        self.error(
                            Diag::new(format!("unknown key `{other}` in claim `{name}`"))
                                .label(span, "not a claim key")
                                .help(suggestion(other, CLAIM_KEYS, "valid keys")),
                        );
                    }
                }
            }
            if !body.contains_key("holds") {
                self.error(
                    Diag::new(format!("claim `{name}` has no `holds`"))
                        .label(name_span, "this claim")
                        .help("add `holds: CONDITION`, e.g. `holds: ticket_train.t_gen <= 0.2 * dense.t_gen`"),
                );
            }
            if let Some(holds) = holds {
                out.push(ClaimAst {
                    name: Spanned::new(name.to_string(), name_span),
                    text,
                    holds,
                    seeds,
                });
            }
        }
        out
    }

    fn plugins(&mut self, v: &Yaml) -> Vec<Spanned<String>> {
        match v {
            Yaml::Null => Vec::new(),
            Yaml::Sequence(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let idx = i.to_string();
                    if let Some(s) = self.string(item, &["plugins", &idx]) {
                        out.push(s);
                    }
                }
                out
            }
            other => {
                let span = self.value_span(&["plugins"]);
                self.error(
                    Diag::new(format!(
                        "`plugins` must be a list of library paths, found {}",
                        describe(other)
                    ))
                    .label(span, "expected a list")
                    .help("write `plugins: [path/to/libplugin.so]`"),
                );
                Vec::new()
            }
        }
    }

    fn stages(&mut self, v: &Yaml) -> Option<Vec<StageAst>> {
        if v.is_null() {
            return Some(Vec::new());
        }
        let m = self.expect_map(
            v,
            &["stages"],
            "one `NAME: { kind: ..., uses: ... }` entry per stage",
        )?;
        let mut out = Vec::new();
        for (name, body) in self.entries(m, &["stages"]) {
            if let Some(stage) = self.stage(name, body) {
                out.push(stage);
            }
        }
        Some(out)
    }

    fn stage(&mut self, name: &str, body: &Yaml) -> Option<StageAst> {
        let base = ["stages", name];
        let name_span = self.key_span(&base);
        let span = Span::new(name_span.start, self.value_span(&base).end.max(name_span.end));
        let m = self.expect_map(
            body,
            &base,
            "`{ kind: ..., uses: ..., with: { ... }, inputs: { ... } }`",
        )?;
        let (mut kind, mut uses, mut with, mut inputs) = (None, None, Vec::new(), Vec::new());
        let mut extends = None;
        let mut meant = Vec::new();
        for (key, v) in self.entries(m, &base) {
            match key {
                "kind" => kind = self.string(v, &["stages", name, "kind"]),
                "uses" => uses = self.string(v, &["stages", name, "uses"]),
                "extends" => {
                    extends = self.text(
                        v,
                        &["stages", name, "extends"],
                        ("name a stage", "expected a stage name"),
                        "write the name of the stage whose recipe this one takes, e.g. `extends: dense`",
                    )
                }
                "with" => with = self.params(name, v),
                "inputs" => inputs = self.inputs(name, v),
                other => {
                    meant.extend(ticketlab_api::plugin::registry::closest(other, STAGE_KEYS));
                    let span = self.key_span(&["stages", name, other]);
                    self.error(
                        Diag::new(format!("unknown key `{other}` in stage `{name}`"))
                            .label(span, "not a stage key")
                            .help(suggestion(other, STAGE_KEYS, "valid keys")),
                    );
                }
            }
        }
        let has = |key: &str| m.contains_key(key) || meant.contains(&key);
        if !has("kind") && !has("extends") {
            self.error(
                Diag::new(format!("stage `{name}` has no `kind`"))
                    .label(name_span, "this stage")
                    .help("add `kind:` (dataset, model, train, prune, rewind, analyze or report), or `extends: STAGE` to take another stage's"),
            );
        }
        // A misspelt key stands for a part of the stage that is therefore missing.
        for key in meant {
            self.lost(&["stages", name, key]);
        }
        // Without its kind or a stage to take it from, what the stage is stays unknown.
        if kind.is_none() && extends.is_none() {
            self.lost(&base);
            return None;
        }
        Some(StageAst {
            name: Spanned::new(name.to_string(), name_span),
            kind,
            uses,
            extends,
            with,
            inputs,
            span,
        })
    }

    fn params(&mut self, stage: &str, v: &Yaml) -> Vec<ParamAst> {
        if v.is_null() {
            return Vec::new();
        }
        let path = ["stages", stage, "with"];
        let Some(m) = self.expect_map(v, &path, "`with: { param: value, ... }`") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in self.entries(m, &path) {
            let p = ["stages", stage, "with", key];
            let key_span = self.key_span(&p);
            if let Some(value) = self.json(value, &p) {
                out.push(ParamAst {
                    key: Spanned::new(key.to_string(), key_span),
                    value,
                    set_by: None,
                    inherited: None,
                });
            }
        }
        out
    }

    fn inputs(&mut self, stage: &str, v: &Yaml) -> Vec<InputAst> {
        if v.is_null() {
            return Vec::new();
        }
        let path = ["stages", stage, "inputs"];
        let Some(m) = self.expect_map(v, &path, "`inputs: { port: stage, ... }`") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (port, value) in self.entries(m, &path) {
            let p = ["stages", stage, "inputs", port];
            let port_span = self.key_span(&p);
            let span = Span::new(port_span.start, self.value_span(&p).end.max(port_span.end));
            let (refs, list) = match value {
                Yaml::Sequence(items) => {
                    let mut refs = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let idx = i.to_string();
                        if let Some(r) =
                            self.stage_ref(item, &["stages", stage, "inputs", port, &idx])
                        {
                            refs.push(r);
                        }
                    }
                    // A connection missing some of its stages is left out as a whole.
                    if refs.len() < items.len() {
                        continue;
                    }
                    (refs, true)
                }
                other => match self.stage_ref(other, &p) {
                    Some(r) => (vec![r], false),
                    None => continue,
                },
            };
            out.push(InputAst {
                port: Spanned::new(port.to_string(), port_span),
                refs,
                list,
                span,
                inherited: None,
            });
        }
        out
    }

    fn stage_ref(&mut self, v: &Yaml, path: &[&str]) -> Option<Spanned<String>> {
        self.text(
            v,
            path,
            ("name a stage", "expected a stage name"),
            "connect a port to a stage name, or to a list of stage names",
        )
    }

    fn sweep(&mut self, v: &Yaml) -> Option<SweepAst> {
        if v.is_null() {
            return None;
        }
        let m = self.expect_map(
            v,
            &["sweep"],
            "`sweep: { grid: { STAGE.PARAM: [values] }, seeds: N }`",
        )?;
        let key_span = self.key_span(&["sweep"]);
        let mut sweep = SweepAst {
            span: Span::new(key_span.start, self.value_span(&["sweep"]).end),
            ..SweepAst::default()
        };
        for (key, value) in self.entries(m, &["sweep"]) {
            match key {
                "grid" => sweep.grid = self.axes("grid", value),
                "zip" => sweep.zip = self.axes("zip", value),
                "seeds" => sweep.seeds = self.count(value, &["sweep", "seeds"], 1),
                "random" => sweep.random = self.random(value),
                other => {
                    self.lost(&["sweep", other]);
                    let span = self.key_span(&["sweep", other]);
                    self.error(
                        Diag::new(format!("unknown key `{other}` in `sweep`"))
                            .label(span, "not a sweep key")
                            .help(suggestion(other, SWEEP_KEYS, "valid keys")),
                    );
                }
            }
        }
        Some(sweep)
    }

    fn random(&mut self, v: &Yaml) -> Option<RandomAst> {
        let path = ["sweep", "random"];
        let m = self.expect_map(
            v,
            &path,
            "`random: { samples: N, seed: S, over: { STAGE.PARAM: \"loguniform(a, b)\" } }`",
        )?;
        let key_span = self.key_span(&path);
        let mut random = RandomAst {
            span: Span::new(key_span.start, self.value_span(&path).end),
            ..RandomAst::default()
        };
        for (key, value) in self.entries(m, &path) {
            match key {
                "samples" => random.samples = self.count(value, &["sweep", "random", "samples"], 1),
                "seed" => random.seed = self.count(value, &["sweep", "random", "seed"], 0),
                "over" => {
                    let over = ["sweep", "random", "over"];
                    let Some(axes) = self.expect_map(value, &over, "`{ STAGE.PARAM: \"DIST\" }`")
                    else {
                        continue;
                    };
                    for (param, dist) in self.entries(axes, &over) {
                        let p = ["sweep", "random", "over", param];
                        if let Some(dist) = self.string(dist, &p) {
                            random.axes.push(RandomAxis {
                                key: Spanned::new(param.to_string(), self.key_span(&p)),
                                dist,
                                set_by: None,
                            });
                        }
                    }
                }
                other => {
                    self.lost(&["sweep", "random", other]);
                    let span = self.key_span(&["sweep", "random", other]);
                    self.error(
                        Diag::new(format!("unknown key `{other}` in `sweep.random`"))
                            .label(span, "not a key of `random`")
                            .help(suggestion(other, RANDOM_KEYS, "valid keys")),
                    );
                }
            }
        }
        Some(random)
    }

    fn axes(&mut self, which: &str, v: &Yaml) -> Vec<SweepAxis> {
        let path = ["sweep", which];
        let Some(m) = self.expect_map(v, &path, "`{ STAGE.PARAM: [value, ...] }`") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in self.entries(m, &path) {
            let p = ["sweep", which, key];
            let key_span = self.key_span(&p);
            let span = Span::new(key_span.start, self.value_span(&p).end.max(key_span.end));
            let Yaml::Sequence(items) = value else {
                self.lost(&p);
                let vspan = self.value_span(&p);
                self.error(
                    Diag::new(format!(
                        "sweep axis `{key}` must be a list of values, found {}",
                        describe(value)
                    ))
                    .label(vspan, "expected a list")
                    .help(format!("write `{key}: [value, ...]`")),
                );
                continue;
            };
            let mut values = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let idx = i.to_string();
                if let Some(j) = self.json(item, &["sweep", which, key, &idx]) {
                    values.push(j);
                }
            }
            // An axis missing some of its values is left out as a whole.
            if values.len() < items.len() {
                continue;
            }
            out.push(SweepAxis {
                key: Spanned::new(key.to_string(), key_span),
                values,
                span,
                set_by: None,
            });
        }
        out
    }
}
