#!/usr/bin/env bash
# hdm's convolutional training steps beside PyTorch eager's, on this machine, alternating the two
# programs so that a noisy host slows both alike: ROUNDS rounds (default 3) of `bench` (cnn,
# dcgan-d, and gan: one DCGAN iteration) then `benches/torch_step.py`, every row as JSON lines
# on stdout, the CPU first.
#
#   bash benches/conv_vs_torch.sh > runs/conv_vs_torch.jsonl
#
# Needs torch: in the peers' venv (`bash benches/side_by_side.sh --install`, used when present) or
# the system's python3 (`pip install torch`); without it, only hdm's rows are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-1,2}"
BATCHES="${BATCHES:-64,128}"
SECONDS_PER_ROW="${SECONDS_PER_ROW:-2}"
WORKLOADS="${WORKLOADS:-cnn,dcgan-d,gan}"

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
flags="$(grep -m1 '^flags' /proc/cpuinfo)"
simd="avx2"
case "$flags" in *avx512f*) simd="avx512f" ;; esac
echo "{\"cpu\":\"$cpu\",\"cores\":$(nproc),\"widest\":\"$simd\"}"

cargo build --release --example bench >&2
# shellcheck source=benches/peers.sh
. benches/peers.sh
have_torch=0
if "$PY" -c "import torch" 2>/dev/null; then have_torch=1; else echo "torch not installed: hdm rows only" >&2; fi
for round in $(seq "$ROUNDS"); do
    ./target/release/examples/bench --json --workloads "$WORKLOADS" --threads "$THREADS" \
        --conv-batches "$BATCHES" --seconds "$SECONDS_PER_ROW" | sed "s/^{/{\"round\":$round,\"framework\":\"hdm\",/"
    if [ "$have_torch" = 1 ]; then
        "$PY" benches/torch_step.py --workloads "$WORKLOADS" --threads "$THREADS" --batches "$BATCHES" --seconds "$SECONDS_PER_ROW" \
            | sed "s/^{/{\"round\": $round, /"
    fi
done
