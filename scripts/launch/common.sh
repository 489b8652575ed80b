#!/usr/bin/env bash
# Shared by the launch scripts: start etcd and nats-server on this machine, run processes with logs in one folder,
# and stop everything on Ctrl+C or when any process exits.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
logs="${TANDEM_LOGS:-$root/.artifacts/launch-logs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$logs"
pids=()

cleanup() {
    trap - INT TERM EXIT
    echo "launch: stopping ${#pids[@]} processes (logs in $logs)" >&2
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup INT TERM EXIT

# run NAME COMMAND...: starts a process with its output in $logs/NAME.log
run() {
    local name="$1"
    shift
    "$@" >"$logs/$name.log" 2>&1 &
    pids+=("$!")
    echo "launch: $name (pid $!) → $logs/$name.log" >&2
}

wait_port() {
    local port="$1" what="$2"
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { exec 3>&- 3<&-; return 0; }
        sleep 0.2
    done
    echo "launch: $what did not open port $port; see $logs" >&2
    exit 1
}

start_etcd() {
    command -v etcd >/dev/null || { echo "launch: etcd not found (apt-get install etcd-server)" >&2; exit 1; }
    run etcd etcd --name tandem --data-dir "$logs/etcd-data" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
        --initial-cluster "tandem=http://127.0.0.1:$((ETCD_PORT + 1))"
    wait_port "$ETCD_PORT" etcd
}

start_nats() {
    command -v nats-server >/dev/null || { echo "launch: nats-server not found (apt-get install nats-server)" >&2; exit 1; }
    run nats nats-server -a 127.0.0.1 -p "$NATS_PORT"
    wait_port "$NATS_PORT" nats-server
}

# Build once up front, so that the processes below start without racing to build.
"$root/tandem" --help >/dev/null
tandem=(dotnet "$root/.artifacts/cli/tandem.dll")

MODEL="${MODEL:-$root/../shared/models/stories260K/stories260K.gguf}"
HTTP_PORT="${HTTP_PORT:-8000}"
ETCD_PORT="${ETCD_PORT:-2379}"
NATS_PORT="${NATS_PORT:-4222}"
