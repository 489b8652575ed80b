#!/usr/bin/env bash
# Disaggregated vs aggregated serving on the same 2 cores, with `tandem bench` replaying mixed long/short prompt traffic
# at a fixed request rate (see docs/benchmarks.md):
#   agg:    2 `tandem worker --role both` processes, pinned to core 0 and core 1 (taskset), round-robin frontend;
#   disagg: 1 prefill worker on core 0 and 1 decode worker on core 1 (decode-first: prompts over
#           MAX_LOCAL_PREFILL uncached tokens are prefilled remotely, KV pushed over shared memory).
# etcd, nats-server, the frontend and the load generator are not pinned (they share both cores).
# Usage: scripts/bench-disagg.sh [OUT_DIR]
# Environment: MODEL (default: the 110m preset, written once), MODES ("agg disagg"), REQUESTS (60), RATE (0.5 req/s),
# LONG (768) / SHORT (64) prompt tokens, LONG_EVERY (4: one long prompt in 4), OSL (32), MAX_LOCAL_PREFILL (256),
# SLO_TTFT_MS (8000), SLO_TPOT_MS (200), REMOTE_PREFILL_TIMEOUT (30 s: how long the decode worker waits for a remote
# prefill; the prefill worker refuses what it estimates it cannot finish within it), CORES ("0 1"),
# HTTP_PORT/ETCD_PORT/NATS_PORT (18441/23801/24241).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mkdir -p "${1:-$root/.artifacts/bench-disagg}" && cd "${1:-$root/.artifacts/bench-disagg}" && pwd)"
export HTTP_PORT="${HTTP_PORT:-18441}" ETCD_PORT="${ETCD_PORT:-23801}" NATS_PORT="${NATS_PORT:-24241}"
requests="${REQUESTS:-60}" rate="${RATE:-0.5}" long="${LONG:-768}" short="${SHORT:-64}" every="${LONG_EVERY:-4}" osl="${OSL:-32}"
read -r core_a core_b <<<"${CORES:-0 1}"
if [ -z "${MODEL:-}" ]; then
    MODEL=/tmp/tandem-bench/m110.gguf
    [ -f "$MODEL" ] || "$root/tandem" model init --out "$MODEL" --preset 110m >/dev/null
fi
export MODEL
name="$(basename "$MODEL" .gguf)"

# The trace: request i arrives at i / RATE seconds; every LONG_EVERY-th prompt is LONG tokens, the others SHORT; no
# shared prefixes (every block has its own hash id).
trace="$out/trace.jsonl"
awk -v n="$requests" -v rate="$rate" -v long="$long" -v short="$short" -v every="$every" -v osl="$osl" 'BEGIN {
    id = 0
    for (i = 0; i < n; i++) {
        len = (i % every == every - 1) ? long : short
        ids = ""
        for (b = 0; b < int((len + 15) / 16); b++) { ids = ids (b ? "," : "") id; id++ }
        printf "{\"timestamp\": %d, \"input_length\": %d, \"output_length\": %d, \"hash_ids\": [%s]}\n", i * 1000 / rate, len, osl, ids
    }
}' >"$trace"

for mode in ${MODES:-agg disagg}; do
    logs="$out/$mode"
    rm -rf "$logs"
    mkdir -p "$logs"
    (
        export TANDEM_LOGS="$logs"
        source "$root/scripts/launch/common.sh"
        start_etcd
        common=(--model "$MODEL" --threads 1 --discovery "etcd://127.0.0.1:$ETCD_PORT")
        if [ "$mode" = agg ]; then
            run worker-0 taskset -c "$core_a" "${tandem[@]}" worker --role both --instance-id worker-0 "${common[@]}"
            run worker-1 taskset -c "$core_b" "${tandem[@]}" worker --role both --instance-id worker-1 "${common[@]}"
            run frontend "${tandem[@]}" frontend --model "$MODEL" --http-port "$HTTP_PORT" --discovery "etcd://127.0.0.1:$ETCD_PORT"
        else
            start_nats
            disagg=(--nats "nats://127.0.0.1:$NATS_PORT" --max-local-prefill-length "${MAX_LOCAL_PREFILL:-256}" --remote-prefill-timeout "${REMOTE_PREFILL_TIMEOUT:-30}")
            run prefill-0 taskset -c "$core_a" "${tandem[@]}" worker --role prefill --instance-id prefill-0 --log-level debug "${common[@]}" "${disagg[@]}"
            run decode-0 taskset -c "$core_b" "${tandem[@]}" worker --role decode --instance-id decode-0 --log-level debug "${common[@]}" "${disagg[@]}"
            run frontend "${tandem[@]}" frontend --model "$MODEL" --http-port "$HTTP_PORT" --discovery "etcd://127.0.0.1:$ETCD_PORT"
        fi
        wait_port "$HTTP_PORT" frontend
        # Wait until the frontend lists the workers, then one warm-up request per worker.
        for _ in $(seq 1 100); do
            curl -sf "http://127.0.0.1:$HTTP_PORT/v1/models" | grep -q "\"$name\"" && break
            sleep 0.3
        done
        "${tandem[@]}" bench --url "http://127.0.0.1:$HTTP_PORT" --model "$name" --endpoint completions --prompt-format token-ids \
            --vocab-size 512 --isl 16 --osl 4 --requests 4 --concurrency 2 >"$logs/warmup.txt" 2>&1 || true
        "${tandem[@]}" bench --url "http://127.0.0.1:$HTTP_PORT" --model "$name" --endpoint completions --prompt-format token-ids \
            --vocab-size 512 --trace "$trace" --trace-block-size 16 --seed 1 \
            --slo-ttft-ms "${SLO_TTFT_MS:-8000}" --slo-tpot-ms "${SLO_TPOT_MS:-200}" \
            --output "$out/$mode.json" --html "$out/$mode.html" | tee "$out/$mode.txt"
        curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$out/$mode.metrics" || true
    )
done
if [ -f "$out/agg.json" ] && [ -f "$out/disagg.json" ]; then
    "$root/tandem" bench --compare "$out/agg.json" "$out/disagg.json" | tee "$out/compare.txt"
fi
