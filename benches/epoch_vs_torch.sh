#!/usr/bin/env bash
# The `mnist` example's training epoch (MLP 784-500-500-10, Adam, batch 100) beside PyTorch's
# (`../shared/peers/torch_mnist.py`, eager and fused Adam), run alternately on this machine, several
# rounds; prints per-round ratios of median epoch seconds hdm / torch with p10 / p50 / p90. Both
# time the same thing: the shuffle, the gather of each batch, forward, loss, backward, update;
# evaluation and printing are outside the timer. Not run by CI (it needs torch:
# `bash benches/side_by_side.sh --install` makes the venv).
#
#   bash benches/epoch_vs_torch.sh
#   ROUNDS=3 DATA=../shared/data/fashion-mnist EPOCHS=4 bash benches/epoch_vs_torch.sh
#
# Knobs (environment): ROUNDS (5), EPOCHS (per run, 10; the first epoch is left out of the
# median, as torch_mnist.py does), THREADS (2), VARIANTS ("fused eager"), DATA (a folder with the
# IDX files, default ../shared/data/mnist), PEERS_DIR (../shared/peers), VENV (target/peers-venv),
# FTZ (1: both flush subnormals, hdm with `--flush-subnormals`, torch with
# `torch.set_flush_denormal(True)` before the script runs; default 0, neither).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/peers.sh

ROUNDS=${ROUNDS:-5}
EPOCHS=${EPOCHS:-10}
THREADS=${THREADS:-2}
VARIANTS=${VARIANTS:-"fused eager"}
DATA=${DATA:-../shared/data/mnist}
FTZ=${FTZ:-0}
cpu_line
echo "$THREADS threads; data $DATA; $EPOCHS epochs per run; subnormals flushed: $FTZ"

cargo build --release --example mnist >/dev/null 2>&1 || cargo build --release --example mnist
OUTDIR=$(mktemp -d)
trap 'rm -rf "$OUTDIR"' EXIT

# The median over epochs 2.. of the per-epoch training seconds in an hdm run's metrics.csv
# (its wall_s column is cumulative and counts only training).
hdm_epoch() {
    local flush=()
    [ "$FTZ" = 1 ] && flush=(--flush-subnormals)
    target/release/examples/mnist --data "$DATA" --optimizers adam --epochs "$EPOCHS" \
        --threads "$THREADS" --quiet --out "$OUTDIR" "${flush[@]}"
    awk -F, -v e="$EPOCHS" 'NR > 1 { d = $4 - prev; prev = $4; if (NR > 2 || e == 1) print d }' \
        "$OUTDIR/metrics.csv" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

torch_epoch() {
    local script="$PEERS_DIR/torch_mnist.py"
    if [ "$FTZ" = 1 ]; then
        "$PY" -c 'import runpy, sys, torch
torch.set_flush_denormal(True)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$script" "$DATA" "$EPOCHS" "$THREADS" "$1"
    else
        "$PY" "$script" "$DATA" "$EPOCHS" "$THREADS" "$1"
    fi |
        sed -n 's/^RESULT.*median_epoch_s=\([0-9.]*\).*/\1/p'
}

declare -A ratios
for round in $(seq 1 "$ROUNDS"); do
    for variant in $VARIANTS; do
        a=$(hdm_epoch)
        p=$(torch_epoch "$variant")
        b=$(hdm_epoch)
        [ -z "$p" ] && { echo "# torch_mnist.py did not run (is torch installed? see --install above)" >&2; exit 1; }
        r=$(awk -v a="$a" -v b="$b" -v p="$p" 'BEGIN { printf "%.3f", (a + b) / 2 / p }')
        ratios[torch-$variant]="${ratios[torch-$variant]:-} $r"
        echo "round $round: hdm $a / $b s, torch-$variant $p s per epoch: hdm/torch = $r"
    done
done

echo
echo "hdm / torch, per-round ratios of median epoch seconds (below 1: hdm faster); $ROUNDS rounds"
print_ratios ratios 14
