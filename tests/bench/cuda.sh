#!/usr/bin/env bash
# The CUDA checks and benchmarks, in two halves: the GPU machines lent here have CUDA, PyTorch
# and no Rust toolchain or network, and the machines with Rust have no CUDA.
#
#   tests/bench/cuda.sh pack   # on a machine with Rust: builds ticketlab and the tensor crate's
#                              # tests with `--features cuda` into .device/
#   tests/bench/cuda.sh run    # on the GPU machine, from the repository root, with .device/
#                              # beside it: everything below, logged to $OUT/cuda.log
#
# `run` records the GPU and the libraries found, runs the tensor crate's gradient, optimizer and
# session tests with TICKETLAB_BACKEND=cuda (each checks the compiled graph against an f64
# reference or the CPU's rules, and `each_step_reads_the_weights_the_last_one_wrote` catches a
# device that keeps stale weights), times `ticketlab bench` for the three models against
# PyTorch on the same GPU (tests/bench/torch_step.py with BENCH_DEVICE=cuda), alternately,
# REPEATS times (default 2), and times a batched sweep (tests/bench/batch_arms.sh, one run each
# way). Every step has its own time limit, so one that hangs costs its limit, not the lease,
# and the whole run ends within BUDGET seconds (default 540: the device tool's 600 s a call,
# less the start), skipping what no longer fits; the log so far is in $OUT either way.
#
# `pack` needs no CUDA toolkit: it links against stub libraries holding a function for every
# function luminal_cudarc declares (each named libX.so, libcuda.so.1 for the driver; each
# returns 100, CUDA_ERROR_NO_DEVICE, so a binary run against the stubs meets "no GPU"), and
# `run` points those names at the machine's real libraries. The binaries bind lazily
# (`-z lazy`), so a function this CUDA lacks fails only where it is called; `run` lists any
# such with `ldd -r`.
set -uo pipefail
cd "$(dirname "$0")/../.."
libs=(cuda nvrtc cublas cublasLt curand)

soname() { if [ "$1" = cuda ]; then echo libcuda.so.1; else echo "lib$1.so"; fi; }

pack() {
    set -e
    local stubs=target/cuda/stubs
    mkdir -p "$stubs/include" "$stubs/lib64" .device
    : > "$stubs/include/cuda.h" # build.rs takes a folder with include/cuda.h for a toolkit
    local cudarc
    cudarc=$(cargo metadata --format-version 1 --locked --all-features \
        --filter-platform "$(rustc -vV | sed -n "s/^host: //p")" | python3 -c '
import json, os, sys
print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "luminal_cudarc"))')
    local lib module
    for lib in "${libs[@]}"; do
        case $lib in cuda) module=driver ;; cublasLt) module=cublaslt ;; *) module=$lib ;; esac
        python3 - "$cudarc/src/$module/sys.rs" > "$stubs/$lib.c" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
for block in re.findall(r'extern "C" \{(.*?)\n\}', text, re.S):
    for name in re.findall(r"pub fn (\w+)\s*\(", block):
        print(f"int {name}(void) {{ return 100; }}")
PY
        cc -shared -fPIC -o "$stubs/lib64/lib$lib.so" -Wl,-soname,"$(soname "$lib")" "$stubs/$lib.c"
    done
    export CUDA_ROOT="$PWD/$stubs" CARGO_TARGET_DIR=target/cuda RUSTFLAGS="-C link-arg=-Wl,-z,lazy"
    cargo build --release --locked -p ticketlab --features cuda
    local tests
    tests=$(cargo test --release --locked -p ticketlab-tensor --features cuda --lib --no-run \
        --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
    cp target/cuda/release/ticketlab .device/ticketlab
    cp "$tests" .device/tensor-tests
    echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes')" > .device/commit
    ls -l .device
    echo "carry .device to the GPU machine and run: tests/bench/cuda.sh run"
}

