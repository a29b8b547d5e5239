#!/usr/bin/env bash
# Times two builds of ticketlab against each other: `ticketlab bench` for each model and thread
# count, the two builds alternately, REPEATS times; prints every run, then per model and thread
# count the ratio of the medians, the median of the ratios of each pair of runs side by side
# (which a change of the machine's speed between pairs moves less), and whether both builds
# ended on the same loss bit for bit.
#
# With BUSY=1 the machine is kept busy meanwhile: one endless loop per core at the lowest
# priority (`nice -n 19`), as a sweep's other jobs or another user's would be.
#
#   BEFORE=path AFTER=path [MODELS="mlp transformer mnist"] [REPEATS=3] [STEPS=200] [BUSY=1] \
#     tests/bench/builds.sh [THREADS...]
set -euo pipefail
: "${BEFORE:?give BEFORE=<path of the build before the change>}"
: "${AFTER:?give AFTER=<path of the build after the change>}"
for side in BEFORE AFTER; do
    [ -x "${!side}" ] || { echo "$side=${!side}: not an executable file; give the path of a ticketlab build (such as target/release/ticketlab)" >&2; exit 2; }
done
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
read -r -a models <<< "${MODELS:-mlp transformer mnist}"
repeats="${REPEATS:-3}"
steps="${STEPS:-200}"
loops=()
stop_loops() { [ ${#loops[@]} -eq 0 ] || kill "${loops[@]}" 2>/dev/null || true; }
trap stop_loops EXIT
if [ "${BUSY:-0}" = 1 ]; then
    for _ in $(seq "$(nproc)"); do
        nice -n 19 bash -c 'while :; do :; done' &
        loops+=("$!")
    done
fi
for model in "${models[@]}"; do
    for t in "${threads[@]}"; do
        runs=()
        for _ in $(seq "$repeats"); do
            for side in BEFORE AFTER; do
                runs+=("$side $("${!side}" bench --model "$model" --steps "$steps" --warmup 10 --threads "$t" --json | tr -d '\n')")
            done
        done
        printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys
model, threads = sys.argv[1], int(sys.argv[2])
runs = [(line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1])) for line in sys.stdin]
ms = {side: [r["ms_per_step_median"] for s, r in runs if s == side] for side in ("BEFORE", "AFTER")}
losses = {r["final_loss"] for _, r in runs}
print(json.dumps({
    "model": model, "threads": threads,
    "before_ms": [round(x, 3) for x in ms["BEFORE"]], "after_ms": [round(x, 3) for x in ms["AFTER"]],
    "speedup": round(statistics.median(ms["BEFORE"]) / statistics.median(ms["AFTER"]), 3),
    # Each run against the one beside it: robust to the machine changing speed between pairs.
    "pair_speedup_median": round(statistics.median(b / a for b, a in zip(ms["BEFORE"], ms["AFTER"])), 3),
    "same_final_loss": len(losses) == 1,
}))' "$model" "$t"
    done
done
