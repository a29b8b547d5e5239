//! The `.tlx` front end: the experiment language parsed with pest.
//!
//! ```text
//! experiment quickstart {
//!   description = "Tiny grokking ticket"
//!   seed = 0
//!   stage data: dataset modular { op = "add", p = 23 }
//!   stage init: model mlp_modular(data = data) { d_emb = 64 }
//!   stage ticket: rewind(from = dense, mask = mask) { to = "init" }
//!   stage ticket_train extends dense(model = ticket)
//!   stage compare: report compare(runs = [dense, ticket_train])
//!   sweep grid { mask.rate = [0.3, 0.6] }
//!   sweep seeds = 3
//! }
//! ```
//!
//! The grammar (`tlx.pest`) knows no stage kinds or plugin names; it produces the same
//! [`Experiment`] as the YAML front end and leaves the rest to the checker. Syntax errors are
//! reported with their line and column and a plain-words list of what was expected there.
//!
//! pest's parser is recursive, one level per nested bracket, so the text is first scanned for
//! brackets nested more than [`MAX_NESTING`] deep, which are refused before pest sees them. Other
//! problems found after parsing (a number too large, `sweep seeds = 0`) leave the part out of
//! the tree, record it in [`Experiment::gaps`] and let checking go on.

use std::collections::{BTreeSet, HashSet};

use pest::Parser;
use pest::iterators::Pair;
use serde_json::Value;

use crate::MAX_NESTING;
use crate::ast::{
    ClaimAst, Experiment, Gaps, InputAst, ParamAst, RandomAst, RandomAxis, Span, Spanned, StageAst,
    SweepAst, SweepAxis,
};
use crate::diag::Diag;
use ticketlab_api::plugin::registry::suggestion;

mod grammar {
    //! The pest parser generated from `tlx.pest`.
    #![allow(missing_docs)]

    /// The parser; [`Rule`] names the grammar's rules.
    #[derive(pest_derive::Parser)]
    #[grammar = "tlx.pest"]
    pub struct TlxParser;
}

use grammar::{Rule, TlxParser};

/// Words reserved by the language: names spelt like them must be quoted (`"seed"`).
pub const KEYWORDS: &[&str] =
    &["experiment", "description", "seed", "plugins", "stage", "sweep", "extends", "claim"];

/// Words that introduce a part of an experiment (as opposed to literals such as `true`).
const STRUCTURE_WORDS: &[&str] = &[
    "experiment",
    "description",
    "seed",
    "plugins",
    "stage",
    "sweep",
    "grid",
    "zip",
    "seeds",
    "extends",
    "uses",
    "claim",
];

/// Parses a `.tlx` experiment; on failure, every problem found.
pub fn parse(text: &str) -> Result<Experiment, Vec<Diag>> {
    match parse_partial(text) {
        (Some(exp), diags) if diags.is_empty() => Ok(exp),
        (_, diags) => Err(diags),
    }
}

/// Parses a `.tlx` experiment as far as it can be read: the tree, when the text parses (with
/// the parts that could not be read left out and recorded in its [`Experiment::gaps`]), and
/// every problem found. A syntax error gives no tree.
pub fn parse_partial(text: &str) -> (Option<Experiment>, Vec<Diag>) {
    if only_comments(text) {
        return (
            None,
            vec![
                Diag::new("the file holds no experiment (it is empty or only comments)")
                    .help("start with `experiment NAME { ... }`; see experiments/quickstart.tlx"),
            ],
        );
    }
    if let Some(at) = too_deep(text) {
        return (
            None,
            vec![
                Diag::new(format!(
                    "the nesting is too deep: more than {MAX_NESTING} levels of brackets (`{{`, `[`, `(`)"
                ))
                .label(Span::new(at, at + 1), format!("level {} starts here", MAX_NESTING + 1))
                .help("experiment files need only a few levels (the experiment, a stage, a value); close the brackets or flatten the structure"),
            ],
        );
    }
    // Record what the parser tried at the failure point, for the "expected ..." words.
    pest::set_error_detail(true);
    let mut pairs = match TlxParser::parse(Rule::file, text) {
        Ok(pairs) => pairs,
        Err(e) => return (None, vec![syntax_error(text, &e)]),
    };
    let mut w = Walker { diags: Vec::new(), gaps: Gaps::default() };
    let mut exp =
        pairs.next().and_then(|file| file.into_inner().next()).and_then(|e| w.experiment(e));
    if let Some(exp) = exp.as_mut() {
        exp.gaps = std::mem::take(&mut w.gaps);
    }
    (exp, w.diags)
}

