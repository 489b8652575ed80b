using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Tandem.Abstractions;
using Tandem.Engine.Models;
using Tandem.Engine.Serving;

namespace Tandem.Cli.Commands;

/// <summary>
/// `tandem engine-bench`: the serving engine's own throughput, with no HTTP in between: prefill tokens/s for a prompt of an
/// exact token count, and aggregate decode tokens/s at several concurrencies (continuous batching). Prompts are token ids,
/// so that a peer harness can run exactly the same work.
/// </summary>
internal static class EngineBenchCommand
{
    public static Command Create()
    {
        var model = CliOptions.Create<string>("--model", "Model path: a .gguf file or a Hugging Face model directory", "", "-m");
        var promptTokens = CliOptions.Create("--prompt-tokens", "Prompt length for the prefill measurement", 512);
        var decodeTokens = CliOptions.Create("--decode-tokens", "Tokens each sequence generates in the decode measurement", 128);
        var concurrency = CliOptions.Create("--concurrency", "Comma-separated numbers of sequences decoding at once", "1,4,16,32");
        var runs = CliOptions.Create("--runs", "Repetitions of each measurement (the median is reported)", 3);
        var threads = CliOptions.Create("--threads", "Compute threads (0 = one per core)", 0);
        var json = CliOptions.Create("--json", "Print one JSON object instead of the table", false);
        var printTokens = CliOptions.Create("--print-tokens", "Only print the first decode prompt's ids and this many greedy tokens as JSON (to check a peer engine reads the model the same way)", 0);
        var serving = new ServingFlags();
        var command = new Command("engine-bench", "Measure the serving engine: prefill tokens/s and batched decode tokens/s (no HTTP)")
        {
            model, promptTokens, decodeTokens, concurrency, runs, threads, json, printTokens,
        };
        foreach (var option in serving.Options)
        {
            command.Options.Add(option);
        }
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var path = parse.GetValue(model);
            if (string.IsNullOrEmpty(path))
            {
                throw new ArgumentException("--model is required (a .gguf file or a Hugging Face model directory)");
            }
            var levels = ParseLevels(parse.GetValue(concurrency)!);
            var promptLength = parse.GetValue(promptTokens);
            var decodeLength = parse.GetValue(decodeTokens);
            var runCount = parse.GetValue(runs);
            ArgumentOutOfRangeException.ThrowIfLessThan(promptLength, 1, "--prompt-tokens");
            ArgumentOutOfRangeException.ThrowIfLessThan(decodeLength, 2, "--decode-tokens");
            ArgumentOutOfRangeException.ThrowIfLessThan(runCount, 1, "--runs");
            // Benchmarks measure compute: no prefix reuse between runs, and a step budget that fits the prompt in one chunk.
            var options = serving.Read(parse) with
            {
                EnablePrefixCaching = false,
                MaxNumSeqs = Math.Max(levels.Max(), serving.Read(parse).MaxNumSeqs),
                MaxNumBatchedTokens = Math.Max(promptLength, serving.Read(parse).MaxNumBatchedTokens),
            };
            using var loaded = LoadedModel.Load(path, threads: parse.GetValue(threads));
            using var engine = new ServingEngine(loaded.Transformer, loaded.Tokenizer.StopTokenIds, options);
            var vocab = loaded.Tokenizer.VocabSize;
            if (parse.GetValue(printTokens) is var count and > 0)
            {
                var prompt = PromptIds(16, 1, vocab);
                var request = new GenerateRequest { RequestId = "bench-tokens", PromptTokens = prompt, MaxTokens = count, IgnoreEos = true };
                var generated = Run(engine.SubmitAsync(request)).Select(t => t.TokenId);
                Console.Out.WriteLine(JsonSerializer.Serialize(new { engine = "tandem", prompt, tokens = generated }));
                return 0;
            }

            Decode(engine, 1, 8, vocab); // warm-up: JIT, buffers
            var prefill = Median(Enumerable.Range(0, runCount).Select(_ => Prefill(engine, promptLength, vocab)));
            var decode = levels.Select(c => (Concurrency: c, TokensPerSecond: Median(Enumerable.Range(0, runCount).Select(_ => Decode(engine, c, decodeLength, vocab))))).ToList();
            var weightBytes = loaded.Transformer.WeightBytesPerToken;

            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(new
                {
                    engine = "tandem",
                    model = loaded.Artifact.Name,
                    threads = parse.GetValue(threads),
                    prompt_tokens = promptLength,
                    decode_tokens = decodeLength,
                    runs = runCount,
                    prefill_tokens_per_second = prefill,
                    decode = decode.Select(d => new { concurrency = d.Concurrency, tokens_per_second = d.TokensPerSecond }),
                    weight_bytes_per_step = weightBytes,
                }));
                return 0;
            }
            var o = Console.Out;
            o.WriteLine($"model: {loaded.Artifact.Name} ({loaded.Config.Architecture}), {weightBytes / 1e6:F1} MB of weights read per step, medians of {runCount} runs");
            o.WriteLine($"prefill: {promptLength} tokens → {prefill:F1} tokens/s");
            foreach (var (c, rate) in decode)
            {
                o.WriteLine($"decode: {c,3} sequences → {rate,8:F1} tokens/s aggregate, {rate / c,7:F1} per sequence, weight traffic {weightBytes * rate / c / 1e9:F2} GB/s");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>Prompt tokens per second of one prompt of exactly <paramref name="length"/> tokens (time to its first token).</summary>
    private static double Prefill(ServingEngine engine, int length, int vocab)
    {
        var request = new GenerateRequest { RequestId = "bench-prefill", PromptTokens = PromptIds(length, 0, vocab), MaxTokens = 1, IgnoreEos = true };
        var first = Run(engine.SubmitAsync(request)).First();
        return length / first.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// Aggregate decode tokens/s of <paramref name="concurrency"/> sequences generating together: tokens produced after the last
    /// sequence got its first token (so every sequence is decoding), divided by the time until the last token.
    /// </summary>
    private static double Decode(ServingEngine engine, int concurrency, int tokens, int vocab)
    {
        var clock = Stopwatch.StartNew();
        var streams = Enumerable.Range(0, concurrency).Select(i =>
        {
            var submitted = clock.Elapsed;
            var request = new GenerateRequest { RequestId = $"bench-{i}", PromptTokens = PromptIds(16, i + 1, vocab), MaxTokens = tokens, IgnoreEos = true };
            return (Submitted: submitted, Task: Task.Run(() => Run(engine.SubmitAsync(request))));
        }).ToList();
        var times = streams.Select(s => s.Task.Result.Select(t => s.Submitted + t.Elapsed).ToList()).ToList();
        var start = times.Max(t => t[0]);
        var end = times.Max(t => t[^1]);
        var counted = times.Sum(t => t.Count(x => x > start));
        return counted / (end - start).TotalSeconds;
    }

    private static List<TokenOutput> Run(IAsyncEnumerable<TokenOutput> stream)
    {
        var list = new List<TokenOutput>();
        var e = stream.GetAsyncEnumerator();
        try
        {
            while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                list.Add(e.Current);
            }
        }
        finally
        {
            e.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return list;
    }

    /// <summary>Deterministic prompt ids that avoid the first ids (usually control tokens); <paramref name="variant"/> makes prompts differ.</summary>
    internal static int[] PromptIds(int length, int variant, int vocab) =>
        [.. Enumerable.Range(0, length).Select(i => 3 + (int)(((long)i * 7919 + (long)variant * 104729) % (vocab - 3)))];

    private static int[] ParseLevels(string text)
    {
        var levels = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.TryParse(s, out var n) && n >= 1 ? n : throw new ArgumentException($"--concurrency: '{s}' is not a positive number"))
            .ToArray();
        return levels.Length > 0 ? levels : throw new ArgumentException("--concurrency needs at least one number");
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
