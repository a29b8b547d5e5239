//! No input makes the front ends panic: cut and corrupted versions of real files only ever
//! produce diagnostics or experiments.

use crate::common;

use std::time::{Duration, Instant};

fn try_all(name: &str, bytes: &[u8]) {
    let registry = common::registry();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Ok((ast, _)) = ticketlab_dsl::parse_source(name, bytes) {
            let _ = ticketlab_dsl::format_ast(&ast, ticketlab_dsl::Format::Yaml);
            let _ = ticketlab_dsl::format_ast(&ast, ticketlab_dsl::Format::Tlx);
        }
        match ticketlab_dsl::load_source(name, bytes, &registry, &["mask.rate=0.5".into()]) {
            Ok(_) => {}
            Err(d) => {
                assert!(!d.is_empty());
                let _ = d.render();
            }
        }
    }));
    assert!(result.is_ok(), "{name} panicked on:\n{}", String::from_utf8_lossy(bytes));
}

fn sources() -> Vec<(String, Vec<u8>)> {
    common::experiment_files().into_iter().map(|rel| (rel.clone(), common::read(&rel))).collect()
}

#[test]
fn every_prefix_is_handled() {
    for (name, bytes) in sources() {
        for cut in (0..bytes.len()).step_by(3) {
            try_all(&name, &bytes[..cut]);
        }
    }
}

#[test]
fn corrupted_bytes_are_handled() {
    // A fixed pseudo-random sequence (xorshift), so failures reproduce.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let replacements = b"{}[]():,=\"'#\t\n -.0aZ_\xc3\xff";
    for (name, bytes) in sources() {
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % b.len() as u64) as usize;
                b[at] = replacements[(next() % replacements.len() as u64) as usize];
            }
            try_all(&name, &b);
        }
    }
}

/// Loads `text` as `name`, which must fail with "too deep" and nothing else, quickly.
fn assert_too_deep(name: &str, text: &str, line: usize) {
    let start = Instant::now();
    let d = match common::load_text(name, text) {
        Ok(_) => panic!("{name}: a file nested too deeply was accepted"),
        Err(d) => d,
    };
    let rendered = d.render();
    let elapsed = start.elapsed();
    assert_eq!(d.len(), 1, "{name}: {rendered}");
    assert!(rendered.contains("the nesting is too deep"), "{name}: {rendered}");
    assert!(
        rendered.contains(&format!("{name}:{line}:")),
        "{name}: the location is line {line}: {rendered}"
    );
    assert!(elapsed < Duration::from_secs(5), "{name}: took {elapsed:?}");
}

#[test]
fn deep_nesting_is_refused_quickly_in_both_forms() {
    for depth in [10_000, 100_000] {
        let list = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let map = format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth));
        assert_too_deep("deep.yaml", &format!("name: deep\nstages: {list}\n"), 2);
        assert_too_deep(
            "deep.yaml",
            &format!("name: deep\nstages:\n  data: {{ kind: dataset, with: {map} }}\n"),
            3,
        );
        // Unclosed: the scan stops at the limit all the same.
        assert_too_deep("deep.yaml", &format!("name: deep\nstages: {}\n", "[".repeat(depth)), 2);
        let tlx_map = format!("{}1{}", "{ a = ".repeat(depth), "}".repeat(depth));
        assert_too_deep(
            "deep.tlx",
            &format!("experiment deep {{\n  stage data: dataset modular {{ p = {list} }}\n}}\n"),
            2,
        );
        assert_too_deep(
            "deep.tlx",
            &format!("experiment deep {{\n  stage data: dataset modular {{ p = {tlx_map} }}\n}}\n"),
            2,
        );
        assert_too_deep(
            "deep.tlx",
            &format!(
                "experiment deep {{\n  stage data: dataset modular {{ p = {} }}\n}}\n",
                "[".repeat(depth)
            ),
            2,
        );
    }
    // Block mappings, one level per line.
    let mut block = String::from("name: deep\nstages:\n  data:\n    kind: dataset\n    with:\n");
    for i in 0..200 {
        block.push_str(&format!("{}a{i}:\n", "  ".repeat(i + 3)));
    }
    block.push_str(&format!("{}1\n", "  ".repeat(203)));
    assert_too_deep("block.yaml", &block, 67);
}

#[test]
fn nesting_up_to_the_limit_is_allowed() {
    let limit = ticketlab_dsl::MAX_NESTING;
    // YAML: the file, `stages`, the stage and `with` are four levels; the value holds the rest.
    for (extra, refused) in [(limit - 4, false), (limit - 3, true)] {
        let value = format!("{}{}", "[".repeat(extra), "]".repeat(extra));
        let text = format!(
            "name: deep\nstages:\n  data: {{ kind: dataset, uses: modular, with: {{ p: {value} }} }}\n"
        );
        let rendered = common::load_text("deep.yaml", &text).unwrap_err().render();
        assert_eq!(
            rendered.contains("too deep"),
            refused,
            "{extra} levels in the value: {rendered}"
        );
        if !refused {
            assert!(rendered.contains("invalid value for `data.p`"), "{rendered}");
        }
    }
    // .tlx: `experiment { }` and the stage's `{ }` are two levels.
    for (extra, refused) in [(limit - 2, false), (limit - 1, true)] {
        let value = format!("{}{}", "[".repeat(extra), "]".repeat(extra));
        let text =
            format!("experiment deep {{\n  stage data: dataset modular {{ p = {value} }}\n}}\n");
        let rendered = common::load_text("deep.tlx", &text).unwrap_err().render();
        assert_eq!(
            rendered.contains("too deep"),
            refused,
            "{extra} levels in the value: {rendered}"
        );
        if !refused {
            assert!(rendered.contains("invalid value for `data.p`"), "{rendered}");
        }
    }
    // Brackets inside strings and comments do not count.
    let brackets = "[".repeat(2 * limit);
    let text = format!(
        "experiment deep {{ # {brackets}\n  description = \"{brackets}\"\n  stage data: dataset modular\n}}\n"
    );
    common::load_text("deep.tlx", &text).unwrap_or_else(|d| panic!("{}", d.render()));
}

#[test]
fn values_given_on_the_command_line_have_the_same_nesting_limit() {
    let limit = ticketlab_dsl::MAX_NESTING;
    let text = "name: deep\nstages:\n  data: { kind: dataset, uses: modular }\n";
    let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let load = |cli: ticketlab_dsl::CliOverrides| {
        ticketlab_dsl::load_source_with("deep.yaml", text.as_bytes(), &common::registry(), &cli)
    };
    let set = |v: String| ticketlab_dsl::CliOverrides {
        set: vec![format!("data.p={v}")],
        ..Default::default()
    };
    let grid = |v: String| ticketlab_dsl::CliOverrides {
        grid: vec![format!("data.p=[{v}]")],
        ..Default::default()
    };
    for cli in [set(deep(limit + 1)), grid(deep(limit))] {
        let rendered = load(cli).unwrap_err().render();
        assert!(rendered.contains("the nesting is too deep"), "{rendered}");
    }
    // At the limit the value is only the wrong type.
    let rendered = load(set(deep(limit))).unwrap_err().render();
    assert!(!rendered.contains("too deep") && rendered.contains("data.p"), "{rendered}");
}
