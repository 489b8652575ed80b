#!/usr/bin/env bash
# Aggregated serving as separate processes: etcd, a frontend and N workers that prefill and decode.
# Usage: scripts/launch/agg.sh [WORKERS]. Environment as in disagg.sh; ROUTER=kv also starts nats-server for the
# workers' KV events.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
workers="${1:-1}"
start_etcd
events=()
if [[ "${ROUTER:-round-robin}" == kv ]]; then
    start_nats
    events=(--nats "nats://127.0.0.1:$NATS_PORT")
fi
for i in $(seq 0 $((workers - 1))); do
    run "worker-$i" "${tandem[@]}" worker --role both --instance-id "worker-$i" --model "$MODEL" --discovery "etcd://127.0.0.1:$ETCD_PORT" "${events[@]}"
done
run frontend "${tandem[@]}" frontend --model "$MODEL" --http-port "$HTTP_PORT" --discovery "etcd://127.0.0.1:$ETCD_PORT" --router "${ROUTER:-round-robin}" "${events[@]}"
wait_port "$HTTP_PORT" frontend
echo "launch: ready: http://127.0.0.1:$HTTP_PORT/v1 ($workers workers). Ctrl+C stops all." >&2
wait -n "${pids[@]}" || true
