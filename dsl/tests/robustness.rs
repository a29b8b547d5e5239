//! No input makes the front ends panic: cut and corrupted versions of real files only ever
//! produce diagnostics or experiments.

mod common;

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

fn sources() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("experiments/quickstart.yaml", common::read("experiments/quickstart.yaml")),
        ("experiments/quickstart.tlx", common::read("experiments/quickstart.tlx")),
        ("experiments/grokking_ticket.tlx", common::read("experiments/grokking_ticket.tlx")),
    ]
}

#[test]
fn every_prefix_is_handled() {
    for (name, bytes) in sources() {
        for cut in (0..bytes.len()).step_by(3) {
            try_all(name, &bytes[..cut]);
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
            try_all(name, &b);
        }
    }
}
