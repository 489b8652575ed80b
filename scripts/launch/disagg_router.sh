#!/usr/bin/env bash
# disagg.sh with the KV-aware router: the decode workers publish KV events on NATS and the frontend's `kv` router
# sends each request to the worker that already holds most of its prefix. Usage as disagg.sh; ROUTER overrides.
export ROUTER="${ROUTER:-kv}"
exec "$(dirname "${BASH_SOURCE[0]}")/disagg.sh" "$@"
