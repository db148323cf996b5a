#!/usr/bin/env bash
# Compile time of #[network] (issue 6, item 4): how long the macro takes to expand a 4-layer and
# a 32-layer network, and how long a crate holding them takes to build.
#
#   bash benches/compile_time.sh            # from the repository root; a few minutes on 2 cores
#   REPEAT=9 bash benches/compile_time.sh   # runs per figure (default 5; medians are printed)
#   CTIME_DIR=/tmp/ctime bash benches/compile_time.sh   # keep (and reuse) the throwaway crate
#
# The networks: `chain4` and `chain32`, structs of `Linear` fields (784 -> 64 -> ... -> 64 -> 10)
# with a `Relu` field between each two, and `graph32`, the same 32 layers written as a
# `forward = |x| { let h0 = relu(fc0(x)); ... }` closure. The ignored unit test `expansion_time`
# of hdm-macros generates them (src/network/tests.rs), so both tables measure the same code.
#
# Table 1, the macro in-process: `network::expand` timed phase by phase on proc-macro2 token
# streams (release build). This isolates our code, but outside rustc every token is cheap to make;
# inside it the tokens cross the proc-macro bridge.
#
# Table 2, the macro and the build in context: a throwaway crate in a temporary folder, with a path
# dependency on this repository's `hdm` and one cargo feature per network, each with a function
# that runs one Adam step and one forward pass, so that a build generates the network's code for
# f32. Dependencies are built first; then each figure is the median of REPEAT fresh compiles of
# the crate alone (the crate's file is touched, CARGO_INCREMENTAL=0):
#   expand_ms   rustc's `expand_crate` time (`-Z time-passes`) with the network, minus the
#               crate's without any network: the macro plus rustc's expansion of what it emits
#               (the `#[derive]`s, `vec!`s and `format!`s of the generated code). The fastest run
#               is in brackets: on a shared machine the median carries the other jobs' load.
#   emitted_ms  the same for the macro's output pasted in as source (`<net>_expanded.rs`): the
#               compiler's share. expand_ms - emitted_ms is the macro's own share, bridge included.
#   check_s, debug_s, release_s   wall time of `cargo check`, `cargo build`, `cargo build --release`.
# `-Z time-passes` is unstable: a RUSTC_WORKSPACE_WRAPPER sets RUSTC_BOOTSTRAP=1 for the rustc
# that compiles the throwaway crate and for nothing else, only to read the compiler's own timer on
# the pinned stable toolchain (its dependencies, hdm's macro among them, are built as usual).
# Timing is printed, never asserted. Needs bash 5, cargo and rustup (the crate uses the pinned
# toolchain), awk.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
REPEAT="${REPEAT:-5}"
if [ -n "${CTIME_DIR:-}" ]; then
    WORK="$(mkdir -p "$CTIME_DIR" && cd "$CTIME_DIR" && pwd)"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/hdm-ctime.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
fi
CRATE="$WORK/hdm-ctime"
NETS=(chain4 chain32 graph32)
mkdir -p "$CRATE/src"
export CARGO_TARGET_DIR="$WORK/target" CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never

cpu="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
echo "compile time of #[network], $(date -u +%Y-%m-%d), $(nproc) cores ${cpu:+($cpu)}, $(rustc --version)"
echo
echo "1. the macro in-process: cargo test -p hdm-macros --release -- --ignored --nocapture expansion_time"
(cd "$REPO" && cargo test -q -p hdm-macros --release --lib --no-run &&
    HDM_DUMP_EXPANSIONS="$CRATE/src" cargo test -q -p hdm-macros --release --lib \
        -- --ignored --nocapture expansion_time 2>/dev/null | grep -E '^(network|chain|graph) ')

# --- the throwaway crate ---------------------------------------------------------------------
cp "$REPO/rust-toolchain.toml" "$CRATE/"
[ -f "$CRATE/Cargo.lock" ] || cp "$REPO/Cargo.lock" "$CRATE/" # the repository's dependency versions
{
    cat <<EOF
[package]
name = "hdm-ctime"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
hdm = { path = "$REPO", default-features = false }

[features]
EOF
    for net in "${NETS[@]}"; do printf '%s = []\n%s_expanded = []\n' "$net" "$net"; done
} >"$CRATE/Cargo.toml"

