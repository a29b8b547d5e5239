//! The run directory people read: its files, the report, the figures and `ticketlab report`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use ticketlab_output::figures::arm_colour_hex;
use ticketlab_testing::round_floats;

use crate::cli::{root, stderr, stdout, ticketlab, tiny, with};

/// The tiny quickstart run once for every test here: (temporary working directory, run dir).
fn quickstart_run() -> &'static (tempfile::TempDir, PathBuf) {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let cwd = tempfile::tempdir().unwrap();
        let file = root().join("experiments/quickstart.yaml");
        let set = tiny();
        let out = ticketlab(
            &with(&["run", file.to_str().unwrap(), "--out", "run", "--threads", "1"], &set),
            cwd.path(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let dir = cwd.path().join("run");
        (cwd, dir)
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Insta settings that replace what changes from run to run in report.md (wall times, dates,
/// cache keys, versions, paths) with placeholders.
fn report_filters() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, with) in [
        (r"\| \d+\.\d \| `[0-9a-f]{12}` \|", "| [seconds] | [key] |"),
        (r"written \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "written [date]"),
        (r"ticketlab \d+\.\d+\.\d+,", "ticketlab [version],"),
        (r"@\d+\.\d+\.\d+", "@[version]"),
        (r"/\S*/experiments/", "[root]/experiments/"),
    ] {
        settings.add_filter(pattern, with);
    }
    settings
}

#[test]
fn the_run_directory_has_every_file() {
    let (_, dir) = quickstart_run();
    for name in [
        "experiment.resolved.json",
        "experiment.resolved.yaml",
        "manifest.json",
        "metrics.jsonl",
        "metrics.csv",
        "summary.csv",
        "summary.json",
        "masks.json",
        "analyses/compare.json",
        "figures/index.json",
        "report.md",
        "report.html",
    ] {
        assert!(dir.join(name).is_file(), "{name} is missing");
    }
    let metrics = read(&dir.join("metrics.jsonl"));
    let arms: Vec<String> = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["arm"].as_str().unwrap().to_string())
        .collect();
    assert!(
        arms.iter().any(|a| a == "dense") && arms.iter().any(|a| a == "ticket_train"),
        "{arms:?}"
    );
    let csv = read(&dir.join("summary.csv"));
    assert_eq!(csv.lines().count(), 3, "a header and one row per arm: {csv}");
    assert!(
        csv.starts_with("arm,stage,seed,pruner,steps,threshold,t_mem,t_gen,tau_grok,"),
        "{csv}"
    );
    let manifest: Value = serde_json::from_str(&read(&dir.join("manifest.json"))).unwrap();
    assert_eq!(manifest["threads"], 1);
    assert_eq!(manifest["stages"].as_array().unwrap().len(), 7);
    assert!(
        manifest["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["key"].as_str().is_some_and(|k| k.len() == 64))
    );
}

#[test]
fn summary_json_of_the_quickstart() {
    let (_, dir) = quickstart_run();
    let mut summary: Value = serde_json::from_str(&read(&dir.join("summary.json"))).unwrap();
    round_floats(&mut summary);
    insta::assert_json_snapshot!(summary);
}

#[test]
fn report_md_of_the_quickstart() {
    let (_, dir) = quickstart_run();
    let report = read(&dir.join("report.md"));
    report_filters().bind(|| insta::assert_snapshot!(report));
}

#[test]
fn every_svg_parses_and_draws_each_arm() {
    let (_, dir) = quickstart_run();
    let index: Value = serde_json::from_str(&read(&dir.join("figures/index.json"))).unwrap();
    let files: Vec<&str> =
        index["figures"].as_array().unwrap().iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["accuracy.svg", "loss.svg", "norms.svg", "masks.svg"]);
    for file in &files {
        let svg = read(&dir.join("figures").join(file));
        let doc =
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{file} is not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{file}");
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        if *file == "masks.svg" {
            for layer in ["embed.W_E", "inproj.W", "outproj.W", "unembed.W_U"] {
                assert!(texts.contains(&layer), "{file} labels layer {layer}: {texts:?}");
            }
            let bars = doc
                .descendants()
                .filter(|n| {
                    n.has_tag_name("rect")
                        && n.attribute("fill") == Some(arm_colour_hex(0).as_str())
                })
                .count();
            assert!(bars >= 4, "{file}: one bar per layer, found {bars}");
            continue;
        }
        // Legends show display names: the stage without `_train`, its pruner and rate.
        for (i, arm) in ["dense", "ticket (magnitude, k = 0.6)"].iter().enumerate() {
            assert!(texts.contains(arm), "{file} has a legend entry for {arm}: {texts:?}");
            let colour = arm_colour_hex(i);
            let longest = doc
                .descendants()
                .filter(|n| {
                    n.has_tag_name("polyline") && n.attribute("stroke") == Some(colour.as_str())
                })
                .map(|n| n.attribute("points").unwrap_or("").split_whitespace().count())
                .max()
                .unwrap_or(0);
            // Evaluations at steps 20, 40 (and 60 for dense) are drawn; step 0 is not on a log axis.
            assert!(longest >= 2, "{file}: the series of {arm} ({colour}) has {longest} points");
        }
    }
    let html = read(&dir.join("report.html"));
    assert_eq!(html.matches("<svg").count(), files.len(), "every figure is inlined");
    assert!(
        !html.contains("<script")
            && !html.contains("src=")
            && !html.contains("href=\"http")
            && !html.contains("<img"),
        "self-contained"
    );
}

#[test]
fn sweep_and_fourier_figures_draw_what_they_say() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("tests/fixtures/sweep_with_fourier.yaml");
    let out = ticketlab(&["run", file.to_str().unwrap(), "--out", "run", "--quiet"], cwd.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = cwd.path().join("run/figures");
    let parse = |name: &str| {
        let svg = read(&dir.join(name));
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name} is not XML: {e}"));
        svg
    };
    // t_gen and tau_grok against the rate: one point per masked arm in each of the two panels.
    let rate = parse("rate.svg");
    assert_eq!(rate.matches("<circle").count(), 4, "two masked arms in two panels");
    assert!(
        rate.contains("dense, baseline") && rate.contains("pruning rate"),
        "the dense reference line and the axis"
    );
    let index: Value = serde_json::from_str(&read(&dir.join("index.json"))).unwrap();
    let files: Vec<&str> =
        index["figures"].as_array().unwrap().iter().map(|f| f["file"].as_str().unwrap()).collect();
    // One entropy curve and one spectrum heatmap per arm of each Fourier analysis stage.
    let entropy: Vec<&&str> = files.iter().filter(|f| f.starts_with("fourier-")).collect();
    let spectra: Vec<&&str> = files.iter().filter(|f| f.starts_with("spectrum-")).collect();
    assert_eq!((entropy.len(), spectra.len()), (2, 4), "{files:?}");
    for f in entropy {
        let svg = parse(f);
        assert!(svg.contains("dense") && svg.contains("ticket_train"), "{f} names both arms");
        assert!(svg.contains("<polyline"), "{f} draws curves");
    }
    for f in spectra {
        // A heatmap: one cell per neuron and frequency (24 neurons x 10 frequencies for p = 23).
        let cells = parse(f).matches("<rect").count();
        assert!(cells >= 24 * 10, "{f} has {cells} cells");
    }
    // The dense run's mask movement: one curve per layer and one over all layers, with t_gen marked.
    let jaccard = parse("jaccard-jaccard-dense.svg");
    assert!(
        jaccard.contains("all layers")
            && jaccard.contains("embed.W_E")
            && jaccard.contains("unembed.W_U"),
        "every curve is named"
    );
    for colour in ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728"] {
        assert_eq!(
            jaccard.matches(&format!("stroke=\"{colour}\" stroke-width=\"1\"")).count(),
            2,
            "a layer's curve and legend line in {colour}"
        );
    }
    assert_eq!(
        jaccard.matches("stroke-width=\"3\"").count(),
        2,
        "the all-layers curve and its legend line"
    );
    assert!(jaccard.contains("opacity=\"0.6\""), "the dashed t_gen line");
}

