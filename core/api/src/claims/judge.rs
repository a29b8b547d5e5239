//! The verdict over seeds, and the rows of `claims.csv`.

use serde::{Deserialize, Serialize};

use super::Claim;
use super::eval::{Evaluation, Verdict, evaluate, run};
use super::facts::{Fact, Facts, Point};

/// How the per-seed verdicts make the claim's verdict (`seeds:` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedRule {
    /// Holds on every seed (the default). Fails when some seed fails; otherwise undecided when
    /// some seed is undecided.
    #[default]
    All,
    /// Holds on more than half of the seeds. Fails when it cannot, even if every undecided
    /// seed held; otherwise undecided.
    Majority,
    /// Evaluated once, each reference taking the median of its values over the seeds.
    Median,
}

impl SeedRule {
    /// The rule as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            SeedRule::All => "all",
            SeedRule::Majority => "majority",
            SeedRule::Median => "median",
        }
    }
}

/// A claim judged over the seeds of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The claim's name.
    pub claim: String,
    /// The rule applied.
    pub rule: SeedRule,
    /// The claim on each seed, in [`Facts::seeds`] order (computed for every rule, so reports
    /// can show them).
    pub per_seed: Vec<Evaluation>,
    /// The claim on the per-reference medians ([`SeedRule::Median`] only).
    pub median: Option<Evaluation>,
    /// The verdict under the rule.
    pub overall: Verdict,
    /// One sentence for reports: how the rule reached the verdict, the reasons when
    /// undecided, and the references that were `never`.
    pub explanation: String,
}

/// Judges `claim` on every seed of `facts` under the claim's [`SeedRule`].
pub fn judge(claim: &Claim, facts: &dyn Facts) -> Judgement {
    let seeds = facts.seeds();
    let per_seed: Vec<Evaluation> = seeds.iter().map(|s| evaluate(claim, facts, *s)).collect();
    let n = per_seed.len();
    let with = |v: Verdict| per_seed.iter().filter(move |e| e.verdict == v);
    let list = |v: Verdict| {
        let s: Vec<String> = with(v).filter_map(|e| e.seed).map(|s| s.to_string()).collect();
        s.join(", ")
    };
    let (holds, fails) = (with(Verdict::Holds).count(), with(Verdict::Fails).count());
    let undecided = n - holds - fails;
    let first_reasons =
        with(Verdict::Undecided).next().map(|e| e.reasons().join("; ")).unwrap_or_default();
    let mut median = None;
    let (overall, mut explanation) = if n == 0 {
        (Verdict::Undecided, "no seeds to judge on".to_string())
    } else {
        match claim.seeds {
            SeedRule::All if fails > 0 => (
                Verdict::Fails,
                format!("fails on seed {} ({fails} of {n} seeds)", list(Verdict::Fails)),
            ),
            SeedRule::All if undecided > 0 => (
                Verdict::Undecided,
                format!("undecided on seed {}: {first_reasons}", list(Verdict::Undecided)),
            ),
            SeedRule::All => (Verdict::Holds, format!("holds on all {n} seeds")),
            SeedRule::Majority if 2 * holds > n => {
                (Verdict::Holds, format!("holds on {holds} of {n} seeds, more than half"))
            }
            SeedRule::Majority if 2 * (holds + undecided) <= n => {
                (Verdict::Fails, format!("holds on {holds} of {n} seeds, not more than half"))
            }
            SeedRule::Majority => (
                Verdict::Undecided,
                format!(
                    "holds on {holds} of {n} seeds; a majority depends on the {undecided} \
                     undecided (seed {}): {first_reasons}",
                    list(Verdict::Undecided)
                ),
            ),
            SeedRule::Median => {
                let m = run(claim, None, &|stage, point, metric| {
                    median_fact(facts, &seeds, stage, point, metric)
                });
                let text = format!("on the medians over {n} seeds: {m}");
                median = Some(m);
                (median.as_ref().map_or(Verdict::Undecided, |m| m.verdict), text)
            }
        }
    };
    if claim.seeds != SeedRule::Median {
        // Each reference once, with the seeds it was never on, in order of first appearance:
        // a sweep's never-generalising arms would otherwise repeat once per seed.
        let mut never: Vec<(&str, Vec<u64>)> = Vec::new();
        for e in &per_seed {
            for r in &e.never {
                let seed = e.seed.unwrap_or(0);
                match never.iter_mut().find(|(known, _)| known == r) {
                    Some((_, seeds)) => seeds.push(seed),
                    None => never.push((r, vec![seed])),
                }
            }
        }
        if !never.is_empty() {
            let said: Vec<String> = never
                .iter()
                .map(|(r, on)| match on.len() {
                    1 => format!("{r} (seed {})", on[0]),
                    k if k == n && n > 1 => format!("{r} (every seed)"),
                    _ => {
                        let on: Vec<String> = on.iter().map(u64::to_string).collect();
                        format!("{r} (seeds {})", on.join(", "))
                    }
                })
                .collect();
            explanation.push_str(&format!("; never: {}", said.join(", ")));
        }
    }
    Judgement {
        claim: claim.name.clone(),
        rule: claim.seeds,
        per_seed,
        median,
        overall,
        explanation,
    }
}

