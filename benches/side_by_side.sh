#!/usr/bin/env bash
# hdm's training step beside the peers (JAX + optax, PyTorch eager / fused / compile, NumPy, a
# hand-written Rust step), run alternately on this machine, several rounds; prints per-round
# ratios hdm / peer with their p10 / p50 / p90, the CPU and its vector width. Not run by CI.
#
#   bash benches/side_by_side.sh                  # the whole grid (long: about an hour)
#   ROUNDS=3 BATCHES="100" THREADS="1 2" OPTS="adam" PEERS="torch-eager jax" bash benches/side_by_side.sh
#   bash benches/side_by_side.sh --install        # first: a Python venv with the peers' packages
#
# Knobs (environment): ROUNDS (5), STEPS (timed steps per run, 1000), WARMUP (100), BATCHES
# ("1 32 100 1000"), THREADS ("1 2"), OPTS ("sgd adam hdm"; hdm is compared with Adam's peers),
# PEERS ("torch-eager torch-eager-fused torch-compile jax numpy mlp_mm"), PEERS_DIR (the peer
# programs, default ../shared/peers), VENV (default target/peers-venv), PEERS_BATCHES (batches hdm
# cycles through, default 1 as the peers do), OUT (the raw RESULT lines, default
# target/side_by_side.log).
#
# One thread means `taskset -c 0` and every library's thread count at 1, as the peers' README
# says. Each round runs hdm, then each peer, then hdm again per peer: the ratio of a round is
# hdm's median (the mean of the two hdm runs around the peer) over the peer's median.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/peers.sh

if [ "${1:-}" = "--install" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --upgrade pip
    # The exact versions the peers were measured with (torch pulls its CUDA wheels: about 3 GB).
    "$VENV/bin/pip" install -r "$PEERS_DIR/requirements.txt"
    echo "installed into $VENV"
    exit 0
fi

ROUNDS=${ROUNDS:-5}
STEPS=${STEPS:-1000}
WARMUP=${WARMUP:-100}
BATCHES=${BATCHES:-"1 32 100 1000"}
THREADS=${THREADS:-"1 2"}
OPTS=${OPTS:-"sgd adam hdm"}
PEERS=${PEERS:-"torch-eager torch-eager-fused torch-compile jax numpy mlp_mm"}
OUT=${OUT:-target/side_by_side.log}
cpu_line

cargo build --release --example peer_step >/dev/null 2>&1 || cargo build --release --example peer_step
HDM=target/release/examples/peer_step
MM=""
if [[ " $PEERS " == *" mlp_mm "* ]]; then
    (cd "$PEERS_DIR/mlp_mm" && cargo build --release --quiet --target-dir "$OLDPWD/target/mlp_mm") &&
        MM="target/mlp_mm/release/mlp_mm"
fi
: >"$OUT"

# Runs one program with the thread settings of `threads`; prints its RESULT line.
run() {
    local threads=$1
    shift
    local pin=()
    if [ "$threads" = 1 ]; then
        pin=(taskset -c 0)
        export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MATMUL_NUM_THREADS=1
        export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else
        unset OMP_NUM_THREADS MKL_NUM_THREADS OPENBLAS_NUM_THREADS XLA_FLAGS
        export MATMUL_NUM_THREADS=$threads
    fi
    "${pin[@]}" "$@" 2>/dev/null | grep '^RESULT' | tee -a "$OUT" || true
}

peer_cmd() { # peer opt threads -> the command line
    local peer=$1 opt=$2 threads=$3
    case $peer in
        torch-*) echo "$PY $PEERS_DIR/torch_peer.py mlp $opt $threads $STEPS $WARMUP ${peer#torch-}" ;;
        jax) echo "$PY $PEERS_DIR/jax_peer.py mlp $opt $threads $STEPS $WARMUP" ;;
        numpy) echo "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PY $PEERS_DIR/numpy_peer.py mlp $opt $threads $STEPS $WARMUP" ;;
        mlp_mm) [ -n "$MM" ] && echo "$MM mlp $opt $STEPS $WARMUP" ;;
    esac
}

median_of() { sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' <<<"$1"; }

declare -A ratios
for round in $(seq 1 "$ROUNDS"); do
    for batch in $BATCHES; do
        export PEERS_BATCH=$batch
        for threads in $THREADS; do
            for opt in $OPTS; do
                peer_opt=$opt
                [ "$opt" = hdm ] && peer_opt=adam
                for peer in $PEERS; do
                    # The hand-written step runs on one thread unless built with threading, and
                    # always at batch 100 (it does not read PEERS_BATCH).
                    [ "$peer" = mlp_mm ] && { [ "$threads" != 1 ] || [ "$batch" != 100 ]; } && continue
                    cmd=$(peer_cmd "$peer" "$peer_opt" "$threads") || continue
                    [ -z "$cmd" ] && continue
                    a=$(run "$threads" "$HDM" mlp "$opt" "$threads" "$STEPS" "$WARMUP")
                    p=$(run "$threads" $cmd)
                    b=$(run "$threads" "$HDM" mlp "$opt" "$threads" "$STEPS" "$WARMUP")
                    [ -z "$p" ] && { echo "# $peer did not run (not installed?)" >&2; continue; }
                    r=$(awk -v a="$(median_of "$a")" -v b="$(median_of "$b")" -v p="$(median_of "$p")" \
                        'BEGIN { printf "%.3f", (a + b) / 2 / p }')
                    key="$opt b=$batch t=$threads $peer"
                    ratios[$key]="${ratios[$key]:-} $r"
                    echo "round $round: $key hdm/peer = $r"
                done
            done
        done
    done
done

echo
echo "hdm / peer, per-round ratios of median step times (below 1: hdm faster); $ROUNDS rounds"
print_ratios ratios 34
echo "raw RESULT lines in $OUT"
