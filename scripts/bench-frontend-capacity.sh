#!/usr/bin/env bash
# Can the frontend keep up with the GPUs it fronts? (docs/benchmarks.md, "Frontend capacity with mocker workers")
# 1. need:    one simulated H100 worker (mocker, real time) saturated by a closed loop: the request and token rates one
#             worker needs from its frontend.
# 2. ceiling: WORKERS mocker workers made nearly free (--speedup-ratio FAST): the frontend (HTTP, JSON, tokenization,
#             routing, SSE) is the only real work left, so its throughput is the frontend's ceiling on this machine.
# The load generator runs on the same cores, so the ceiling is a lower bound.
# Usage: scripts/bench-frontend-capacity.sh [OUT_DIR]
# env: WORKERS (8), CONCURRENCY (256), REQUESTS (2000), ISL (1024), OSL (128), FAST (1000), ROUTER (kv), PORT (18600)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/.artifacts/bench-frontend}"
workers="${WORKERS:-8}"; concurrency="${CONCURRENCY:-256}"; requests="${REQUESTS:-2000}"
isl="${ISL:-1024}"; osl="${OSL:-128}"; fast="${FAST:-1000}"; router="${ROUTER:-kv}"; port="${PORT:-18600}"
mkdir -p "$out"
"$root/tandem" --help > /dev/null  # build once, not in the server and the load generator started side by side

run() {  # run NAME WORKERS SPEEDUP
    local name="$1"
    "$root/tandem" serve --engine mocker --workers "$2" --speedup-ratio "$3" --router "$router" --router-seed 1 \
        --http-port "$port" --log-level warning --max-inflight-requests 4096 > "$out/serve-$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.2; done
    "$root/tandem" bench --url "http://127.0.0.1:$port" --model tandem-mocker --endpoint completions \
        --prompt-format token-ids --vocab-size 512 --isl "$isl" --osl "$osl" --concurrency "$concurrency" \
        --requests "$requests" --warmup-requests "$((concurrency / 4))" --output "$out/$name.json" > "$out/bench-$name.txt" 2>&1 || true
    kill -TERM "$pid"; wait "$pid" || true
    echo "== $name: $(grep -E 'Request throughput|Output token throughput' "$out/bench-$name.txt" | tr -s ' │' ' ' | tr '\n' ' ')"
}

run need 1 1
run ceiling "$workers" "$fast"
