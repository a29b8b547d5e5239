//! `extends`: a stage that takes another stage's recipe.
//!
//! `ticket_train: { extends: dense, inputs: { model: ticket } }` (in `.tlx`,
//! `stage ticket_train extends dense(model = ticket)`) is the stage `dense` with what
//! `ticket_train` writes itself put over it: the kind and plugin when it does not write them,
//! every parameter it does not write, and every input port it does not connect. The stage
//! extended may itself extend another. [`resolve`] writes every such stage out in full before
//! checking, so that a file using `extends` checks and lowers to exactly the IR of the file
//! written out; the syntax tree keeps `extends` as written, for `ticketlab fmt`.
//!
//! What a stage takes keeps the spans of the text it was written in (and records that stage in
//! [`ParamAst::inherited`] / [`InputAst::inherited`]), so a diagnostic about an inherited value
//! points at that text. `--set` overrides are applied to the stages as written, before
//! resolution: `--set dense.steps=100` changes `dense`, and so every stage that extends `dense`
//! without writing `steps` itself.
//!
//! Refused, at the `extends` value: a stage that is not in the file (with the closest name),
//! stages that extend each other in a cycle, and a kind written that differs from the kind of
//! the stage extended. A stage whose `extends` cannot be resolved keeps only what it writes
//! itself (with the rest recorded as gaps, so that nothing missing is reported again); without
//! a kind of its own it is left out, like a stage without `kind`.

use std::collections::{BTreeSet, HashMap};

use ticketlab_api::ir::StageKind;
use ticketlab_api::plugin::registry::suggestion;

use crate::ast::{Experiment, Gaps, StageAst};
use crate::diag::Diag;

/// How far resolving a stage got.
#[derive(Clone)]
enum State {
    /// On the chain being resolved (extending it again closes a cycle).
    Open,
    /// Resolved; `None` when its `extends` could not be resolved (already reported or a gap).
    Done(Option<Box<StageAst>>),
}

/// `ast` with every stage that `extends` another written out in full, and the problems found.
///
/// Resolved stages keep their `extends` (resolving again changes nothing); stages whose
/// `extends` fails lose it.
pub fn resolve(ast: &Experiment) -> (Experiment, Vec<Diag>) {
    if ast.stages.iter().all(|s| s.extends.is_none()) {
        return (ast.clone(), Vec::new());
    }
    let mut r = Resolver {
        ast,
        index: HashMap::new(),
        state: HashMap::new(),
        diags: Vec::new(),
        cycles: BTreeSet::new(),
        gaps: ast.gaps.clone(),
    };
    for (i, s) in ast.stages.iter().enumerate() {
        // The first of two stages with one name is the one referred to (the checker reports
        // the second).
        r.index.entry(s.name.node.as_str()).or_insert(i);
    }
    let mut out = ast.clone();
    let mut stages = Vec::new();
    for (i, s) in ast.stages.iter().enumerate() {
        if r.index.get(s.name.node.as_str()) != Some(&i) || s.extends.is_none() {
            stages.push(s.clone());
            continue;
        }
        match r.stage(i) {
            Some(resolved) => stages.push(resolved),
            None => {
                // What the stage takes is unknown: keep what it writes, quietly.
                let name = s.name.node.clone();
                let g = &mut out.gaps;
                if s.kind.is_none() {
                    g.unread_stages.insert(name);
                    continue;
                }
                if s.uses.is_none() {
                    g.uses.insert(name.clone());
                }
                g.params.insert(name.clone());
                g.inputs.insert(name);
                stages.push(StageAst { extends: None, ..s.clone() });
            }
        }
    }
    // What a stage took from one with gaps, it has gaps in too (see `Resolver::stage`).
    out.gaps.uses.extend(r.gaps.uses);
    out.gaps.params.extend(r.gaps.params);
    out.gaps.inputs.extend(r.gaps.inputs);
    out.stages = stages;
    (out, r.diags)
}

struct Resolver<'a> {
    ast: &'a Experiment,
    /// Stage index by name.
    index: HashMap<&'a str, usize>,
    state: HashMap<usize, State>,
    diags: Vec<Diag>,
    /// The cycles reported, as sorted stage indices.
    cycles: BTreeSet<Vec<usize>>,
    /// The file's gaps and those of stages taking from a stage with gaps.
    gaps: Gaps,
}