echo "//! Networks for hdm's benches/compile_time.sh, one cargo feature each." >"$CRATE/src/lib.rs"
for net in "${NETS[@]}"; do
    name="${net^}" # chain32 -> Chain32, the struct's name
    for variant in "$net" "${net}_expanded"; do
        printf '#[cfg(feature = "%s")]\npub mod %s;\n' "$variant" "$variant" >>"$CRATE/src/lib.rs"
        body="$(cat "$CRATE/src/$variant.rs")"
        cat >"$CRATE/src/$variant.rs" <<EOF
use hdm::ndarray::{ArrayView1, ArrayView2};
use hdm::prelude::*;

$body

/// One Adam step and a forward pass, so that the build generates the network's code for f32.
pub fn train(x: ArrayView2<'_, f32>, labels: ArrayView1<'_, usize>) -> hdm::Result<f32> {
    let mut model = $name::init(0);
    let mut trainer = model.trainer(Adam::default(), x.nrows());
    let loss = trainer.step(&mut model, x, labels)?;
    model.forward(x)?;
    Ok(loss)
}
EOF
    done
done
rm -f "$CRATE"/src/{chain,graph}128*.rs "$CRATE"/src/graph4*.rs # dumped, not used here
rustfmt --edition 2021 "$CRATE"/src/*.rs 2>/dev/null || true   # for readers of CTIME_DIR only

# A RUSTC_WORKSPACE_WRAPPER (cargo runs it as `wrapper rustc ARGS...`): -Z time-passes for the
# throwaway crate, everything else as usual.
cat >"$WORK/time-passes-rustc" <<'EOF'
#!/bin/sh
rustc="$1"
shift
case " $* " in
*" --crate-name hdm_ctime "*) RUSTC_BOOTSTRAP=1 exec "$rustc" "$@" -Z time-passes ;;
esac
exec "$rustc" "$@"
EOF
chmod +x "$WORK/time-passes-rustc"

cd "$CRATE"
all="$(
    IFS=,
    echo "${NETS[*]}"
)"
echo
echo "2. the macro and the build in context: a crate with the networks, in $WORK"
echo "   (building its dependencies first: debug, release, check)"
cargo build -q --lib --features "$all"
cargo build -q --release --lib --features "$all"
cargo check -q --lib --features "$all"

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# "median min" of the numbers on stdin.
median_min() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[1] }'; }

# Seconds of rustc's expand_crate for the crate with features $1: "median min".
expand_s() {
    local i
    for ((i = 0; i < REPEAT; i++)); do
        touch src/lib.rs
        RUSTC_WORKSPACE_WRAPPER="$WORK/time-passes-rustc" cargo check -q --lib --no-default-features --features "$1" 2>&1 |
            awk '$NF == "expand_crate" { sub(";", "", $2); print $2 }'
    done | median_min | grep '[0-9]' || {
        echo "error: no expand_crate line in rustc's -Z time-passes output (features: '$1')" >&2
        exit 1
    }
}

# Wall seconds of `cargo $2...` for the crate alone with features $1.
build_s() {
    local i t0
    for ((i = 0; i < REPEAT; i++)); do
        touch src/lib.rs
        t0=$EPOCHREALTIME
        cargo "${@:2}" -q --lib --no-default-features --features "$1"
        awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { print a - b }'
    done | median
}

# Milliseconds of "median min" seconds $1 over "median min" seconds $2: "median (min)".
ms_over() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f (%.0f)", (x[1] - y[1]) * 1000, (x[2] - y[2]) * 1000 }'; }

base="$(expand_s "")"
printf '%-12s %6s %12s %12s %8s %8s %10s\n' network layers expand_ms emitted_ms check_s debug_s release_s
printf '%-12s %6s %12s %12s %8.2f %8.2f %10.2f\n' "(none)" 0 - - \
    "$(build_s "" check)" "$(build_s "" build)" "$(build_s "" build --release)"
for net in "${NETS[@]}" all; do
    if [ "$net" = all ]; then
        feat="$all" label="all three" layers=68 emitted=-
    else
        feat="$net" label="$net" layers="${net//[a-z]/}"
        emitted="$(ms_over "$(expand_s "${net}_expanded")" "$base")"
    fi
    printf '%-12s %6s %12s %12s %8.2f %8.2f %10.2f\n' "$label" "$layers" "$(ms_over "$(expand_s "$feat")" "$base")" \
        "$emitted" "$(build_s "$feat" check)" "$(build_s "$feat" build)" "$(build_s "$feat" build --release)"
done
echo "(medians of $REPEAT runs, the fastest in brackets; expand_crate of the crate without networks,"
echo " subtracted: $(ms_over "$base" "0 0") ms)"
