#!/usr/bin/env bash
# Single-sequence engine throughput of the 110m preset: prefill and decode tokens/s per weight type, with the
# decode weight traffic in GB/s. Usage: scripts/bench-engine.sh [runs=3] [threads=2]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-3}"
threads="${2:-2}"
dir="${TANDEM_BENCH_DIR:-/tmp/tandem-bench}"
mkdir -p "$dir"
prompt="$(printf 'the quick brown fox jumps over the lazy dog and then it runs into the forest to find a little bird %.0s' 1 2 3 4)"
for dtype in f32 f16 q8_0; do
    model="$dir/m110-$dtype.gguf"
    [ -f "$model" ] || "$root/tandem" model init --out "$model" --preset 110m --dtype "$dtype" --seed 1 >/dev/null
    for run in $(seq "$runs"); do
        "$root/tandem" generate --model "$model" --prompt "$prompt" --max-tokens 128 --ignore-eos --temperature 0 \
            --threads "$threads" --verbose 2>&1 >/dev/null | awk -v d="$dtype" -v r="$run" '
            /^prefill:/ { n = $2; p = $7; gsub(/\(/, "", p) }
            /^decode:/ { dec = $7; gsub(/\(/, "", dec) }
            /^decode weight traffic/ { mb = $4; gbs = $(NF-1) }
            END { printf "%-5s run %d  prefill of %s tokens %s tokens/s  decode %s tokens/s  %s MB/token  %s GB/s\n", d, r, n, p, dec, mb, gbs }'
    done
done
