//! A seeded, structure-aware fuzz harness for both front ends: the shipped experiment files,
//! mutated line by line and value by value (extreme values, deleted, duplicated and swapped
//! lines, lines spliced in from other files, values nested deep, stray characters), are checked,
//! formatted both ways and planned. No case may panic or take long, and every refusal must name
//! a place in the file.
//!
//! `cargo test` runs a few thousand cases; `FUZZ_CASES=100000` runs more, and
//! tests/fuzz/run.sh runs 100,000 in release mode and prints the counts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ticketlab_api::runtime::Runtime;
use ticketlab_engine::plan;

use crate::common;

/// A fixed pseudo-random sequence (xorshift64), so every failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that break assumptions: huge, tiny, negative, non-finite, the wrong type, empty,
/// very long, deeply nested.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "1e308",
    "-1e308",
    "1e-320",
    "9223372036854775807",
    "18446744073709551616",
    "-9223372036854775808",
    "1000000000000",
    "0.5",
    ".nan",
    ".inf",
    "NaN",
    "inf",
    "true",
    "null",
    "~",
    "\"\"",
    "[]",
    "{}",
    "[1, 2, 3]",
    "{ a: 1 }",
    "\"x\"",
    "magnitude",
    "data",
    "final",
    "init",
    "'",
    "\"",
    "#",
    "&a",
    "*a",
    "!!str 5",
    "-",
    ":",
];

/// One mutation of `lines`, drawing lines to splice from `others`.
fn mutate(rng: &mut Rng, lines: &mut Vec<String>, others: &[Vec<String>]) {
    if lines.is_empty() {
        lines.push(rng.pick(EXTREMES).to_string());
        return;
    }
    let at = rng.below(lines.len());
    match rng.below(8) {
        // Replace one value-like token of a line with an extreme.
        0 | 1 => {
            let line = &lines[at];
            let cuts: Vec<usize> = line
                .char_indices()
                .filter(|(_, c)| matches!(c, ':' | '=' | '[' | ',' | '{'))
                .map(|(i, _)| i + 1)
                .collect();
            if let Some(&start) = cuts.get(rng.below(cuts.len())) {
                let rest = &line[start..];
                let end = rest.find([',', '}', ']', '\n']).map_or(line.len(), |e| start + e);
                let value = rng.pick(EXTREMES);
                lines[at] = format!("{} {value}{}", &line[..start], &line[end..]);
            }
        }
        2 => {
            lines.remove(at);
        }
        3 => {
            let copy = lines[at].clone();
            lines.insert(at, copy);
        }
        4 => {
            let other = rng.below(lines.len());
            lines.swap(at, other);
        }
        5 => {
            let source = rng.pick(others);
            if !source.is_empty() {
                lines[at] = rng.pick(source).clone();
            }
        }
        // Nest a value deep: brackets in both forms, and indentation in YAML.
        6 => {
            let depth = 1 + rng.below(80);
            let line = &lines[at];
            let split = line.find([':', '=']).map_or(0, |i| i + 1);
            let (open, close) = if rng.below(2) == 0 { ("[", "]") } else { ("{ a: ", " }") };
            lines[at] = format!(
                "{} {}{}{}",
                &line[..split],
                open.repeat(depth),
                line[split..].trim(),
                close.repeat(depth)
            );
        }
        // A stray character, or an indentation change.
        _ => {
            let line = &mut lines[at];
            if rng.below(2) == 0 {
                let chars: Vec<char> = "{}[]():,=\"'#\t -.0aZ_|>&*!%@`".chars().collect();
                let c = *rng.pick(&chars);
                let pos =
                    line.char_indices().map(|(i, _)| i).nth(rng.below(line.chars().count() + 1));
                line.insert(pos.unwrap_or(line.len()), c);
            } else if line.starts_with("  ") {
                line.drain(..2);
            } else {
                line.insert_str(0, "  ");
            }
        }
    }
}

/// What happened to one case.
#[derive(Debug, Default)]
struct Counts {
    cases: usize,
    checked: usize,
    refused: usize,
    planned: usize,
    slowest: Duration,
    by_mutated_file: BTreeMap<String, usize>,
}

/// Runs `cases` mutated files (spread over every shipped experiment file) from `seed`; panics
/// with the input on a panic, a slow case or an error with no location.
fn run(cases: usize, seed: u64) -> Counts {
    let registry = common::registry();
    let files: Vec<(String, String)> = common::experiment_files()
        .into_iter()
        .map(|rel| {
            let text = String::from_utf8(common::read(&rel)).expect("shipped files are UTF-8");
            (rel, text)
        })
        .collect();
    let all_lines: Vec<Vec<String>> =
        files.iter().map(|(_, t)| t.lines().map(str::to_string).collect()).collect();
    let mut counts = Counts::default();
    let mut rng = Rng(seed | 1);
    for case in 0..cases {
        let (name, text) = &files[case % files.len()];
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut lines, &all_lines);
        }
        let mutated = lines.join("\n");
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Ok((ast, _)) = ticketlab_dsl::parse_source(name, mutated.as_bytes()) {
                let _ = ticketlab_dsl::format_ast(&ast, ticketlab_dsl::Format::Yaml);
                let _ = ticketlab_dsl::format_ast(&ast, ticketlab_dsl::Format::Tlx);
            }
            match ticketlab_dsl::load_source(name, mutated.as_bytes(), &registry, &[]) {
                Ok(ir) => {
                    let planned = plan(&ir, &registry, None, &Runtime::default()).is_ok();
                    Ok(planned)
                }
                Err(d) => Err(d),
            }
        }));
        let took = start.elapsed();
        let report = |what: &str| format!("case {case} (seed {seed}) of {name} {what}:\n{mutated}");
        let outcome = outcome.unwrap_or_else(|_| panic!("{}", report("panicked")));
        assert!(took < Duration::from_secs(5), "{}", report(&format!("took {took:?}")));
        counts.slowest = counts.slowest.max(took);
        counts.cases += 1;
        *counts.by_mutated_file.entry(name.clone()).or_default() += 1;
        match outcome {
            Ok(planned) => {
                counts.checked += 1;
                counts.planned += usize::from(planned);
            }
            Err(d) => {
                counts.refused += 1;
                assert!(!d.is_empty(), "{}", report("was refused without a diagnostic"));
                for item in d.items() {
                    // A file with nothing in it has no place to point at.
                    let whole_file = mutated.trim().is_empty();
                    assert!(
                        !item.labels.is_empty() || whole_file,
                        "{}\n\nunlocated: {}",
                        report("gave an error without a location"),
                        item.message
                    );
                }
            }
        }
    }
    counts
}

#[test]
fn mutated_experiment_files_never_panic_hang_or_give_unlocated_errors() {
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20261203);
    let counts = run(cases, seed);
    println!(
        "fuzz: {} cases from seed {seed}: {} checked ({} planned), {} refused with located errors, 0 panics; slowest case {:?}",
        counts.cases, counts.checked, counts.planned, counts.refused, counts.slowest
    );
    // The mutations must reach both outcomes, or the harness tests nothing.
    assert!(counts.checked > cases / 50 && counts.refused > cases / 4, "{counts:?}");
}
