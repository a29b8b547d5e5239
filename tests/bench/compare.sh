#!/usr/bin/env bash
# Times ticketlab's training step of the paper's MLP and the same step in PyTorch (CPU) on this
# machine, in one run, and prints both and their ratio as JSON.
#
#   tests/bench/compare.sh [THREADS...]     (default: 1 2)
#
# For each thread count the two are run alternately, REPEATS times (default 3), and the
# medians of the per-run medians are compared; a ratio below 1 means ticketlab is faster.
# PyTorch is installed from PyPI into .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
repeats="${REPEATS:-3}"
steps="${STEPS:-100}"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import torch" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet torch
fi
cargo build --release --quiet --bin ticketlab
for t in "${threads[@]}"; do
    ours=() peer=()
    for _ in $(seq "$repeats"); do
        ours+=("$(./target/release/ticketlab bench --steps "$steps" --warmup 10 --threads "$t" --json)")
        peer+=("$(BENCH_THREADS="$t" .venv/bin/python tests/bench/torch_mlp_step.py "$steps" 10 2>/dev/null)")
    done
    python3 - "$t" "${ours[@]}" "${peer[@]}" <<'PY'
import json, statistics, sys
t, runs = sys.argv[1], [json.loads(a) for a in sys.argv[2:]]
half = len(runs) // 2
ours, peer = runs[:half], runs[half:]
med = lambda rs: statistics.median(r["ms_per_step_median"] for r in rs)
print(json.dumps({
    "threads": int(t),
    "ticketlab_ms_per_step": round(med(ours), 3),
    "pytorch_ms_per_step": round(med(peer), 3),
    "ratio_ticketlab_over_pytorch": round(med(ours) / med(peer), 3),
    "ticketlab_gflops": round(statistics.median(r["gflops"] for r in ours), 2),
    "peer": peer[0]["peer"],
    "runs": len(ours),
}))
PY
done
