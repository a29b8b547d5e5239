#!/usr/bin/env bash
# Times ticketlab's training step and the same step in PyTorch (CPU) on this machine, in one
# run, for each model and thread count, and prints both and their ratio as JSON lines.
#
#   [MODELS="mlp transformer mnist"] [REPEATS=3] [STEPS=100] tests/bench/compare.sh [THREADS...]
#
# THREADS defaults to "1 2". For each model and thread count the two sides run alternately,
# REPEATS times, and the medians of the per-run medians are compared; a ratio below 1 means
# ticketlab is faster
# and `speedup` is PyTorch's time over ticketlab's. PyTorch is installed from PyPI into .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
read -r -a models <<< "${MODELS:-mlp transformer mnist}"
repeats="${REPEATS:-3}"
steps="${STEPS:-100}"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import torch" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet torch
fi
cargo build --release --quiet --bin ticketlab
echo "{\"commit\": \"$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes')\"}"
for model in "${models[@]}"; do
    for t in "${threads[@]}"; do
        ours=() peer=()
        for _ in $(seq "$repeats"); do
            ours+=("$(./target/release/ticketlab bench --model "$model" --steps "$steps" --warmup 10 --threads "$t" --json)")
            peer+=("$(BENCH_THREADS="$t" .venv/bin/python tests/bench/torch_step.py "$model" "$steps" 10 2>/dev/null)")
        done
        python3 - "$model" "$t" "${ours[@]}" "${peer[@]}" <<'PY'
import json, statistics, sys
model, t, runs = sys.argv[1], sys.argv[2], [json.loads(a) for a in sys.argv[3:]]
half = len(runs) // 2
ours, peer = runs[:half], runs[half:]
med = lambda rs: statistics.median(r["ms_per_step_median"] for r in rs)
print(json.dumps({
    "model": model,
    "threads": int(t),
    "ticketlab_ms_per_step": round(med(ours), 3),
    "pytorch_ms_per_step": round(med(peer), 3),
    "ratio_ticketlab_over_pytorch": round(med(ours) / med(peer), 3),
    "speedup": round(med(peer) / med(ours), 2),
    "ticketlab_gflops_as_written": round(statistics.median(r["gflops"] for r in ours), 2),
    "peer": peer[0]["peer"],
    "runs": len(ours),
}))
PY
    done
done