# The first real (not stub) file of lib$1 on this machine.
find_lib() {
    local pattern="lib$1.so"
    {
        ldconfig -p | awk -v p="$pattern" 'index($1, p) == 1 { print $NF }'
        ls -1 /usr/local/nvidia/lib64/"$pattern"* /usr/local/cuda/lib64/"$pattern"* \
            /usr/local/cuda/targets/x86_64-linux/lib/"$pattern"* \
            "$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)"/*/lib/"$pattern"*
    } 2>/dev/null | grep -v /stubs/ | grep -E "/$pattern(\.[0-9]+)*$" | head -1
}

step() { # LIMIT_SECONDS TITLE COMMAND...: runs one step under its own limit, within the budget
    local limit=$1 title=$2
    shift 2
    echo
    echo "## $title"
    echo "\$ $*"
    local left=$((budget - SECONDS))
    ((left > 0)) || { echo "(skipped: the ${budget} s budget is spent)"; return; }
    ((limit < left)) || limit=$left
    local start=$SECONDS
    timeout "$limit" "$@"
    echo "(exit $?, $((SECONDS - start)) s)"
}

run() {
    local out="${OUT:-cuda-out}" repeats="${REPEATS:-2}"
    budget="${BUDGET:-540}"
    mkdir -p "$out"
    [ -x .device/ticketlab ] && [ -x .device/tensor-tests ] \
        || { echo ".device/ticketlab or .device/tensor-tests is missing: run 'tests/bench/cuda.sh pack' where Rust is, and carry .device" >&2; exit 2; }
    local links=/tmp/ticketlab-cuda-libs lib real
    local path=$links
    mkdir -p "$links"
    {
        echo "# ticketlab CUDA checks, $(date -u), commit $(cat .device/commit 2>/dev/null || echo unknown)"
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
        for lib in "${libs[@]}"; do
            real=$(find_lib "$lib")
            echo "lib$lib: ${real:-NOT FOUND}"
            [ -n "$real" ] && ln -sf "$real" "$links/$(soname "$lib")" && path="$path:$(dirname "$real")"
        done
        # The real folders too: nvrtc loads its builtins from beside itself.
        export LD_LIBRARY_PATH="$path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        # luminal_cuda's kernels include cuda_fp16.h from /usr/local/cuda/include, a fixed path.
        if [ ! -f /usr/local/cuda/include/cuda_fp16.h ]; then
            local header
            header=$(find /usr /opt -name cuda_fp16.h -path '*include*' 2>/dev/null | head -1)
            echo "/usr/local/cuda/include has no cuda_fp16.h; linking the folder of ${header:-none found}"
            [ -n "$header" ] && mkdir -p /usr/local/cuda && ln -sfn "$(dirname "$header")" /usr/local/cuda/include
        fi
        step 30 "unresolved symbols (none expected)" bash -c 'ldd -r .device/ticketlab 2>&1 | grep -i "undefined\|not found"'
        export TICKETLAB_BACKEND=cuda RUST_BACKTRACE=1
        step 150 "gradient, optimizer and session tests on CUDA" .device/tensor-tests --test-threads 1 \
            grad_ gradients_match hessian masked_weights session_is_deterministic each_step_reads
        local model i
        for model in mlp transformer mnist; do
            for i in $(seq "$repeats"); do
                step 60 "$model: ticketlab, run $i" .device/ticketlab bench --model "$model" --steps 200 --warmup 20 --json
                step 60 "$model: PyTorch, run $i" env BENCH_DEVICE=cuda python3 tests/bench/torch_step.py "$model" 200 20
            done
        done
        step 180 "a batched sweep of six quickstart tickets, against each alone" \
            env BIN=.device/ticketlab REPEATS=1 JOBS=1 THREADS=1 tests/bench/batch_arms.sh
    } 2>&1 | tee "$out/cuda.log"
}

case "${1:-}" in
    pack) pack ;;
    run) run ;;
    *) echo "usage: tests/bench/cuda.sh pack|run (see the comment at its top)" >&2; exit 2 ;;
esac
