# Sourced by the sweep benchmarks (jobs.sh, batch_arms.sh): moves to the repository root,
# builds the release binary, makes a scratch folder `$work` removed on exit, and defines
# `seconds CMD...`, which runs CMD and prints its wall time in seconds.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --quiet --bin ticketlab
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    python3 -c "print(round($end - $start, 2))"
}
