#!/usr/bin/env bash
# TensorRT-LLM's disaggregated workflow with Tandem processes on this machine: N context and M generation servers
# (`tandem worker --http-port --server-role`) and `tandem disagg -c disagg_config.yaml` in front (the file is written to
# the log folder in TensorRT-LLM's format). With METADATA=1 the servers register in etcd instead (`-m`), and more can
# join later with the same --metadata-server-config-file. One Ctrl+C stops all.
# Usage: scripts/launch/trtllm_disagg.sh [CONTEXT_SERVERS] [GENERATION_SERVERS]
# Environment: MODEL, HTTP_PORT (8000), SERVER_PORT (8001: first server port), ETCD_PORT (2379), METADATA (0|1),
# ROUTER (round_robin|load_balancing|kv_cache_aware), TANDEM_LOGS (log folder).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
context="${1:-2}"
generation="${2:-1}"
server_port="${SERVER_PORT:-8001}"
config="$logs/disagg_config.yaml"
metadata_args=()
if [ "${METADATA:-0}" = 1 ]; then
    start_etcd
    printf 'server_type: etcd\nhostname: 127.0.0.1\nport: %s\nhealth_check_timeout: 5.0\nrefresh_interval: 2.0\n' "$ETCD_PORT" > "$logs/metadata_config.yml"
    metadata_args=(--metadata-server-config-file "$logs/metadata_config.yml")
fi
urls() { for p in $(seq "$1" $(($1 + $2 - 1))); do printf '    - "localhost:%s"\n' "$p"; done; }
{
    printf 'hostname: localhost\nport: %s\nbackend: pytorch\n' "$HTTP_PORT"
    printf 'context_servers:\n  num_instances: %s\n  router:\n    type: %s\n' "$context" "${ROUTER:-round_robin}"
    [ "${METADATA:-0}" = 1 ] || { printf '  urls:\n'; urls "$server_port" "$context"; }
    printf 'generation_servers:\n  num_instances: %s\n  router:\n    type: %s\n' "$generation" "${ROUTER:-round_robin}"
    [ "${METADATA:-0}" = 1 ] || { printf '  urls:\n'; urls $((server_port + context)) "$generation"; }
} > "$config"
port="$server_port"
for i in $(seq 0 $((context - 1))); do
    run "context-$i" "${tandem[@]}" worker --model "$MODEL" --instance-id "context-$i" --http-port "$port" --server-role CONTEXT "${metadata_args[@]}"
    port=$((port + 1))
done
for i in $(seq 0 $((generation - 1))); do
    run "generation-$i" "${tandem[@]}" worker --model "$MODEL" --instance-id "generation-$i" --http-port "$port" --server-role GENERATION "${metadata_args[@]}"
    port=$((port + 1))
done
for p in $(seq "$server_port" $((port - 1))); do wait_port "$p" "server on port $p"; done
if [ "${METADATA:-0}" = 1 ]; then
    run disagg "${tandem[@]}" disagg -c "$config" -m "$logs/metadata_config.yml"
else
    run disagg "${tandem[@]}" disagg -c "$config"
fi
wait_port "$HTTP_PORT" "tandem disagg"
echo "launch: ready: http://localhost:$HTTP_PORT/v1 ($context context, $generation generation servers; config $config). Ctrl+C stops all." >&2
wait -n "${pids[@]}" || true
