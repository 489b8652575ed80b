#!/usr/bin/env bash
# Disaggregated serving as separate processes on this machine: etcd, nats-server, a frontend, N prefill workers and
# M decode workers. One Ctrl+C stops all. Usage: scripts/launch/disagg.sh [PREFILL_WORKERS] [DECODE_WORKERS]
# Environment: MODEL, HTTP_PORT (8000), ETCD_PORT (2379), NATS_PORT (4222), STRATEGY (decode-first|prefill-first),
# ROUTER (round-robin|least-loaded|kv), MAX_LOCAL_PREFILL (512), TANDEM_LOGS (log folder).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
prefill="${1:-1}"
decode="${2:-1}"
start_etcd
start_nats
common=(--model "$MODEL" --discovery "etcd://127.0.0.1:$ETCD_PORT" --nats "nats://127.0.0.1:$NATS_PORT" --max-local-prefill-length "${MAX_LOCAL_PREFILL:-512}")
for i in $(seq 0 $((prefill - 1))); do run "prefill-$i" "${tandem[@]}" worker --role prefill --instance-id "prefill-$i" "${common[@]}"; done
for i in $(seq 0 $((decode - 1))); do run "decode-$i" "${tandem[@]}" worker --role decode --instance-id "decode-$i" "${common[@]}"; done
# --nats: the decode workers' KV events reach the frontend's router (used by ROUTER=kv).
run frontend "${tandem[@]}" frontend --model "$MODEL" --http-port "$HTTP_PORT" --discovery "etcd://127.0.0.1:$ETCD_PORT" \
    --nats "nats://127.0.0.1:$NATS_PORT" --router "${ROUTER:-round-robin}" --strategy "${STRATEGY:-decode-first}"
wait_port "$HTTP_PORT" frontend
echo "launch: ready: http://127.0.0.1:$HTTP_PORT/v1 ($prefill prefill, $decode decode workers). Ctrl+C stops all." >&2
wait -n "${pids[@]}" || true
