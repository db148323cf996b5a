# Sourced by side_by_side.sh and epoch_vs_torch.sh (from the repository's root): where the peer
# programs and their Python are, the CPU line both print first, and their table of per-round
# ratios.

PEERS_DIR=${PEERS_DIR:-../shared/peers}
VENV=${VENV:-target/peers-venv}
PY=python3
[ -x "$VENV/bin/python" ] && PY="$VENV/bin/python"

# "CPU: <name> (family F model M), N logical CPUs, vectors: <widest>; <date>".
cpu_line() {
    field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }
    local flags width="SSE2 (128-bit)"
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    case "$flags" in *avx2*) width="AVX2 (256-bit)" ;; esac
    case "$flags" in *avx512f*) width="AVX-512 (512-bit)" ;; esac
    echo "CPU: $(field 'model name') (family $(field 'cpu family') model $(field model)), $(nproc) logical CPUs," \
        "vectors: $width; $(date -u +%Y-%m-%d)"
}

# print_ratios ARRAY WIDTH: one row per key of the associative array named ARRAY (its value: the
# rounds' ratios, separated by spaces), with their p10, p50 and p90 and the sorted ratios; the
# first column WIDTH characters wide; rows sorted by key.
print_ratios() {
    local -n ratios_of=$1
    local width=$2 key vals
    printf "%-${width}s %7s %7s %7s  %s\n" case p10 p50 p90 rounds
    for key in "${!ratios_of[@]}"; do
        # shellcheck disable=SC2086
        vals=$(printf '%s\n' ${ratios_of[$key]} | sort -g | tr '\n' ' ')
        awk -v k="$key" -v vals="$vals" -v w="$width" 'BEGIN {
            n = split(vals, v, " ");
            p10 = v[int((n - 1) * 0.1 + 0.5) + 1]; p50 = v[int((n - 1) * 0.5 + 0.5) + 1]; p90 = v[int((n - 1) * 0.9 + 0.5) + 1];
            printf "%-" w "s %7.3f %7.3f %7.3f  %s\n", k, p10, p50, p90, vals
        }'
    done | sort
}
