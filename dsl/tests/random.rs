//! Random search: a sweep's `random` block (both forms, kept by fmt) and `--random` draw the
//! same points deterministically in the seed; they become zip rows crossed with the grid, and
//! every problem is refused where it is written.

use crate::common::{load_text, read, registry};

use ticketlab_api::ir::ExperimentIr;
use ticketlab_dsl::diag::line_col;
use ticketlab_dsl::{CliOverrides, Format, format};

/// The quickstart (YAML) with `sweep` appended.
fn quickstart_with(sweep: &str) -> String {
    let text = String::from_utf8(read("experiments/quickstart.yaml")).unwrap();
    format!("{text}sweep:\n{sweep}")
}

const RANDOM: &str = "  grid: { mask.rate: [0.4, 0.6] }
  random:
    samples: 3
    seed: 7
    over: { dense.lr: \"loguniform(1e-3, 1e-2)\", init.width: \"int(16, 64)\" }
";

/// The drawn `(dense.lr, init.width)` of every dense copy, in stage order.
fn points(ir: &ExperimentIr) -> Vec<(f64, i64)> {
    ir.stages
        .iter()
        .filter(|s| s.name.starts_with("dense["))
        .map(|s| (s.sweep["dense.lr"].as_f64().unwrap(), s.sweep["init.width"].as_i64().unwrap()))
        .collect()
}

fn with_flags(text: &str, cli: CliOverrides) -> Result<ExperimentIr, ticketlab_dsl::Diagnostics> {
    ticketlab_dsl::load_source_with("q.yaml", text.as_bytes(), &registry(), &cli)
}

#[test]
fn both_forms_draw_the_same_points_and_fmt_keeps_the_block() {
    let yaml = quickstart_with(RANDOM);
    let tlx = format("q.yaml", yaml.as_bytes(), Format::Tlx).unwrap();
    assert!(
        tlx.contains("sweep random { samples = 3, seed = 7, dense.lr = \"loguniform(1e-3, 1e-2)\", init.width = \"int(16, 64)\" }"),
        "{tlx}"
    );
    let back = format("q.tlx", tlx.as_bytes(), Format::Yaml).unwrap();
    assert!(back.contains("  random:\n    samples: 3\n    seed: 7\n"), "{back}");
    let from_yaml = load_text("q.yaml", &yaml).unwrap_or_else(|d| panic!("{}", d.render()));
    let from_tlx = load_text("q.tlx", &tlx).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(from_yaml, from_tlx);
    // Three points: the dense model depends on the drawn values only, the ticket on the rate too.
    let drawn = points(&from_yaml);
    assert_eq!(drawn.len(), 3, "{drawn:?}");
    for (lr, width) in &drawn {
        assert!((1e-3..=1e-2).contains(lr) && (16..=64).contains(width), "{lr} {width}");
    }
    let tickets = from_yaml.stages.iter().filter(|s| s.name.starts_with("ticket_train[")).count();
    assert_eq!(tickets, 6, "each random point crossed with the grid's two rates");

    // The same seed draws the same points, another seed others; the flags draw as the file does.
    assert_eq!(points(&load_text("q.yaml", &yaml).unwrap()), drawn);
    let reseeded = yaml.replace("seed: 7", "seed: 8");
    assert_ne!(points(&load_text("q.yaml", &reseeded).unwrap()), drawn);
    let plain = quickstart_with("  grid: { mask.rate: [0.4, 0.6] }\n");
    let cli = CliOverrides {
        random: vec!["dense.lr=loguniform(1e-3, 1e-2)".into(), "init.width=int(16, 64)".into()],
        samples: Some(3),
        sample_seed: Some(7),
        ..CliOverrides::default()
    };
    assert_eq!(points(&with_flags(&plain, cli).unwrap()), drawn);
}

/// The one problem found, as `line:column: message`.
fn refused(text: &str, cli: CliOverrides) -> String {
    let Err(d) = with_flags(text, cli) else { panic!("accepted:\n{text}") };
    let items = d.items();
    let first = &items[0];
    let (l, c) = first.labels.first().map_or((0, 0), |(span, _)| line_col(text, span.start));
    format!("{l}:{c}: {}", first.message)
}

#[test]
fn bad_random_searches_are_refused_where_written() {
    let none = CliOverrides::default;
    let text = quickstart_with("  random: { samples: 2, over: { dense.lr: \"normal(0, 1)\" } }\n");
    let at = line_col(&text, text.find("\"normal").unwrap());
    let said = refused(&text, none());
    assert!(said.starts_with(&format!("{}:{}: random parameter `dense.lr`", at.0, at.1)), "{said}");
    assert!(said.contains("`normal` is not a distribution"), "{said}");

    let text = quickstart_with("  random: { over: { dense.lr: \"uniform(0.001, 0.01)\" } }\n");
    assert!(refused(&text, none()).contains("`random` needs `samples`"));

    let text = quickstart_with(
        "  zip: { mask.rate: [0.4, 0.6] }\n  random: { samples: 2, over: { dense.lr: \"uniform(0.001, 0.01)\" } }\n",
    );
    assert!(refused(&text, none()).contains("`random` and `zip` cannot be combined"));

    let text = quickstart_with("  random: { samples: 2, sed: 1, over: {} }\n");
    assert!(refused(&text, none()).contains("unknown key `sed` in `sweep.random`"));

    // A drawn value the parameter refuses is named at the distribution.
    let text =
        quickstart_with("  random: { samples: 2, over: { mask.rate: \"uniform(1.5, 2)\" } }\n");
    let said = refused(&text, none());
    let at = line_col(&text, text.find("\"uniform(1.5").unwrap());
    assert!(said.starts_with(&format!("{}:{}:", at.0, at.1)), "{said}");

    let plain = quickstart_with("  seeds: 1\n");
    let cli = CliOverrides { samples: Some(4), ..CliOverrides::default() };
    assert!(refused(&plain, cli).contains("go with random parameters"));
}
