#!/usr/bin/env bash
# KV-aware vs round-robin routing on mocker workers, replaying a prefix-heavy synthetic trace (docs/benchmarks.md).
# Usage: scripts/bench-kv-routing.sh [OUT_DIR]
# env: WORKERS, REQUESTS, SPEEDUP (engine --speedup-ratio and trace --speedup alike: equal simulated load), RATE
#      (conversations/s), TRACE_ARGS (extra `trace generate` flags), ROUTERS (space-separated; "kv:W" = kv with
#      --kv-overlap-score-weight W), PORT, TRACE (replay this Mooncake-format file instead of a generated trace: its
#      first REQUESTS requests; RATE and TRACE_ARGS then do not apply)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/.artifacts/bench-kv}"
workers="${WORKERS:-8}"; requests="${REQUESTS:-2000}"; speedup="${SPEEDUP:-4}"; rate="${RATE:-4}"
routers="${ROUTERS:-round-robin kv}"; port="${PORT:-18500}"
mkdir -p "$out"
"$root/tandem" --help > /dev/null  # build once here, not in the server and the load generator started side by side
if [ -n "${TRACE:-}" ]; then
    trace="$TRACE"
else
    trace="$out/trace.jsonl"
    "$root/tandem" trace generate --output "$trace" --requests "$requests" --conversation-rate "$rate" --seed 1 ${TRACE_ARGS:-}
fi
for spec in $routers; do
    router="${spec%%:*}"; extra=()
    if [ "$spec" != "$router" ]; then extra=(--kv-overlap-score-weight "${spec#*:}"); fi
    router_tag="${spec/:/-w}"
    "$root/tandem" serve --engine mocker --decode-workers "$workers" --router "$router" --router-seed 1 "${extra[@]}" \
        --speedup-ratio "$speedup" --http-port "$port" --log-level warning --max-inflight-requests 4096 > "$out/serve-$router_tag.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.2; done
    "$root/tandem" bench --url "http://127.0.0.1:$port" --model tandem-mocker --trace "$trace" --trace-block-size 512 \
        --speedup "$speedup" --requests "$requests" --endpoint completions --prompt-format token-ids --vocab-size 512 \
        --output "$out/$router_tag.json" > "$out/bench-$router_tag.txt" 2>&1 || true
    curl -s "http://127.0.0.1:$port/metrics" > "$out/metrics-$router_tag.txt"
    kill -TERM "$pid"; wait "$pid" || true  # SIGTERM: background jobs of a script ignore SIGINT
    hits=$(awk '/^tandem_worker_prefix_cache_hit_tokens/ {s+=$2} END {print s+0}' "$out/metrics-$router_tag.txt")
    queried=$(awk '/^tandem_worker_prefix_cache_queried_tokens/ {s+=$2} END {print s+0}' "$out/metrics-$router_tag.txt")
    echo "== $spec: prefix cache hit rate $(awk -v h="$hits" -v q="$queried" 'BEGIN {printf "%.3f", (q > 0 ? h / q : 0)}') ($hits / $queried tokens)" | tee "$out/hits-$router_tag.txt"
    sed -n '/Summary\|TTFT\|throughput\|requests/Ip' "$out/bench-$router_tag.txt" | head -40
done