/// The median over `seeds` of one reference: values sorted with never above every number; the
/// middle one, or for an even count the mean of the two middle ones (never when either is).
/// Missing on any seed, or not finite on any seed, makes the median missing.
pub fn median_fact(
    facts: &dyn Facts,
    seeds: &[u64],
    stage: &str,
    point: &Point,
    metric: &str,
) -> Fact {
    let mut xs = Vec::with_capacity(seeds.len());
    for s in seeds {
        match facts.metric(stage, point, metric, *s) {
            Fact::Value(x) if x.is_finite() => xs.push(x),
            Fact::Value(x) => {
                return Fact::Missing(format!("{x} on seed {s}, not a finite number"));
            }
            Fact::Never => xs.push(f64::INFINITY),
            Fact::Missing(reason) => return Fact::Missing(format!("on seed {s}: {reason}")),
        }
    }
    if xs.is_empty() {
        return Fact::Missing("no seeds".into());
    }
    xs.sort_by(f64::total_cmp);
    let k = xs.len() / 2;
    let m = if xs.len() % 2 == 1 { xs[k] } else { (xs[k - 1] + xs[k]) / 2.0 };
    if m.is_finite() { Fact::Value(m) } else { Fact::Never }
}

/// One row of `claims.csv`: one reference of one evaluation (or, with an empty reference, the
/// overall verdict or a claim that references nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimRow {
    /// The claim's name.
    pub claim: String,
    /// The seed, `median` for the evaluation on medians, or `overall` for the verdict under
    /// the rule.
    pub seed: String,
    /// The reference (`stage[axis=value].metric`).
    pub reference: String,
    /// Its value: a number, `never`, or `missing: REASON`.
    pub value: String,
    /// The verdict of that evaluation (`holds`, `fails`, `undecided`).
    pub verdict: String,
}

impl ClaimRow {
    /// The column names, in field order.
    pub const HEADER: [&'static str; 5] = ["claim", "seed", "reference", "value", "verdict"];

    /// The fields, in [`ClaimRow::HEADER`] order.
    pub fn fields(&self) -> [&str; 5] {
        [&self.claim, &self.seed, &self.reference, &self.value, &self.verdict]
    }
}

impl Judgement {
    /// The judgement as `claims.csv` rows: every reference of every seed's evaluation, then
    /// those of the median evaluation, then the overall verdict (seed `overall`, value the
    /// rule's name).
    pub fn rows(&self) -> Vec<ClaimRow> {
        let mut rows = Vec::new();
        let evals = self.per_seed.iter().chain(&self.median);
        for e in evals {
            let seed = e.seed.map_or("median".to_string(), |s| s.to_string());
            let row = |reference: String, value: String| ClaimRow {
                claim: self.claim.clone(),
                seed: seed.clone(),
                reference,
                value,
                verdict: e.verdict.to_string(),
            };
            if e.references.is_empty() {
                rows.push(row(String::new(), String::new()));
            }
            for o in &e.references {
                rows.push(row(o.reference.clone(), o.fact.to_string()));
            }
        }
        rows.push(ClaimRow {
            claim: self.claim.clone(),
            seed: "overall".into(),
            reference: String::new(),
            value: self.rule.name().into(),
            verdict: self.overall.to_string(),
        });
        rows
    }
}