/// The position of the first bracket nested more than [`MAX_NESTING`] levels deep, outside
/// strings and comments (unbalanced brackets are left for the parser to report).
fn too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            // Strings end at their closing quote or, unclosed, at the end of the line.
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn span(p: &Pair<'_, Rule>) -> Span {
    Span::new(p.as_span().start(), p.as_span().end())
}

/// What a leaf rule stands for, in words (structural rules are described by the
/// punctuation or keyword they expect instead).
fn rule_words(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::name | Rule::kind | Rule::uses | Rule::extends | Rule::ident => "a name",
        Rule::string => "a string in double quotes",
        Rule::escape => "an escape such as `\\n` or `\\\"`",
        Rule::number => "a number",
        Rule::integer => "a whole number",
        Rule::value => "a value",
        Rule::list => "a list `[...]`",
        Rule::boolean => "`true` or `false`",
        Rule::sweep_key => "`stage.param`",
        Rule::EOI => "the end of the file",
        _ => return None,
    })
}

/// The text found at `at`, for "found ..." (a word, a literal, or one character).
fn found_at(text: &str, at: usize) -> (String, Span) {
    let rest = &text[at.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return ("the end of the file".into(), Span::point(text.len()));
    };
    let len = if c.is_alphanumeric() || c == '_' {
        rest.find(|ch: char| !(ch.is_alphanumeric() || ch == '_')).unwrap_or(rest.len())
    } else if c == '"' {
        rest[1..].find(['"', '\n']).map_or(rest.len(), |i| i + 2).min(rest.len())
    } else {
        c.len_utf8()
    };
    let shown = match c {
        '\n' | '\r' => "the end of the line".to_string(),
        _ => format!("`{}`", &rest[..len]),
    };
    (shown, Span::new(at, at + len))
}

fn join_words(words: &BTreeSet<String>) -> String {
    let v: Vec<&str> = words.iter().map(String::as_str).collect();
    match v.len() {
        0 => "something else".into(),
        1 => v[0].to_string(),
        n => format!("{} or {}", v[..n - 1].join(", "), v[n - 1]),
    }
}

fn syntax_error(text: &str, e: &pest::error::Error<Rule>) -> Diag {
    let mut at = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut words = BTreeSet::new();
    if let Some(attempts) = e.parse_attempts() {
        let stacks = attempts.call_stacks();
        if stacks.iter().any(|s| s.deepest.get_rule() == Some(&Rule::keyword)) {
            return reserved_word(text, at);
        }
        at = attempts.max_position;
        for stack in &stacks {
            let rule = stack.deepest.get_rule().copied().or(stack.parent);
            if let Some(w) = rule.and_then(rule_words) {
                words.insert(w.to_string());
            }
        }
        let mut inside_token = false;
        for token in attempts.expected_tokens().iter().map(ToString::to_string) {
            let range = token.len() > 2 && token.contains("..");
            if token.trim().is_empty() || token == "#" {
                continue; // whitespace and comments fit anywhere
            } else if range
                || matches!(token.as_str(), "_" | "\"" | "-" | "BUILTIN_RULE")
                || (token.chars().all(|c| c.is_ascii_alphanumeric())
                    && !STRUCTURE_WORDS.contains(&token.as_str()))
            {
                inside_token = true; // part of a name, string or number: described by its rule
            } else {
                words.insert(format!("`{token}`"));
            }
        }
        if words.is_empty()
            && !inside_token
            && stacks.iter().any(|s| s.deepest.get_rule() == Some(&Rule::file))
        {
            words.insert("the end of the file".to_string());
        }
    }
    if words.is_empty()
        && let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant
    {
        words.extend(positives.iter().filter_map(|r| rule_words(*r)).map(str::to_string));
    }
    if words.contains("a value") || words.contains("a list `[...]`") {
        words.remove("`[`");
        words.remove("`{`");
    }
    let (found, found_span) = found_at(text, at);
    let expected = join_words(&words);
    let help = if text[at.min(text.len())..].trim_start().is_empty() {
        "a `{` has no matching `}`, or the file was cut short".to_string()
    } else if words.contains("`=`") {
        "parameters and inputs are written `name = value`".to_string()
    } else if words.contains("the end of the file") {
        "everything belongs inside `experiment NAME { ... }`".to_string()
    } else {
        "see experiments/quickstart.tlx for the syntax".to_string()
    };
    Diag::new(format!("syntax error: expected {expected}, found {found}"))
        .label(found_span, format!("expected {expected}"))
        .help(help)
}

