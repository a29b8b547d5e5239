#!/usr/bin/env bash
# Whether subnormal floats slow the late phase of training: times steps of the paper's MLP
# after WARMUP untimed steps (default 20000, past the dense model's generalisation at about
# 14,500), with IEEE subnormals and with them flushed to zero (x86 FTZ/DAZ), at one thread.
# Also times the first steps for reference. Prints one JSON line per measurement.
set -euo pipefail
cd "$(dirname "$0")/../.."
warmup="${WARMUP:-20000}"
cargo build --release --quiet --bin ticketlab
for w in 10 "$warmup"; do
    for flag in "" --flush-denormals; do
        ./target/release/ticketlab bench --steps 200 --warmup "$w" --threads 1 $flag --json | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(json.dumps({'after_steps': $w, 'flush_denormals': '$flag' != '', 'ms_per_step_median': round(r['ms_per_step_median'], 3), 'final_loss': r['final_loss']}))"
    done
done