#[test]
fn report_regenerates_the_same_and_compares_runs() {
    let (cwd, dir) = quickstart_run();
    // Regenerate a copy, so the other tests keep reading the original.
    let copy = cwd.path().join("copy");
    copy_dir(dir, &copy);
    std::fs::remove_file(copy.join("report.md")).unwrap();
    std::fs::remove_file(copy.join("figures/accuracy.svg")).unwrap();
    let out = ticketlab(&["report", "copy"], cwd.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read(&copy.join("report.md")), read(&dir.join("report.md")));
    assert_eq!(read(&copy.join("report.html")), read(&dir.join("report.html")));
    assert_eq!(read(&copy.join("figures/accuracy.svg")), read(&dir.join("figures/accuracy.svg")));

    let cmp = ticketlab(&["report", "run", "copy", "--out", "cmp"], cwd.path());
    assert_eq!(cmp.status.code(), Some(0), "{}", stderr(&cmp));
    assert!(stdout(&cmp).contains("cmp/report.md"), "{}", stdout(&cmp));
    let md = read(&cwd.path().join("cmp/report.md"));
    for row in [
        "| run | `dense` (baseline) |",
        "| run | `ticket_train` |",
        "| copy | `dense` (baseline) |",
        "| copy | `ticket_train` |",
    ] {
        assert!(md.contains(row), "missing `{row}` in\n{md}");
    }
    let accuracy = read(&cwd.path().join("cmp/figures/accuracy.svg"));
    // A comparison never replaces a run's own report.
    let before = read(&dir.join("report.md"));
    let onto_run = ticketlab(&["report", "run", "copy", "--out", "run"], cwd.path());
    assert_eq!(onto_run.status.code(), Some(2), "{}", stderr(&onto_run));
    assert!(stderr(&onto_run).contains("is a run directory"), "{}", stderr(&onto_run));
    assert_eq!(read(&dir.join("report.md")), before);
    assert!(
        accuracy.contains("run/dense") && accuracy.contains("copy/ticket_train"),
        "arms are named run/arm"
    );
}

