//! `modular`'s `split: reference` against Python itself: the paper's code draws its split with
//! `random.seed(seed); random.shuffle(pairs)` over the pairs a <= b; python3 (which CI needs
//! anyway) prints that split here, and the dataset must hold the same pairs in the same order.

use std::process::Command;

use ticketlab_api::data::Split;
use ticketlab_plugins::datasets::{Operation, SplitDraw, modular_dataset};

const PYTHON: &str = "import random, sys
p, seed = int(sys.argv[1]), int(sys.argv[2])
pairs = [(i, j) for i in range(p) for j in range(p) if i <= j]
random.seed(seed)
random.shuffle(pairs)
div = int(0.4 * len(pairs))
print(div)
print(' '.join(f'{a},{b}' for a, b in pairs))
";

/// The pairs of a split, in order, read back from the one-hot rows.
fn pairs(split: &Split, p: usize) -> Vec<(usize, usize)> {
    split
        .x
        .data
        .chunks(2 * p)
        .map(|row| {
            let a = row[..p].iter().position(|&v| v == 1.0).unwrap();
            let b = row[p..].iter().position(|&v| v == 1.0).unwrap();
            (a, b)
        })
        .collect()
}

#[test]
fn the_reference_split_is_pythons_pair_for_pair() {
    for (p, seed) in [(67, 0), (67, 1), (67, 2), (31, 12345), (11, 1 << 40)] {
        let out = Command::new("python3")
            .args(["-c", PYTHON, &p.to_string(), &seed.to_string()])
            .output()
            .expect("python3 runs (the tests and CI need it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let div: usize = lines.next().unwrap().parse().unwrap();
        let python: Vec<(usize, usize)> = lines
            .next()
            .unwrap()
            .split(' ')
            .map(|pair| {
                let (a, b) = pair.split_once(',').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        let d = modular_dataset(Operation::Add, p, false, 0.4, SplitDraw::Reference(seed)).unwrap();
        assert_eq!(pairs(&d.train, p), python[..div], "p = {p}, seed {seed}: train");
        assert_eq!(pairs(&d.test, p), python[div..], "p = {p}, seed {seed}: test");
    }
}
