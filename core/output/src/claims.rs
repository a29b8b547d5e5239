//! The experiment's claims judged on a run's summary: `claims.csv` and the report's claims
//! table.
//!
//! Judging reads only the summary and the IR, so it costs nothing: every run judges its
//! claims, and `ticketlab claims DIR` judges a finished run directory again.

use ticketlab_api::claims::{self, Claim, Fact, Facts, Judgement, Point, Schema, Verdict};
use ticketlab_api::ir::{ExperimentIr, StageKind};

use crate::summary::{Summary, SummaryRow, repeat_seed};

/// The arms of a run as the claims language asks for them.
struct RunFacts<'a> {
    summary: &'a Summary,
    seeds: Vec<u64>,
}

impl<'a> RunFacts<'a> {
    fn new(ir: &ExperimentIr, summary: &'a Summary) -> Self {
        let mut seeds: Vec<u64> = Vec::new();
        for stage in ir.stages.iter().filter(|s| s.kind == StageKind::Train) {
            let seed = repeat_seed(&stage.name).unwrap_or(ir.seed);
            if !seeds.contains(&seed) {
                seeds.push(seed);
            }
        }
        if seeds.is_empty() {
            seeds.push(ir.seed);
        }
        Self { summary, seeds }
    }

    fn arm(&self, stage: &str, point: &Point, seed: u64) -> Option<&'a SummaryRow> {
        self.summary.arms.iter().find(|a| a.stage == stage && a.seed == seed && &a.sweep == point)
    }
}

impl Facts for RunFacts<'_> {
    fn metric(&self, stage: &str, point: &Point, metric: &str, seed: u64) -> Fact {
        let Some(arm) = self.arm(stage, point, seed) else {
            return Fact::Missing(format!(
                "no finished arm of seed {seed} (it failed or did not run)"
            ));
        };
        let run = &arm.run;
        let threshold = |t: Option<u64>| t.map_or(Fact::Never, |t| Fact::Value(t as f64));
        let number = |x: Option<f64>| {
            x.map_or_else(|| Fact::Missing(format!("{metric} was not recorded")), Fact::Value)
        };
        match metric {
            "t_mem" => threshold(run.t_mem),
            "t_gen" => threshold(run.t_gen),
            "tau_grok" => run.tau_grok.map_or(Fact::Never, Fact::Value),
            "speedup_t_gen" => match (arm.speedup_t_gen, run.t_gen) {
                (Some(s), _) => Fact::Value(s),
                (None, None) => Fact::Never,
                (None, Some(_)) => Fact::Missing(match &arm.baseline {
                    Some(b) => format!("its baseline `{b}` never generalised"),
                    None => "it has no baseline".into(),
                }),
            },
            "final_train_acc" => number(run.final_train_acc),
            "final_test_acc" => number(run.final_test_acc),
            "final_train_loss" => Fact::Value(run.final_train_loss),
            "final_test_loss" => Fact::Value(run.final_test_loss),
            "l1" => Fact::Value(run.l1),
            "l2" => Fact::Value(run.l2),
            "density" => Fact::Value(run.density),
            "steps" => Fact::Value(run.steps as f64),
            other => Fact::Missing(format!("a train stage has no metric `{other}`")),
        }
    }

    fn seeds(&self) -> Vec<u64> {
        self.seeds.clone()
    }
}

/// Every claim of `ir` judged on `summary`, in file order.
///
/// A claim that no longer checks against the run's own stages (a run directory edited by
/// hand) is undecided, with the reason.
pub fn judge(ir: &ExperimentIr, summary: &Summary) -> Vec<Judgement> {
    let schema = Schema::of(ir);
    let facts = RunFacts::new(ir, summary);
    ir.claims
        .iter()
        .map(|c| match Claim::new(&c.name, &c.holds, c.seeds, &schema) {
            Ok(claim) => claims::judge(&claim, &facts),
            Err(errors) => Judgement {
                claim: c.name.clone(),
                rule: c.seeds,
                per_seed: Vec::new(),
                median: None,
                overall: Verdict::Undecided,
                explanation: format!(
                    "the claim does not check against this run's stages: {}",
                    errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")
                ),
            },
        })
        .collect()
}

/// The text of `claims.csv`: every reference of every seed's evaluation, then each claim's
/// verdict under its rule (seed `overall`).
pub fn to_csv(judgements: &[Judgement]) -> ticketlab_api::Result<String> {
    let header: Vec<String> = claims::ClaimRow::HEADER.map(String::from).to_vec();
    let rows =
        judgements.iter().flat_map(Judgement::rows).map(|r| r.fields().map(String::from).to_vec());
    crate::summary::write_csv(crate::names::CLAIMS_CSV, &header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::NUMBER_COLUMNS;
    use ticketlab_api::claims::SUMMARY_METRICS;
    use ticketlab_api::metrics::RunSummary;

    fn arm(name: &str, t_gen: Option<u64>, speedup: Option<f64>) -> SummaryRow {
        SummaryRow {
            arm: name.into(),
            stage: name.into(),
            seed: 0,
            sweep: Default::default(),
            pruner: None,
            run: RunSummary {
                steps: 100,
                threshold: 0.95,
                t_mem: Some(10),
                t_gen,
                tau_grok: t_gen.map(|t| t as f64 / 10.0),
                final_train_acc: Some(1.0),
                final_test_acc: Some(0.5),
                final_train_loss: 0.1,
                final_test_loss: 0.2,
                density: 1.0,
                l1: 3.0,
                l2: 4.0,
                stopped: None,
            },
            mask_rate: None,
            speedup_t_gen: speedup,
            baseline: Some("dense".into()),
        }
    }

    #[test]
    fn every_summary_metric_a_claim_names_is_a_column_of_summary_csv_and_answered() {
        let summary = Summary {
            experiment: "e".into(),
            baseline: Some("dense".into()),
            arms: vec![
                arm("dense", None, None),
                arm("ticket", Some(40), None),
                arm("late", None, None),
            ],
        };
        let facts = RunFacts { summary: &summary, seeds: vec![0] };
        let point = Point::new();
        for metric in SUMMARY_METRICS {
            assert!(NUMBER_COLUMNS.contains(&metric), "{metric} is not in summary.csv");
            let fact = facts.metric("ticket", &point, metric, 0);
            assert!(!matches!(&fact, Fact::Missing(why) if why.contains("no metric")), "{metric}");
        }
        assert_eq!(facts.metric("ticket", &point, "t_gen", 0), Fact::Value(40.0));
        assert_eq!(facts.metric("dense", &point, "t_gen", 0), Fact::Never);
        // A speed-up is never when the arm never generalised, missing when its baseline never did.
        assert_eq!(facts.metric("late", &point, "speedup_t_gen", 0), Fact::Never);
        let Fact::Missing(why) = facts.metric("ticket", &point, "speedup_t_gen", 0) else {
            panic!()
        };
        assert!(why.contains("baseline `dense` never generalised"), "{why}");
        let Fact::Missing(why) = facts.metric("ticket", &point, "t_gen", 1) else { panic!() };
        assert!(why.contains("seed 1"), "{why}");
    }
}
