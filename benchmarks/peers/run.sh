#!/usr/bin/env bash
# Tandem vs llama.cpp on the same GGUF files (110m preset, F32 and F16) and the same prompt token ids.
# Writes the models once, checks both engines produce the same greedy tokens, then runs `tandem engine-bench` and the
# llama.cpp harness alternately N times (the order flips every run) and prints medians and ratios.
# Usage: benchmarks/peers/run.sh [runs=3] [threads=2]
# Environment: PEERS_DIR (models and raw results, default /tmp/tandem-peers), BANDWIDTH_GBS (default 45.7, the
# measured 2-thread read bandwidth in docs/benchmarks.md), CONCURRENCY (default 1,4,16,32).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs="${1:-3}"
threads="${2:-2}"
dir="${PEERS_DIR:-/tmp/tandem-peers}"
concurrency="${CONCURRENCY:-1,4,16,32}"
mkdir -p "$dir"
[ -d "$here/llamacpp/node_modules/node-llama-cpp" ] || "$here/llamacpp/install.sh"

for dtype in f32 f16; do
    model="$dir/m110-$dtype.gguf"
    [ -f "$model" ] || "$root/tandem" model init --out "$model" --preset 110m --dtype "$dtype" --seed 1 >/dev/null
done

echo "== same greedy tokens? (first decode prompt, 16 tokens)"
for dtype in f32 f16; do
    model="$dir/m110-$dtype.gguf"
    t="$("$root/tandem" engine-bench --model "$model" --threads "$threads" --print-tokens 16)"
    l="$(node "$here/llamacpp/bench.mjs" --model "$model" --threads "$threads" --print-tokens 16)"
    node -e '
        const [t, l] = process.argv.slice(1, 3).map(s => JSON.parse(s));
        const same = t.prompt.join() === l.prompt.join();
        let n = 0; while (n < t.tokens.length && t.tokens[n] === l.tokens[n]) n++;
        console.log(`${process.argv[3]}: prompt ids ${same ? "equal" : "DIFFER"}, first ${n} of ${t.tokens.length} greedy tokens equal`);
        console.log(`  tandem    ${t.tokens.join(" ")}`);
        console.log(`  llama.cpp ${l.tokens.join(" ")}`);' "$t" "$l" "$dtype"
done

results="$dir/results-$(date +%Y%m%d-%H%M%S).jsonl"
echo "== $runs alternating runs, $threads threads (raw results: $results)"
for run in $(seq "$runs"); do
    for dtype in f32 f16; do
        model="$dir/m110-$dtype.gguf"
        order=(tandem llama.cpp)
        [ $((run % 2)) -eq 0 ] && order=(llama.cpp tandem)
        for engine in "${order[@]}"; do
            start=$SECONDS
            if [ "$engine" = tandem ]; then
                line="$("$root/tandem" engine-bench --model "$model" --threads "$threads" --concurrency "$concurrency" --runs 1 --json)"
            else
                line="$(node "$here/llamacpp/bench.mjs" --model "$model" --threads "$threads" --concurrency "$concurrency" --runs 1)"
            fi
            echo "{\"run\":$run,\"dtype\":\"$dtype\",\"result\":$line}" >>"$results"
            echo "run $run $dtype $engine: $((SECONDS - start)) s"
        done
    done
done
node "$here/summarize.mjs" "$results" "${BANDWIDTH_GBS:-45.7}"
