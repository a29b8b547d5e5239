//! Seed rules, medians, `claims.csv` rows and the YAML form of a claim.

use std::collections::BTreeMap;

use super::{Table, schema, ticket, v};
use crate::claims::{
    Claim, ClaimRow, ClaimSpec, Fact, Point, SeedRule, Verdict, judge, median_fact,
};

const SOONER: &str = "ticket_train[mask.rate=0.6].t_gen <= 0.2 * dense.t_gen";

/// Three seeds of the k = 0.6 ticket against a dense model generalising at 10000 steps on
/// each: the ticket's t_gen per seed (at most 2000 holds).
fn runs(ticket_t_gen: &[Fact]) -> Table {
    let seeds: Vec<u64> = (0..ticket_t_gen.len() as u64).collect();
    let mut t = Table::new(&seeds).all("dense.t_gen", v(10000.0));
    for (s, f) in ticket_t_gen.iter().enumerate() {
        t = t.on(&ticket("0.6", "t_gen"), s as u64, f.clone());
    }
    t
}

fn verdict(rule: SeedRule, facts: &Table) -> Verdict {
    let claim = Claim::new("sooner", SOONER, rule, &schema()).unwrap();
    judge(&claim, facts).overall
}

fn missing() -> Fact {
    Fact::Missing("arm failed: out of memory".into())
}

#[test]
fn all_and_majority() {
    use Verdict::{Fails as F, Holds as H, Undecided as U};
    let (hold, fail) = (v(1500.0), v(3000.0));
    // (seeds' t_gen, verdict under all, under majority)
    let cases = [
        (vec![hold.clone(), hold.clone(), hold.clone()], H, H),
        (vec![hold.clone(), fail.clone(), hold.clone()], F, H),
        (vec![hold.clone(), fail.clone(), fail.clone()], F, F),
        (vec![hold.clone(), fail.clone(), missing()], F, U),
        (vec![hold.clone(), hold.clone(), missing()], U, H),
        (vec![fail.clone(), missing(), missing()], F, U),
        (vec![fail.clone(), fail.clone(), missing()], F, F),
        (vec![hold.clone(), fail.clone()], F, F),
        (vec![Fact::Never, hold.clone(), hold.clone()], F, H),
    ];
    for (facts, all, majority) in cases {
        let t = runs(&facts);
        assert_eq!(verdict(SeedRule::All, &t), all, "all over {facts:?}");
        assert_eq!(verdict(SeedRule::Majority, &t), majority, "majority over {facts:?}");
    }
}

#[test]
fn explanations_name_seeds_reasons_and_nevers() {
    let t = runs(&[v(1500.0), Fact::Never, missing()]);
    let j = judge(&Claim::new("sooner", SOONER, SeedRule::All, &schema()).unwrap(), &t);
    assert_eq!(
        j.explanation,
        "fails on seed 1 (1 of 3 seeds); never: ticket_train[mask.rate=0.6].t_gen (seed 1)"
    );
    // A reference never on several seeds is named once, with its seeds.
    let t = runs(&[Fact::Never, v(1500.0), Fact::Never]);
    let j = judge(&Claim::new("sooner", SOONER, SeedRule::All, &schema()).unwrap(), &t);
    assert_eq!(
        j.explanation,
        "fails on seed 0, 2 (2 of 3 seeds); never: ticket_train[mask.rate=0.6].t_gen (seeds 0, 2)"
    );
    let t = runs(&[Fact::Never, Fact::Never, Fact::Never]);
    let j = judge(&Claim::new("sooner", SOONER, SeedRule::All, &schema()).unwrap(), &t);
    assert!(
        j.explanation.ends_with("; never: ticket_train[mask.rate=0.6].t_gen (every seed)"),
        "{}",
        j.explanation
    );
    let t = runs(&[v(1500.0), v(1500.0), missing()]);
    let j = judge(&Claim::new("sooner", SOONER, SeedRule::All, &schema()).unwrap(), &t);
    assert_eq!(
        j.explanation,
        "undecided on seed 2: `ticket_train[mask.rate=0.6].t_gen` is missing: arm failed: out of memory"
    );
    let j = judge(&Claim::new("sooner", SOONER, SeedRule::Majority, &schema()).unwrap(), &t);
    assert_eq!(j.explanation, "holds on 2 of 3 seeds, more than half");
    assert_eq!(j.per_seed.len(), 3);
    assert!(j.median.is_none());
}

