#!/usr/bin/env bash
# Times experiments/rate_sweep.yaml over SEEDS root seeds (default 3) as the file is, then with
# `stop: { when: generalised, patience: 2000 }` on every ticket's training, each against a fresh
# store, with JOBS workers (default: the cores) of THREADS kernel threads (default 1). The dense
# base trains its 30,000 steps both ways: its final weights are what the masks prune, and a base
# stopped early would give other masks, hence other tickets.
# Prints both wall times and their ratio as JSON, and fails unless every arm has the same t_mem
# and t_gen both ways (summary.csv).
#
# BIN (default target/release/ticketlab) picks the binary.
#
#   [SEEDS=3] [JOBS=N] [THREADS=1] [BIN=path] tests/bench/stop_rules.sh
set -euo pipefail
seeds="${SEEDS:-3}"
bin="${BIN:-./target/release/ticketlab}"
jobs="${JOBS:-$(nproc)}"
threads="${THREADS:-1}"
source "$(dirname "$0")/sweep_timing.sh"
run() {
    local name="$1"
    shift
    seconds "$bin" run experiments/rate_sweep.yaml --quiet --seeds "$seeds" --jobs "$jobs" \
        --threads "$threads" --store "$work/store-$name" --out "$work/out-$name" "$@"
}
full="$(run full)"
stopped="$(run stopped --set 'ticket_train.stop={when: generalised, patience: 2000}')"
python3 - "$seeds" "$jobs" "$threads" "$full" "$stopped" "$work/out-full/summary.csv" \
    "$work/out-stopped/summary.csv" <<'PY'
import csv, json, sys
seeds, jobs, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
full, stopped = float(sys.argv[4]), float(sys.argv[5])
def arms(path):
    with open(path) as f:
        return {r["arm"]: r for r in csv.DictReader(f)}
a, b = arms(sys.argv[6]), arms(sys.argv[7])
if a.keys() != b.keys():
    sys.exit(f"different arms: {sorted(a.keys() ^ b.keys())}")
differ = [k for k in a if (a[k]["t_mem"], a[k]["t_gen"]) != (b[k]["t_mem"], b[k]["t_gen"])]
if differ:
    sys.exit("t_mem or t_gen differ: " + "; ".join(
        f'{k}: {a[k]["t_mem"]}/{a[k]["t_gen"]} against {b[k]["t_mem"]}/{b[k]["t_gen"]}' for k in differ))
steps = lambda rows: sum(int(r["steps"]) for r in rows.values() if r["steps"])
print(json.dumps({
    "workload": f"rate_sweep.yaml, {seeds} seeds (k = 0.0-0.9 tickets and the dense base)",
    "jobs": jobs,
    "threads": threads,
    "arms": len(a),
    "as_written_seconds": full,
    "with_stop_seconds": stopped,
    "speedup": round(full / stopped, 2),
    "steps_as_written": steps(a),
    "steps_with_stop": steps(b),
    "same_t_mem_and_t_gen": True,
}))
PY
