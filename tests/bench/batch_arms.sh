#!/usr/bin/env bash
# Times a sweep of six quickstart arms (the dense base, then tickets at six pruning rates, 4,000
# steps each) with its tickets trained together in one batch (`--batch-arms on`, the default)
# against each trained alone (`--batch-arms off`), both with JOBS workers (default 1) of THREADS
# kernel threads (default: the cores divided by JOBS), alternately, REPEATS times, each run
# against a fresh store.
# Prints each wall time, the medians and their ratio as JSON, and checks that both give the same
# metrics.
#
# BIN (default target/release/ticketlab) picks the binary, to compare two builds.
#
#   [REPEATS=3] [JOBS=N] [THREADS=N] [BIN=path] tests/bench/batch_arms.sh
set -euo pipefail
repeats="${REPEATS:-3}"
bin="${BIN:-./target/release/ticketlab}"
jobs="${JOBS:-1}"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "JOBS=$jobs: give a whole number of workers, 1 or more" >&2; exit 2; }
threads="${THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}"
source "$(dirname "$0")/sweep_timing.sh"
run() {
    local batch="$1" i="$2"
    seconds "$bin" run experiments/quickstart.yaml --quiet --jobs "$jobs" --threads "$threads" \
        --grid 'mask.rate=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]' --batch-arms "$batch" \
        --store "$work/store-$batch-$i" --out "$work/out-$batch-$i"
}
on=() off=()
for i in $(seq "$repeats"); do
    on+=("$(run on "$i")")
    off+=("$(run off "$i")")
    cmp -s "$work/out-on-$i/metrics.csv" "$work/out-off-$i/metrics.csv" || { echo "metrics differ" >&2; exit 1; }
done
python3 - "$jobs" "$threads" "${on[*]}" "${off[*]}" <<'PY'
import json, statistics, sys
jobs, threads = int(sys.argv[1]), int(sys.argv[2])
on, off = [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
print(json.dumps({
    "workload": "quickstart.yaml, dense base + 6 tickets (mask.rate 0.1-0.6), 4000 steps each",
    "jobs": jobs,
    "threads": threads,
    "batch_arms_on_seconds": on,
    "batch_arms_off_seconds": off,
    "speedup": round(statistics.median(off) / statistics.median(on), 2),
    "same_metrics": True,
}))
PY
