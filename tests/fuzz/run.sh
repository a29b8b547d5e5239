#!/usr/bin/env bash
# Runs the experiment-file fuzz harness (dsl/tests/fuzz.rs) on many cases in release mode and
# prints the counts: tests/fuzz/run.sh [CASES [SEED]] (default 100000 cases, seed 20261203).
# A panic, a slow case or an error without a location fails, printing the input that caused it.
set -euo pipefail
cd "$(dirname "$0")/../.."
export FUZZ_CASES="${1:-100000}" FUZZ_SEED="${2:-20261203}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --release -p ticketlab-dsl --test dsl fuzz -- --nocapture >"$log" 2>&1 || status=$?
grep -E "^fuzz:" "$log" || true
if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
fi
exit "$status"
