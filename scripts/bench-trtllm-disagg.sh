#!/usr/bin/env bash
# Added latency of `tandem disagg` (TensorRT-LLM compatible orchestrator) per request, against calling the generation
# server directly, in one run on the same machine (docs/benchmarks.md). Three measurements with `tandem bench`:
#   direct   - the generation server alone (aggregated: it prefills and decodes); prefix caching off everywhere, so
#              repeated prompts (same seed in every run) cost the same in each run
#   proxy    - through `tandem disagg` with conditional_disagg_config making every prompt "short": the orchestrator's
#              own cost (parse, route, forward, stream back), no context leg
#   disagg   - through `tandem disagg`, full protocol: context leg on a context server, KV pulled by the generation server
# Usage: scripts/bench-trtllm-disagg.sh [OUT_DIR]   env: MODEL, REQUESTS, CONCURRENCY, ISL, OSL, PORT (base)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/.artifacts/bench-trtllm}"
model="${MODEL:-$root/../shared/models/stories260K/stories260K.gguf}"
requests="${REQUESTS:-200}"; concurrency="${CONCURRENCY:-1}"; isl="${ISL:-128}"; osl="${OSL:-32}"; port="${PORT:-18600}"
ctx=$((port + 1)); gen=$((port + 2)); proxy=$((port + 3))
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"$root/tandem" --help > /dev/null  # build once before starting several processes
for spec in "$ctx CONTEXT" "$gen GENERATION"; do
    set -- $spec
    "$root/tandem" worker --model "$model" --threads 1 --http-port "$1" --server-role "$2" --instance-id "bench-$1" --no-prefix-caching --log-level warning > "$out/worker-$1.log" 2>&1 &
    pids+=($!)
done
write_config() { # $1 = file, $2 = port, $3 = extra lines
    printf 'hostname: 127.0.0.1\nport: %s\nbackend: pytorch\n%scontext_servers:\n  num_instances: 1\n  urls:\n    - "127.0.0.1:%s"\ngeneration_servers:\n  num_instances: 1\n  urls:\n    - "127.0.0.1:%s"\n' "$2" "$3" "$ctx" "$gen" > "$1"
}
write_config "$out/disagg.yaml" "$port" ""
write_config "$out/proxy.yaml" "$proxy" $'conditional_disagg_config:\n  max_local_prefill_length: 1000000\n'
"$root/tandem" disagg -c "$out/disagg.yaml" --log-level warning > "$out/disagg.log" 2>&1 & pids+=($!)
"$root/tandem" disagg -c "$out/proxy.yaml" --log-level warning > "$out/proxy.log" 2>&1 & pids+=($!)
for p in "$ctx" "$gen" "$port" "$proxy"; do
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$p/health" > /dev/null && break; sleep 0.2; done
done
run() { # $1 = name, $2 = port
    "$root/tandem" bench --url "http://127.0.0.1:$2" --model stories260K --endpoint completions --prompt-format token-ids \
        --vocab-size 512 --isl "$isl" --osl "$osl" --concurrency "$concurrency" --requests "$requests" --warmup-requests 10 \
        --seed 1 --output "$out/$1.json" > "$out/bench-$1.txt" 2>&1 || true
}
for round in 1 2; do  # interleaved twice, so drift on a shared machine hits all three alike
    run "direct-$round" "$gen"; run "proxy-$round" "$proxy"; run "disagg-$round" "$port"
done
"$root/tandem" bench --compare "$out/direct-2.json" "$out/proxy-2.json" | tee "$out/compare-proxy.txt"
"$root/tandem" bench --compare "$out/direct-2.json" "$out/disagg-2.json" | tee "$out/compare-disagg.txt"
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print(f"{'run':<10} {'ok':>4} {'fail':>4} {'TTFT p50':>9} {'TTFT p90':>9} {'E2E p50':>9} {'E2E p90':>9}  (ms)")
for name in ["direct-1", "proxy-1", "disagg-1", "direct-2", "proxy-2", "disagg-2"]:
    s = json.load(open(os.path.join(out, name + ".json")))["summary"]
    def ms(metric, q):
        v = (s.get(metric) or {}).get(q)
        return f"{v:9.2f}" if v is not None else "        -"
    print(f"{name:<10} {s['completed']:>4} {s['failed']:>4} {ms('ttft_ms', 'p50')} {ms('ttft_ms', 'p90')} {ms('e2e_ms', 'p50')} {ms('e2e_ms', 'p90')}")
PY
