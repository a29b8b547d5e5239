#!/usr/bin/env bash
# Times a sweep of six quickstart arms (the dense base, then tickets at six pruning rates, 4,000
# steps each) with its tickets trained together in one batch (`--batch-arms on`, the default)
# against each trained alone (`--batch-arms off`), both at `--jobs 1` with THREADS kernel
# threads (default: the cores), alternately, REPEATS times, each run against a fresh store.
# Prints each wall time, the medians and their ratio as JSON, and checks that both give the same
# metrics.
#
#   [REPEATS=3] [THREADS=N] tests/bench/batch_arms.sh
set -euo pipefail
repeats="${REPEATS:-3}"
threads="${THREADS:-$(nproc)}"
source "$(dirname "$0")/sweep_timing.sh"
run() {
    local batch="$1" i="$2"
    seconds ./target/release/ticketlab run experiments/quickstart.yaml --quiet --jobs 1 --threads "$threads" \
        --grid 'mask.rate=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]' --batch-arms "$batch" \
        --store "$work/store-$batch-$i" --out "$work/out-$batch-$i"
}
on=() off=()
for i in $(seq "$repeats"); do
    on+=("$(run on "$i")")
    off+=("$(run off "$i")")
    cmp -s "$work/out-on-$i/metrics.csv" "$work/out-off-$i/metrics.csv" || { echo "metrics differ" >&2; exit 1; }
done
python3 - "$threads" "${on[*]}" "${off[*]}" <<'PY'
import json, statistics, sys
threads, on, off = int(sys.argv[1]), [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
print(json.dumps({
    "workload": "quickstart.yaml, dense base + 6 tickets (mask.rate 0.1-0.6), 4000 steps each, --jobs 1",
    "threads": threads,
    "batch_arms_on_seconds": on,
    "batch_arms_off_seconds": off,
    "speedup": round(statistics.median(off) / statistics.median(on), 2),
    "same_metrics": True,
}))
PY