#[test]
fn report_of_a_directory_that_is_not_a_run_is_an_input_error() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("empty")).unwrap();
    let out = ticketlab(&["report", "empty"], cwd.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("metrics.jsonl") && stderr(&out).contains("not a run directory"),
        "{}",
        stderr(&out)
    );

    let (_, dir) = quickstart_run();
    let broken = cwd.path().join("broken");
    copy_dir(dir, &broken);
    std::fs::write(broken.join("summary.json"), "{ not json").unwrap();
    let out = ticketlab(&["report", "broken"], cwd.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("summary.json"), "{}", stderr(&out));
    assert!(broken.join("report.md").is_file(), "a failed regeneration leaves the old report");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs the tiny quickstart with `extra` arguments into `out/` of a fresh directory, which it
/// returns with the path of `out/` once the run has succeeded.
fn tiny_quickstart(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let set = tiny();
    let mut args = vec!["run", file.to_str().unwrap(), "--out", "out", "--quiet"];
    args.extend_from_slice(extra);
    let out = ticketlab(&with(&args, &set), cwd.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = cwd.path().join("out");
    (cwd, dir)
}

/// `summary.csv` and `metrics.csv` are flat tables: one column per swept parameter, a seed
/// column, the pruner; one metrics row per evaluation of every arm.
#[test]
fn the_csv_files_are_flat_tables_of_arms_and_evaluations() {
    let (_cwd, out) = tiny_quickstart(&["--grid", "mask.rate=[0.3, 0.6]", "--seeds", "2"]);
    let read = |name: &str| {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        let rows: Vec<Vec<String>> =
            text.lines().map(|l| l.split(',').map(str::to_string).collect()).collect();
        rows
    };
    let summary = read("summary.csv");
    let col = |rows: &[Vec<String>], name: &str| rows[0].iter().position(|c| c == name).unwrap();
    assert_eq!(&summary[0][..5], ["arm", "stage", "seed", "pruner", "mask.rate"]);
    // Two dense arms (one per seed) and four tickets (two rates x two seeds).
    assert_eq!(summary.len(), 1 + 6);
    let ticket = |rate: &str, seed: &str| {
        summary.iter().any(|r| {
            r[col(&summary, "stage")] == "ticket_train"
                && r[col(&summary, "mask.rate")] == rate
                && r[col(&summary, "seed")] == seed
                && r[col(&summary, "pruner")] == "magnitude"
        })
    };
    assert!(ticket("0.3", "0") && ticket("0.6", "1"), "{summary:?}");
    let metrics = read("metrics.csv");
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().count();
    assert_eq!(metrics.len(), 1 + lines);
    assert_eq!(&metrics[0][..4], ["arm", "stage", "seed", "mask.rate"]);
    assert!(metrics[0].contains(&"test_acc".to_string()));
}

/// With seed repeats the report has a table of every arm over its seeds.
#[test]
fn the_report_aggregates_arms_over_their_seeds() {
    let (_cwd, out) = tiny_quickstart(&["--seeds", "2"]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Over seeds"), "{report}");
    let dense = report.lines().find(|l| l.starts_with("| `dense` |")).unwrap_or_default();
    // Both seeds memorise within the tiny run and neither generalises.
    assert!(dense.contains("| 2 |") && dense.contains(" ± ") && dense.contains("never"), "{dense}");
    // Figures draw each arm once, as the mean over its seeds with a band.
    for figure in ["accuracy.svg", "loss.svg", "norms.svg", "masks.svg"] {
        let svg = std::fs::read_to_string(out.join("figures").join(figure)).unwrap();
        assert!(!svg.contains("@seed"), "{figure} names seed repeats");
        assert!(svg.contains("mean of 2 seeds"), "{figure} says it shows means");
    }
    let accuracy = std::fs::read_to_string(out.join("figures/accuracy.svg")).unwrap();
    assert!(accuracy.contains("<polygon"), "the seeds' band");
}

/// `--grid mask.uses=[...]` trains one ticket per pruner: the summary names each pruner in its
/// own column and in the swept `mask.uses` column.
#[test]
fn sweeping_the_pruner_trains_one_ticket_per_pruner() {
    let (_cwd, out) = tiny_quickstart(&["--grid", "mask.uses=[magnitude, random]"]);
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let header: Vec<&str> = summary.lines().next().unwrap().split(',').collect();
    assert_eq!(&header[..5], ["arm", "stage", "seed", "pruner", "mask.uses"]);
    let rate = std::fs::read_to_string(out.join("figures/rate.svg")).unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for pruner in ["magnitude", "random"] {
        assert!(
            summary.lines().any(|l| l.contains(&format!(",ticket_train,0,{pruner},{pruner},"))),
            "{summary}"
        );
        // One line per pruner in the rate figure, and a pruner column in the report.
        assert!(rate.contains(&format!("\nticket ({pruner})\n")), "{pruner} line");
        assert!(report.contains(&format!(" | {pruner} | ")), "{pruner} column: {report}");
    }
    // The pruner names the line; the swept `mask.uses` is not repeated as a variant.
    assert!(!rate.contains("uses ="), "{rate}");
    // The tiny run generalises nowhere: every point sits in the "never" row.
    assert!(rate.contains("never"), "never row");
}

/// A sweep over the rate and another parameter (here the width) draws one rate line, and one
/// dense baseline, per width: arms of different widths are not averaged like seeds.
#[test]
fn the_rate_figure_keeps_other_swept_values_apart() {
    let (_cwd, out) =
        tiny_quickstart(&["--grid", "mask.rate=[0.4, 0.6]", "--grid", "init.width=[8, 12]"]);
    let rate = std::fs::read_to_string(out.join("figures/rate.svg")).unwrap();
    for width in [8, 12] {
        assert!(rate.contains(&format!("ticket (magnitude, width = {width})")), "{rate}");
        assert!(rate.contains(&format!("dense (width = {width}), baseline")), "{rate}");
    }
    assert!(!rate.contains("mean of 2"), "the two widths are not averaged");
    // Lines in the order of the values (8 before 12), not of their text.
    let at = |width: u32| rate.find(&format!("ticket (magnitude, width = {width})"));
    assert!(at(8) < at(12), "width 8 is listed first");
}

/// `--set mask.levels=2` runs iterative magnitude pruning: the second level's ticket keeps
/// (1 - rate)^2 of the weights, inside the first level's mask, and both are arms.
#[test]
fn levels_prune_the_previous_levels_ticket_further() {
    let (_cwd, out) = tiny_quickstart(&["--set", "mask.levels=2"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let density = |arm: &str| {
        summary["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["arm"] == arm)
            .and_then(|a| a["density"].as_f64())
            .unwrap_or_else(|| panic!("{arm} in {summary}"))
    };
    assert!((density("ticket_train[mask.level=1]") - 0.4).abs() < 1e-3);
    assert!((density("ticket_train[mask.level=2]") - 0.16).abs() < 1e-3);
    let masks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("masks.json")).unwrap()).unwrap();
    assert!(masks.to_string().contains("mask[mask.level=2]"), "{masks}");
}
