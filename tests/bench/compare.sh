#!/usr/bin/env bash
# Runs ticketlab's training-step benchmark and the same step in PyTorch (CPU) on this machine,
# in one run, and prints both results and the ratio. Usage: tests/bench/compare.sh [THREADS]
# Installs PyTorch from PyPI into .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-2}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet torch
fi
cargo build --release --quiet --bin ticketlab
ours=$(./target/release/ticketlab bench --steps 50 --warmup 10 --threads "$threads" --json)
peer=$(BENCH_THREADS="$threads" .venv/bin/python tests/bench/torch_mlp_step.py 50 10)
python3 - "$ours" "$peer" <<'PY'
import json, sys
ours, peer = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"ticketlab": ours, "peer": peer,
                  "ratio_ours_over_peer": ours["ms_per_step_median"] / peer["ms_per_step_median"]}, indent=2))
PY
