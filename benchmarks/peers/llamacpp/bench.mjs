// llama.cpp (through node-llama-cpp's prebuilt CPU binaries) measured the same way as `tandem engine-bench`:
// prefill tokens/s of one prompt of an exact token count (time to its first token), and aggregate decode tokens/s of
// several sequences generating together. Prompts are the same token ids as engine-bench uses (see promptIds), so both
// engines do the same work on the same GGUF file. Prints one JSON object in engine-bench's --json shape.
//
// Usage: node bench.mjs --model FILE [--threads 2] [--prompt-tokens 512] [--decode-tokens 128]
//                       [--concurrency 1,4,16,32] [--runs 3] [--print-ids] [--print-tokens N]
//        node bench.mjs --check
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";
import path from "node:path";

const args = parseArgs(process.argv.slice(2));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.warn});
if (args.check) {
    // Used by install.sh: the prebuilt binaries load on this machine.
    console.log(`llama.cpp binaries load: ${llama.buildType} build (node-llama-cpp ${bindingVersion()}), ${llama.cpuMathCores} math cores`);
    console.log(llama.systemInfo.trim());
    process.exit(0);
}
const modelPath = args.model ?? fail("--model is required");
const threads = Number(args.threads ?? 2);
const promptLength = Number(args["prompt-tokens"] ?? 512);
const decodeLength = Number(args["decode-tokens"] ?? 128);
const levels = String(args.concurrency ?? "1,4,16,32").split(",").map(s => Number(s.trim()));
const runs = Number(args.runs ?? 3);

const model = await llama.loadModel({modelPath});
const vocab = model.fileInfo.architectureMetadata?.vocab_size ?? fail("no vocabulary size in the GGUF metadata");

if (args["print-ids"]) {
    // The exact ids of the prefill prompt and of the first decode prompt, to compare with engine-bench.
    console.log(JSON.stringify({prefill: promptIds(promptLength, 0, vocab), decode0: promptIds(16, 1, vocab)}));
    process.exit(0);
}
if (args["print-tokens"]) {
    // The first decode prompt's ids and this many greedy tokens, as `tandem engine-bench --print-tokens N` prints them.
    const context = await model.createContext({contextSize: 16 + Number(args["print-tokens"]) + 16, sequences: 1, threads});
    const prompt = promptIds(16, 1, vocab);
    const tokens = [];
    for await (const token of context.getSequence().evaluate(prompt, {temperature: 0, yieldEogToken: true})) {
        tokens.push(token);
        if (tokens.length >= Number(args["print-tokens"])) {
            break;
        }
    }
    console.log(JSON.stringify({engine: "llama.cpp", prompt, tokens}));
    await context.dispose();
    await model.dispose();
    process.exit(0);
}

// Prefill context: one sequence, the whole prompt in one batch (engine-bench also prefills it in one chunk).
const prefillContext = await model.createContext({contextSize: promptLength + 16, sequences: 1, threads, batchSize: Math.max(promptLength, 512)});
const prefillSequence = prefillContext.getSequence();
const decodeContexts = new Map();
async function decodeContext(concurrency) {
    // One context per concurrency level, with room for 16 prompt + decodeLength tokens in each sequence.
    if (!decodeContexts.has(concurrency)) {
        const context = await model.createContext({contextSize: 16 + decodeLength + 16, sequences: concurrency, threads, batchSize: 512});
        decodeContexts.set(concurrency, {context, sequences: Array.from({length: concurrency}, () => context.getSequence())});
    }
    return decodeContexts.get(concurrency);
}

await decode(1, 8); // warm-up, as engine-bench does
const prefill = median(await repeat(runs, () => prefillOnce(promptLength)));
const decodeResults = [];
for (const c of levels) {
    await decode(c, 2); // warm-up of this context
    decodeResults.push({concurrency: c, tokens_per_second: median(await repeat(runs, () => decode(c, decodeLength)))});
}

console.log(JSON.stringify({
    engine: "llama.cpp",
    binding: `node-llama-cpp ${bindingVersion()}`,
    model: path.basename(modelPath, ".gguf"),
    threads,
    prompt_tokens: promptLength,
    decode_tokens: decodeLength,
    runs,
    prefill_tokens_per_second: prefill,
    decode: decodeResults,
}));
for (const {context} of decodeContexts.values()) {
    await context.dispose();
}
await prefillContext.dispose();
await model.dispose();

/** Prompt tokens per second of one prompt of exactly `length` tokens (time to its first generated token). */
async function prefillOnce(length) {
    await prefillSequence.clearHistory();
    const tokens = promptIds(length, 0, vocab);
    const start = performance.now();
    const iterator = prefillSequence.evaluate(tokens, {temperature: 0});
    await iterator.next();
    const elapsed = (performance.now() - start) / 1000;
    await iterator.return();
    return length / elapsed;
}

/**
 * Aggregate decode tokens/s of `concurrency` sequences generating together: tokens produced after the last sequence got
 * its first token (so every sequence is decoding), divided by the time until the last token. The sequences share one
 * context, so node-llama-cpp evaluates their pending tokens in one llama_decode batch per step.
 */
async function decode(concurrency, tokens) {
    const {sequences} = await decodeContext(concurrency);
    for (const sequence of sequences) {
        await sequence.clearHistory();
    }
    const start = performance.now();
    const times = await Promise.all(sequences.map(async (sequence, i) => {
        const stamps = [];
        for await (const _ of sequence.evaluate(promptIds(16, i + 1, vocab), {temperature: 0, yieldEogToken: true})) {
            stamps.push(performance.now() - start);
            if (stamps.length >= tokens) {
                break;
            }
        }
        return stamps;
    }));
    const first = Math.max(...times.map(t => t[0]));
    const last = Math.max(...times.map(t => t[t.length - 1]));
    const counted = times.reduce((sum, t) => sum + t.filter(x => x > first).length, 0);
    return counted / ((last - first) / 1000);
}

/** Exactly engine-bench's prompt ids: 3 + ((i * 7919 + variant * 104729) mod (vocab - 3)). */
function promptIds(length, variant, vocabSize) {
    return Array.from({length}, (_, i) => 3 + ((i * 7919 + variant * 104729) % (vocabSize - 3)));
}

function bindingVersion() {
    const file = new URL("./node_modules/node-llama-cpp/package.json", import.meta.url);
    return JSON.parse(readFileSync(file, "utf8")).version;
}

async function repeat(count, fn) {
    const values = [];
    for (let i = 0; i < count; i++) {
        values.push(await fn());
        if (args.verbose) {
            console.error(`${fn.toString()}: ${values.at(-1).toFixed(1)} tokens/s`);
        }
    }
    return values;
}

function median(values) {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function parseArgs(argv) {
    const result = {};
    for (let i = 0; i < argv.length; i++) {
        const key = argv[i].replace(/^--/, "");
        if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
            result[key] = argv[++i];
        } else {
            result[key] = true;
        }
    }
    return result;
}

function fail(message) {
    console.error(`bench.mjs: ${message}`);
    process.exit(2);
}
