#!/usr/bin/env bash
# disagg.sh with the least-loaded router (KV-aware routing across processes needs KV events over NATS in the
# frontend; until then `tandem serve --router kv` runs it in one process). Usage as disagg.sh.
export ROUTER="${ROUTER:-least-loaded}"
exec "$(dirname "${BASH_SOURCE[0]}")/disagg.sh" "$@"
