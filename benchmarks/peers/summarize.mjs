// Prints the table of benchmarks/peers/run.sh from its raw results (one JSON line per engine run).
// Usage: node summarize.mjs RESULTS.jsonl [bandwidth GB/s]
import {readFileSync} from "node:fs";

const [file, bandwidthText = "45.7"] = process.argv.slice(2);
const bandwidth = Number(bandwidthText) * 1e9;
const lines = readFileSync(file, "utf8").split("\n").filter(Boolean).map(l => JSON.parse(l));
const median = values => {
    const s = [...values].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f = x => x.toFixed(1);

console.log(`| weights | measurement | Tandem tokens/s (runs) | llama.cpp tokens/s (runs) | Tandem / llama.cpp (median) |`);
console.log(`| --- | --- | ---: | ---: | ---: |`);
for (const dtype of [...new Set(lines.map(l => l.dtype))]) {
    const of = engine => lines.filter(l => l.dtype === dtype && l.result.engine === engine).map(l => l.result);
    const tandem = of("tandem");
    const llama = of("llama.cpp");
    const rows = [[`prefill ${tandem[0].prompt_tokens}`, r => r.prefill_tokens_per_second]];
    for (const {concurrency} of tandem[0].decode) {
        rows.push([`decode, ${concurrency} sequence${concurrency > 1 ? "s" : ""} (aggregate)`, r => r.decode.find(d => d.concurrency === concurrency)?.tokens_per_second]);
    }
    for (const [name, pick] of rows) {
        const t = tandem.map(pick);
        const l = llama.map(pick);
        console.log(`| ${dtype.toUpperCase()} | ${name} | ${f(median(t))} (${t.map(f).join(" / ")}) | ${f(median(l))} (${l.map(f).join(" / ")}) | ${(median(t) / median(l)).toFixed(2)} |`);
    }
    // Single-sequence decode reads every weight matrix once per token: the bandwidth limit is bandwidth / bytes per step.
    const bytes = tandem[0].weight_bytes_per_step;
    const limit = bandwidth / bytes;
    const single = rs => median(rs.map(r => r.decode.find(d => d.concurrency === 1).tokens_per_second));
    console.log(`| ${dtype.toUpperCase()} | single decode / bandwidth limit (${(bytes / 1e6).toFixed(1)} MB per step, ${f(limit)} tokens/s at ${bandwidthText} GB/s) | ${(single(tandem) / limit).toFixed(2)} | ${(single(llama) / limit).toFixed(2)} | |`);
}
