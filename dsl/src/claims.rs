//! Claims: the file's `claims:` checked against the expanded experiment and lowered to the IR.
//!
//! A claim's condition is checked with the claims language of [`ticketlab_api::claims`]
//! against the stages and sweep axes of the expanded experiment, so a claim can name exactly
//! the arms a run will have. Each problem points into the `holds` text of the file.

use std::collections::HashMap;

use ticketlab_api::claims::{Claim, ClaimError, Schema, SeedRule};
use ticketlab_api::ir::{ClaimIr, ExperimentIr};
use ticketlab_api::plugin::registry::suggestion;

use crate::ast::{ClaimAst, Span, is_ident};
use crate::diag::Diag;

/// The seed rules as written.
const SEED_RULES: [(&str, SeedRule); 3] =
    [("all", SeedRule::All), ("majority", SeedRule::Majority), ("median", SeedRule::Median)];

/// The claims of the file as IR, checked against `ir`; `text` is the file's text (to place
/// the problems found inside a `holds` string).
pub fn lower(
    claims: &[ClaimAst],
    ir: &ExperimentIr,
    text: &str,
) -> Result<Vec<ClaimIr>, Vec<Diag>> {
    let schema = Schema::of(ir);
    let mut diags = Vec::new();
    let mut first: HashMap<&str, Span> = HashMap::new();
    let mut out = Vec::new();
    for c in claims {
        let name = c.name.node.as_str();
        if !is_ident(name) {
            diags.push(
                Diag::new(format!("claim name `{name}` is not a valid name"))
                    .label(c.name.span, "invalid name")
                    .help(
                        "use letters, digits and `_`, starting with a letter, e.g. `ticket_sooner`",
                    ),
            );
        }
        if let Some(prev) = first.insert(name, c.name.span) {
            diags.push(
                Diag::new(format!("claim `{name}` is stated twice"))
                    .label(c.name.span, "stated again here")
                    .label(prev, "first stated here")
                    .help("claim names must be unique; rename one of them"),
            );
        }
        let seeds = match &c.seeds {
            None => SeedRule::All,
            Some(s) => match SEED_RULES.iter().find(|(w, _)| *w == s.node) {
                Some((_, rule)) => *rule,
                None => {
                    let words = SEED_RULES.map(|(w, _)| w);
                    diags.push(
                        Diag::new(format!("unknown seed rule `{}` in claim `{name}`", s.node))
                            .label(s.span, "not a seed rule")
                            .help(suggestion(&s.node, &words, "seed rules")),
                    );
                    continue;
                }
            },
        };
        match Claim::new(name, &c.holds.node, seeds, &schema) {
            Ok(_) => out.push(ClaimIr {
                name: name.to_string(),
                text: c.text.as_ref().map(|t| t.node.clone()).unwrap_or_default(),
                holds: c.holds.node.clone(),
                seeds,
            }),
            Err(errors) => {
                let at = content_start(&c.holds.node, c.holds.span, text);
                diags.extend(errors.into_iter().map(|e| located(e, name, at, c.holds.span)));
            }
        }
    }
    if diags.is_empty() { Ok(out) } else { Err(diags) }
}

/// Where the characters of `holds` start in the file: at its span when written plain, one
/// byte in when quoted; `None` when escapes or folding make the text differ from the file's.
fn content_start(holds: &str, span: Span, text: &str) -> Option<usize> {
    let written = text.get(span.start..span.end)?;
    if written.starts_with(holds) {
        return Some(span.start);
    }
    let quoted = written.strip_prefix(['"', '\'']).is_some_and(|rest| rest.starts_with(holds));
    quoted.then_some(span.start + 1)
}

/// The claims language's error as a diagnostic of the file: at the offending text of the
/// condition when it can be placed, else at the whole `holds` value.
fn located(e: ClaimError, claim: &str, at: Option<usize>, holds: Span) -> Diag {
    let span = match at {
        Some(at) => Span::new(at + e.span.start, at + e.span.end),
        None => holds,
    };
    let d = Diag::new(format!("claim `{claim}`: {}", e.message)).label(span, "here");
    match e.help {
        Some(help) => d.help(help),
        None => d.help("see the README's \"Claims\" section for the language"),
    }
}
