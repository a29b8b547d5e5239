#!/usr/bin/env bash
# Times a sweep run one stage at a time against the same sweep with stages run concurrently:
# experiments/rate_sweep.yaml (the same eleven trainings: the dense base and ten pruning rates)
# shortened to STEPS steps per training, with --jobs 1 and --jobs JOBS, alternately, REPEATS
# times, each run against a fresh store. Prints each wall time, the medians and their ratio as
# JSON lines, and checks that both give the same summary. Batched arms are off, so the stages run
# one at a time against concurrently (tests/bench/batch_arms.sh times batches).
#
#   [STEPS=3000] [REPEATS=3] [JOBS=2] tests/bench/jobs.sh
set -euo pipefail
steps="${STEPS:-3000}"
repeats="${REPEATS:-3}"
jobs="${JOBS:-2}"
source "$(dirname "$0")/sweep_timing.sh"
run() {
    local j="$1" i="$2"
    seconds ./target/release/ticketlab run experiments/rate_sweep.yaml --quiet --jobs "$j" --batch-arms off \
        --set dense.steps="$steps" --set ticket_train.steps="$steps" \
        --store "$work/store-$j-$i" --out "$work/out-$j-$i"
}
one=() many=()
for i in $(seq "$repeats"); do
    one+=("$(run 1 "$i")")
    many+=("$(run "$jobs" "$i")")
    cmp -s "$work/out-1-$i/summary.json" "$work/out-$jobs-$i/summary.json" || { echo "summaries differ" >&2; exit 1; }
done
python3 - "$jobs" "$steps" "${one[*]}" "${many[*]}" <<'PY'
import json, statistics, sys
jobs, steps, one, many = int(sys.argv[1]), int(sys.argv[2]), [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
print(json.dumps({
    "workload": f"rate_sweep.yaml, 11 trainings of {steps} steps",
    "jobs_1_seconds": one,
    f"jobs_{jobs}_seconds": many,
    "speedup": round(statistics.median(one) / statistics.median(many), 2),
    "same_summary": True,
}))
PY