#[test]
fn median_takes_each_references_median_over_seeds() {
    use Verdict::{Fails as F, Holds as H, Undecided as U};
    let cases = [
        // Odd: the middle value (never ranks last).
        (vec![v(1500.0), v(2500.0), Fact::Never], F, "2500"),
        (vec![v(1500.0), v(1800.0), Fact::Never], H, "1800"),
        (vec![v(1500.0), Fact::Never, Fact::Never], F, "never"),
        // Even: the mean of the two middle values; never when one of them is.
        (vec![v(1000.0), v(2000.0), v(2000.0), Fact::Never], H, "2000"),
        (vec![v(1000.0), v(2000.0), v(3000.0), Fact::Never], F, "2500"),
        (vec![v(1000.0), v(2000.0), Fact::Never, Fact::Never], F, "never"),
        // Missing or not finite on any seed: missing.
        (vec![v(1000.0), v(1000.0), missing()], U, "missing: on seed 2: arm failed: out of memory"),
        (vec![v(1000.0), v(f64::NAN), v(1000.0)], U, "missing: NaN on seed 1, not a finite number"),
    ];
    for (facts, want, ticket_median) in cases {
        let claim = Claim::new("sooner", SOONER, SeedRule::Median, &schema()).unwrap();
        let j = judge(&claim, &runs(&facts));
        assert_eq!(j.overall, want, "{facts:?}: {}", j.explanation);
        let m = j.median.as_ref().expect("a median evaluation");
        assert_eq!(m.seed, None);
        assert_eq!(m.references[0].fact.to_string(), ticket_median, "{facts:?}");
        assert_eq!(m.references[1].fact, v(10000.0));
        assert!(j.explanation.starts_with(&format!("on the medians over {} seeds: ", facts.len())));
    }
    let t = runs(&[v(1.0), v(2.0)]);
    let point = Point::from([("mask.rate".to_string(), serde_json::json!(0.6))]);
    assert_eq!(median_fact(&t, &[0, 1], "ticket_train", &point, "t_gen"), v(1.5));
    assert_eq!(
        median_fact(&t, &[], "ticket_train", &point, "t_gen"),
        Fact::Missing("no seeds".into())
    );
}

#[test]
fn no_seeds_is_undecided() {
    for rule in [SeedRule::All, SeedRule::Majority, SeedRule::Median] {
        let j = judge(&Claim::new("sooner", SOONER, rule, &schema()).unwrap(), &runs(&[]));
        assert_eq!(
            (j.overall, j.explanation.as_str()),
            (Verdict::Undecided, "no seeds to judge on")
        );
    }
}

#[test]
fn csv_rows() {
    let claim = Claim::new("sooner", SOONER, SeedRule::Median, &schema()).unwrap();
    let j = judge(&claim, &runs(&[v(1500.0), Fact::Never]));
    let rows: Vec<[String; 5]> = j.rows().iter().map(|r| r.fields().map(str::to_string)).collect();
    let row = |seed: &str, reference: &str, value: &str, verdict: &str| {
        ["sooner", seed, reference, value, verdict].map(str::to_string)
    };
    assert_eq!(ClaimRow::HEADER, ["claim", "seed", "reference", "value", "verdict"]);
    assert_eq!(
        rows,
        [
            row("0", "ticket_train[mask.rate=0.6].t_gen", "1500", "holds"),
            row("0", "dense.t_gen", "10000", "holds"),
            row("1", "ticket_train[mask.rate=0.6].t_gen", "never", "fails"),
            row("1", "dense.t_gen", "10000", "fails"),
            row("median", "ticket_train[mask.rate=0.6].t_gen", "never", "fails"),
            row("median", "dense.t_gen", "10000", "fails"),
            row("overall", "", "median", "fails"),
        ]
    );
}

#[test]
fn claims_read_from_yaml() {
    // A plain YAML scalar cannot hold `: `, so an aggregation is quoted, folded (`>-`) or
    // written without the space (`mask.rate:ticket_train.t_gen`).
    let yaml = r#"
ticket_sooner:
  text: The k = 0.6 ticket generalises in at most a fifth of the dense model's steps
  holds: ticket_train[mask.rate=0.6].t_gen <= 0.2 * dense.t_gen
rate_window:
  holds: >-
    argmin(mask.rate: ticket_train.t_gen) >= 0.5
    and argmin(mask.rate: ticket_train.t_gen) <= 0.8
  seeds: majority
quoted:
  holds: "count(mask.rate: ticket_train.t_gen == never) <= 1"
  seeds: median
unspaced:
  holds: all(mask.rate:ticket_train.t_mem >= dense.t_mem)
"#;
    let specs: BTreeMap<String, ClaimSpec> = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(specs["ticket_sooner"].seeds, SeedRule::All);
    assert_eq!(specs["rate_window"].seeds, SeedRule::Majority);
    assert_eq!(specs["quoted"].seeds, SeedRule::Median);
    assert!(specs["ticket_sooner"].text.as_deref().unwrap().starts_with("The k = 0.6"));
    for (name, spec) in &specs {
        let claim = Claim::from_spec(name, spec, &schema()).unwrap();
        assert_eq!(&claim.name, name);
    }
    let bad: Result<ClaimSpec, _> = serde_yaml::from_str("holds: a.x < 1\nseeds: mean\n");
    assert!(bad.unwrap_err().to_string().contains("unknown variant `mean`"));
    let bad: Result<ClaimSpec, _> = serde_yaml::from_str("holds: a.x < 1\nhold: 2\n");
    assert!(bad.is_err());
}