/// A reserved word where a name belongs.
fn reserved_word(text: &str, at: usize) -> Diag {
    let (found, span) = found_at(text, at);
    let word = found.trim_matches('`');
    Diag::new(format!("syntax error: {found} is a reserved word and cannot be used as a name here"))
        .label(span, "reserved word")
        .help(format!("write it as a quoted string: `\"{word}\"`"))
}

/// Whether the text holds nothing but whitespace and comments.
fn only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

struct Walker {
    diags: Vec<Diag>,
    gaps: Gaps,
}

impl Walker {
    fn error(&mut self, d: Diag) {
        self.diags.push(d);
    }

    /// Runs `f`; its result if it reported no problem.
    fn clean<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        let before = self.diags.len();
        let out = f(self);
        (self.diags.len() == before).then_some(out)
    }

    fn string(&mut self, p: Pair<'_, Rule>) -> Spanned<String> {
        let sp = span(&p);
        match serde_json::from_str::<String>(p.as_str()) {
            Ok(s) => Spanned::new(s, sp),
            Err(e) => {
                self.error(
                    Diag::new(format!("invalid string: {e}"))
                        .label(sp, "here")
                        .help("check the escapes (`\\\"`, `\\\\`, `\\n`, `\\uXXXX`)"),
                );
                Spanned::new(String::new(), sp)
            }
        }
    }

    /// A `name` pair: an identifier or a quoted string.
    fn name(&mut self, p: Pair<'_, Rule>) -> Spanned<String> {
        let sp = span(&p);
        match p.into_inner().next() {
            Some(inner) if inner.as_rule() == Rule::string => self.string(inner),
            Some(inner) => Spanned::new(inner.as_str().to_string(), sp),
            None => Spanned::new(String::new(), sp),
        }
    }

    fn integer(&mut self, p: Pair<'_, Rule>) -> Spanned<u64> {
        let sp = span(&p);
        match p.as_str().parse::<u64>() {
            Ok(n) => Spanned::new(n, sp),
            Err(_) => {
                self.error(
                    Diag::new(format!("`{}` is too large", p.as_str()))
                        .label(sp, "too large")
                        .help("use a value below 2^64"),
                );
                Spanned::new(0, sp)
            }
        }
    }

    fn once<T>(
        &mut self,
        slot: &mut Option<T>,
        value: T,
        what: &str,
        sp: Span,
        first: Option<Span>,
    ) {
        if slot.is_some() {
            let mut d = Diag::new(format!("`{what}` is given twice")).label(sp, "given again here");
            if let Some(f) = first {
                d = d.label(f, "first given here");
            }
            self.error(d.help(format!("give `{what}` once")));
        } else {
            *slot = Some(value);
        }
    }

    fn experiment(&mut self, p: Pair<'_, Rule>) -> Option<Experiment> {
        let mut inner = p.into_inner();
        let name_pair = inner.next()?;
        let name_span = span(&name_pair);
        let name = self.clean(|w| w.name(name_pair)).unwrap_or_else(|| {
            self.gaps.name = true;
            Spanned::new(String::new(), name_span)
        });
        let mut description: Option<Spanned<String>> = None;
        let mut seed: Option<Spanned<u64>> = None;
        let mut plugins: Option<(Vec<Spanned<String>>, Span)> = None;
        let mut stages = Vec::new();
        let mut sweep: Option<SweepAst> = None;
        let mut claims = Vec::new();
        for item in inner {
            let sp = span(&item);
            match item.as_rule() {
                Rule::description => {
                    let first = description.as_ref().map(|d| d.span);
                    let v = item.into_inner().next().and_then(|s| self.clean(|w| w.string(s)));
                    if let Some(v) = v {
                        self.once(&mut description, v, "description", sp, first);
                    }
                }
                Rule::seed => {
                    let first = seed.as_ref().map(|d| d.span);
                    if let Some(v) =
                        item.into_inner().next().and_then(|s| self.clean(|w| w.integer(s)))
                    {
                        self.once(&mut seed, v, "seed", sp, first);
                    }
                }
                Rule::plugins => {
                    let first = plugins.as_ref().map(|p| p.1);
                    let list: Vec<_> =
                        item.into_inner().filter_map(|s| self.clean(|w| w.string(s))).collect();
                    self.once(&mut plugins, (list, sp), "plugins", sp, first);
                }
                Rule::stage => {
                    if let Some(s) = self.stage(item) {
                        stages.push(s);
                    }
                }
                Rule::sweep => self.sweep(item, &mut sweep),
                Rule::claim => claims.extend(self.claim(item)),
                _ => {}
            }
        }
        Some(Experiment {
            name,
            description,
            seed,
            plugins: plugins.map(|p| p.0).unwrap_or_default(),
            stages,
            sweep,
            claims,
            gaps: Gaps::default(),
        })
    }

    /// `claim NAME { text = "...", holds = "...", seeds = "..." }`.
    fn claim(&mut self, p: Pair<'_, Rule>) -> Option<ClaimAst> {
        const KEYS: &[&str] = &["text", "holds", "seeds"];
        let mut inner = p.into_inner();
        let name = self.name(inner.next()?);
        let (mut text, mut holds, mut seeds) = (None, None, None);
        for entry in inner {
            let mut parts = entry.into_inner();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else { continue };
            let key = self.name(key);
            let Some(value) = self.clean(|w| w.string(value)) else { continue };
            let slot = match key.node.as_str() {
                "text" => &mut text,
                "holds" => &mut holds,
                "seeds" => &mut seeds,
                other => {
                    self.error(
                        Diag::new(format!("unknown key `{other}` in claim `{}`", name.node))
                            .label(key.span, "not a claim key")
                            .help(suggestion(other, KEYS, "valid keys")),
                    );
                    continue;
                }
            };
            let first = slot.as_ref().map(|v: &Spanned<String>| v.span);
            let what = key.node.clone();
            self.once(slot, value, &what, key.span, first);
        }
        if holds.is_none() {
            self.error(
                Diag::new(format!("claim `{}` has no `holds`", name.node))
                    .label(name.span, "this claim")
                    .help("add `holds = \"CONDITION\"`, e.g. `holds = \"ticket_train.t_gen <= 0.2 * dense.t_gen\"`"),
            );
        }
        Some(ClaimAst { name, text, holds: holds?, seeds })
    }

    /// A stage; a part that cannot be read is left out (and recorded in the gaps).
    fn stage(&mut self, p: Pair<'_, Rule>) -> Option<StageAst> {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let name_pair = inner.next()?;
        let Some(name) = self.clean(|w| w.name(name_pair)) else {
            // A stage whose name cannot be read: only its absence is known.
            self.gaps.unread_stages.insert(String::new());
            return None;
        };
        let key = name.node.clone();
        let mut stage = StageAst {
            name,
            kind: None,
            uses: None,
            extends: None,
            with: Vec::new(),
            inputs: Vec::new(),
            span: sp,
        };
        for part in inner {
            match part.as_rule() {
                Rule::kind => {
                    let kind = part.into_inner().next().and_then(|n| self.clean(|w| w.name(n)));
                    if kind.is_none() {
                        self.gaps.unread_stages.insert(key);
                        return None;
                    }
                    stage.kind = kind;
                }
                Rule::extends => {
                    stage.extends =
                        part.into_inner().next().and_then(|n| self.clean(|w| w.name(n)));
                    if stage.extends.is_none() {
                        // What the stage would take from the other is unknown.
                        self.gaps.unread_stages.insert(key);
                        return None;
                    }
                }
                Rule::uses => {
                    stage.uses = part.into_inner().next().and_then(|n| self.clean(|w| w.name(n)));
                    if stage.uses.is_none() {
                        self.gaps.uses.insert(key.clone());
                    }
                }
                Rule::inputs => {
                    for input in part.into_inner() {
                        match self.clean(|w| w.input(input)).flatten() {
                            Some(i) => stage.inputs.push(i),
                            None => {
                                self.gaps.inputs.insert(key.clone());
                            }
                        }
                    }
                }
                Rule::body => {
                    for param in part.into_inner() {
                        let mut kv = param.into_inner();
                        let (Some(k), Some(v)) = (kv.next(), kv.next()) else { continue };
                        match self.clean(|w| (w.name(k), w.value(v))) {
                            Some((key, value)) => stage.with.push(ParamAst {
                                key,
                                value,
                                set_by: None,
                                inherited: None,
                            }),
                            None => {
                                self.gaps.params.insert(key.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Some(stage)
    }

    fn input(&mut self, p: Pair<'_, Rule>) -> Option<InputAst> {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let port = self.name(inner.next()?);
        let target = inner.next()?;
        let (refs, list) = match target.as_rule() {
            Rule::ref_list => (target.into_inner().map(|n| self.name(n)).collect(), true),
            _ => (vec![self.name(target)], false),
        };
        Some(InputAst { port, refs, list, span: sp, inherited: None })
    }

    fn sweep(&mut self, p: Pair<'_, Rule>, sweep: &mut Option<SweepAst>) {
        let sp = span(&p);
        let Some(which) = p.into_inner().next() else { return };
        let s = sweep.get_or_insert_with(|| SweepAst { span: sp, ..SweepAst::default() });
        s.span = Span::new(s.span.start.min(sp.start), s.span.end.max(sp.end));
        match which.as_rule() {
            Rule::sweep_seeds => {
                let first = s.seeds.as_ref().map(|x| x.span);
                let Some(n) = which.into_inner().next() else { return };
                let Some(n) = self.clean(|w| w.integer(n)) else {
                    self.gaps.sweep = true;
                    return;
                };
                if n.node == 0 {
                    self.error(
                        Diag::new("`sweep seeds` must be at least 1")
                            .label(n.span, "zero repeats")
                            .help("write `sweep seeds = 1` or more, or remove it"),
                    );
                    self.gaps.sweep = true;
                    return;
                }
                let mut slot = s.seeds.take();
                self.once(&mut slot, n, "sweep seeds", sp, first);
                if let Some(s) = sweep.as_mut() {
                    s.seeds = slot;
                }
            }
            Rule::sweep_random => {
                let random = self.random(which, sp);
                if let Some(s) = sweep.as_mut() {
                    match &mut s.random {
                        Some(first) => {
                            self.error(
                                Diag::new("`sweep random` is given twice")
                                    .label(sp, "given again here")
                                    .label(first.span, "first given here")
                                    .help("draw every parameter in one `sweep random { ... }`"),
                            );
                        }
                        None => s.random = Some(random),
                    }
                }
            }
            rule => {
                let mut axes: Vec<SweepAxis> = Vec::new();
                for a in which.into_inner() {
                    match self.clean(|w| w.axis(a)).flatten() {
                        Some(axis) => axes.push(axis),
                        None => self.gaps.sweep = true,
                    }
                }
                if let Some(s) = sweep.as_mut() {
                    if rule == Rule::sweep_grid { s.grid.extend(axes) } else { s.zip.extend(axes) }
                }
            }
        }
    }

    fn random(&mut self, p: Pair<'_, Rule>, sp: Span) -> RandomAst {
        let mut random = RandomAst { span: sp, ..RandomAst::default() };
        for entry in p.into_inner() {
            let entry_span = span(&entry);
            let mut inner = entry.clone().into_inner();
            let (Some(first), Some(second)) = (inner.next(), inner.next()) else { continue };
            match entry.as_rule() {
                Rule::random_count => {
                    let Some(n) = self.clean(|w| w.integer(second)) else {
                        self.gaps.sweep = true;
                        continue;
                    };
                    let word = first.as_str();
                    if word == "samples" && n.node == 0 {
                        self.error(
                            Diag::new("`samples` must be at least 1")
                                .label(n.span, "no points")
                                .help("draw one point or more"),
                        );
                        continue;
                    }
                    let slot =
                        if word == "samples" { &mut random.samples } else { &mut random.seed };
                    let before = slot.as_ref().map(|x| x.span);
                    self.once(slot, n, word, entry_span, before);
                }
                _ => {
                    let key = match first.clone().into_inner().next() {
                        Some(s) if s.as_rule() == Rule::string => self.string(s).node,
                        _ => first.as_str().to_string(),
                    };
                    random.axes.push(RandomAxis {
                        key: Spanned::new(key, span(&first)),
                        dist: self.string(second),
                        set_by: None,
                    });
                }
            }
        }
        random
    }

    fn axis(&mut self, p: Pair<'_, Rule>) -> Option<SweepAxis> {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let key_pair = inner.next()?;
        let key_span = span(&key_pair);
        let key = match key_pair.clone().into_inner().next() {
            Some(s) if s.as_rule() == Rule::string => self.string(s).node,
            _ => key_pair.as_str().to_string(),
        };
        let list = inner.next()?;
        let values = list.into_inner().map(|v| self.value(v)).collect();
        Some(SweepAxis { key: Spanned::new(key, key_span), values, span: sp, set_by: None })
    }

    fn value(&mut self, p: Pair<'_, Rule>) -> Spanned<Value> {
        let sp = span(&p);
        let p = if p.as_rule() == Rule::value { p.into_inner().next() } else { Some(p) };
        let Some(p) = p else { return Spanned::new(Value::Null, sp) };
        let v = match p.as_rule() {
            Rule::string => Value::String(self.string(p).node),
            Rule::number => self.number(p.as_str(), sp),
            Rule::boolean => Value::Bool(p.as_str() == "true"),
            Rule::list => Value::Array(p.into_inner().map(|v| self.value(v).node).collect()),
            Rule::object => {
                let mut obj = serde_json::Map::new();
                let mut seen = HashSet::new();
                for entry in p.into_inner() {
                    let mut kv = entry.into_inner();
                    let (Some(k), Some(v)) = (kv.next(), kv.next()) else { continue };
                    let key = self.name(k);
                    if !seen.insert(key.node.clone()) {
                        self.error(
                            Diag::new(format!("key `{}` is given twice", key.node))
                                .label(key.span, "given again here")
                                .help("give each key once"),
                        );
                    }
                    obj.insert(key.node, self.value(v).node);
                }
                Value::Object(obj)
            }
            _ => Value::Null,
        };
        Spanned::new(v, sp)
    }

    fn number(&mut self, text: &str, sp: Span) -> Value {
        let is_int = !text.contains(['.', 'e', 'E']);
        if is_int {
            if let Ok(i) = text.parse::<i64>() {
                return Value::from(i);
            }
            if let Ok(u) = text.parse::<u64>() {
                return Value::from(u);
            }
        }
        match text.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(n) if n.as_f64().is_some_and(f64::is_finite) => Value::Number(n),
            _ => {
                self.error(
                    Diag::new(format!("`{text}` is not a representable number"))
                        .label(sp, "out of range")
                        .help("use a smaller number"),
                );
                Value::Null
            }
        }
    }
}