impl Resolver<'_> {
    /// Stage `i` written out in full; `None` when its `extends` cannot be resolved.
    ///
    /// Walks up the chain of stages extended to one resolved already or extending none, then
    /// back down, each stage over the one it extends (a loop, not recursion: a file's chain of
    /// stages can be as long as the file).
    fn stage(&mut self, i: usize) -> Option<StageAst> {
        let ast = self.ast;
        let mut chain: Vec<usize> = Vec::new();
        let mut at = i;
        // What the last stage of the chain extends, written out in full (`None`: unknown).
        let mut base = loop {
            if let Some(State::Done(s)) = self.state.get(&at) {
                break s.as_deref().cloned();
            }
            let s = &ast.stages[at];
            let Some(ext) = &s.extends else { break Some(s.clone()) };
            self.state.insert(at, State::Open);
            chain.push(at);
            let parent = ext.node.as_str();
            match self.index.get(parent) {
                None => {
                    if !ast.gaps.unread_stages.contains(parent) {
                        self.not_a_stage(s, parent);
                    }
                    break None;
                }
                Some(&p) if matches!(self.state.get(&p), Some(State::Open)) => {
                    self.cycle(p, at);
                    break None;
                }
                Some(&p) => at = p,
            }
        };
        while let Some(c) = chain.pop() {
            if let Some(b) = &base {
                self.inherit_gaps(c, b);
            }
            let resolved = base.as_ref().and_then(|b| self.over(c, b));
            self.state.insert(c, State::Done(resolved.clone().map(Box::new)));
            base = resolved;
        }
        base
    }

    /// Stage `i` takes from `base` (written out in full, so with its own ancestors' gaps
    /// already): what `base` could not read, `i` may lack as well.
    fn inherit_gaps(&mut self, i: usize, base: &StageAst) {
        let s = &self.ast.stages[i];
        let (name, from) = (&s.name.node, &base.name.node);
        let g = &mut self.gaps;
        if g.uses.contains(from) && s.uses.is_none() {
            g.uses.insert(name.clone());
        }
        if g.params.contains(from) {
            g.params.insert(name.clone());
        }
        if g.inputs.contains(from) {
            g.inputs.insert(name.clone());
        }
    }

    fn not_a_stage(&mut self, s: &StageAst, parent: &str) {
        let Some(ext) = &s.extends else { return };
        let mut names: Vec<&str> = self.index.keys().copied().collect();
        names.sort_unstable();
        self.diags.push(
            Diag::new(format!("stage `{}` extends `{parent}`, which is not a stage", s.name.node))
                .label(ext.span, "no such stage")
                .help(suggestion(parent, &names, "stages")),
        );
    }

    /// Stage `i` over `base`, the stage it extends written out in full; `None` when the kinds
    /// differ (reported).
    fn over(&mut self, i: usize, base: &StageAst) -> Option<StageAst> {
        let s = &self.ast.stages[i];
        let ext = s.extends.as_ref()?;
        let (name, parent) = (s.name.node.as_str(), ext.node.as_str());
        let parent_kind = base.kind.as_ref()?;
        if let Some(kind) = &s.kind
            && kind.node != parent_kind.node
            && StageKind::parse(&kind.node).is_some()
            && StageKind::parse(&parent_kind.node).is_some()
        {
            self.diags.push(
                Diag::new(format!(
                    "stage `{name}` is a `{}` stage but extends `{parent}`, a `{}` stage",
                    kind.node, parent_kind.node
                ))
                .label(ext.span, format!("a `{}` stage", parent_kind.node))
                .label(kind.span, "kind written here")
                .help(format!(
                    "a stage extends a stage of its own kind; remove `kind: {}` to take `{parent}`'s, or extend a `{}` stage",
                    kind.node, kind.node
                )),
            );
            return None;
        }
        Some(merge(s, base))
    }

    /// Reports the cycle that closes when stage `closing` extends `start` (on the open chain).
    fn cycle(&mut self, start: usize, closing: usize) {
        // Follow `extends` from `start` until `closing`: the stages of the cycle, in order.
        let ast = self.ast;
        let mut members = vec![start];
        let mut at = start;
        while at != closing && members.len() <= ast.stages.len() {
            let next =
                ast.stages[at].extends.as_ref().and_then(|e| self.index.get(e.node.as_str()));
            match next {
                Some(&n) => {
                    members.push(n);
                    at = n;
                }
                None => break,
            }
        }
        let mut key = members.clone();
        key.sort_unstable();
        key.dedup();
        if !self.cycles.insert(key) {
            return;
        }
        let mut path: Vec<&str> =
            members.iter().map(|&m| ast.stages[m].name.node.as_str()).collect();
        path.push(path[0]);
        let span = |m: usize| ast.stages[m].extends.as_ref().map(|e| e.span).unwrap_or_default();
        let mut d =
            Diag::new(format!("stages extend each other in a cycle: {}", path.join(" extends ")))
                .label(span(closing), "this `extends` closes the cycle");
        for &m in members.iter().filter(|&&m| m != closing) {
            d = d.label(span(m), "");
        }
        self.diags.push(d.help(
            "a stage can only extend a stage that does not extend it; write one of them out in full",
        ));
    }
}

/// `child` over `base` (itself written out in full): what the child writes, then what it does
/// not write taken from `base`.
fn merge(child: &StageAst, base: &StageAst) -> StageAst {
    let origin = |inherited: &Option<String>| {
        Some(inherited.clone().unwrap_or_else(|| base.name.node.clone()))
    };
    let mut with = child.with.clone();
    for p in &base.with {
        if !child.with.iter().any(|c| c.key.node == p.key.node) {
            with.push(crate::ast::ParamAst { inherited: origin(&p.inherited), ..p.clone() });
        }
    }
    let mut inputs = child.inputs.clone();
    for i in &base.inputs {
        if !child.inputs.iter().any(|c| c.port.node == i.port.node) {
            inputs.push(crate::ast::InputAst { inherited: origin(&i.inherited), ..i.clone() });
        }
    }
    StageAst {
        name: child.name.clone(),
        kind: child.kind.clone().or_else(|| base.kind.clone()),
        uses: child.uses.clone().or_else(|| base.uses.clone()),
        extends: child.extends.clone(),
        with,
        inputs,
        span: child.span,
    }
}
