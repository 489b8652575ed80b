using System.CommandLine;
using System.Globalization;
using Tandem.Bench;

namespace Tandem.Cli.Commands;

/// <summary>`tandem bench`: load generator for any OpenAI-compatible server (the work is in Tandem.Bench).</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var url = CliOptions.Create("--url", "Server base URL, e.g. http://127.0.0.1:8000", "");
        var model = CliOptions.Create("--model", "Model name sent in every request", "", "-m");
        var endpoint = CliOptions.Create("--endpoint", "chat (/v1/chat/completions) or completions (/v1/completions)", "chat");
        var concurrency = CliOptions.Optional<int>("--concurrency", "Requests in flight (closed loop, default 1); with --request-rate or --trace: the most in flight (default unbounded)");
        var requestRate = CliOptions.Optional<double>("--request-rate", "Open loop: mean arrivals per second");
        var burstiness = CliOptions.Create("--burstiness", "Gamma shape of inter-arrival times: 1 = Poisson, <1 burstier, >1 more regular", 1.0);
        var requests = CliOptions.Optional<int>("--requests", "Measured requests (default 100, or the whole trace, unless --duration is given)");
        var duration = CliOptions.Create("--duration", "Stop issuing requests after this time, e.g. 60s, 5m, 1500ms", "");
        var warmup = CliOptions.Create("--warmup-requests", "Requests sent first and left out of the results", 0);
        var isl = CliOptions.Create("--isl", "Mean input length in tokens (synthetic prompts)", 512);
        var islStddev = CliOptions.Create("--isl-stddev", "Standard deviation of the input length (normal, clamped to at least 1)", 0.0);
        var osl = CliOptions.Create("--osl", "Mean output length in tokens (forced with max_tokens, min_tokens, ignore_eos)", 128);
        var oslStddev = CliOptions.Create("--osl-stddev", "Standard deviation of the output length", 0.0);
        var prefixLen = CliOptions.Create("--prefix-len", "Tokens of shared prefix at the start of every prompt (added to --isl)", 0);
        var numPrefixes = CliOptions.Create("--num-prefixes", "Distinct shared prefixes (request i uses prefix i mod K)", 1);
        var trace = CliOptions.Create("--trace", "Replay a Mooncake-format JSONL trace (timestamp, input_length, output_length, hash_ids)", "");
        var blockSize = CliOptions.Create("--trace-block-size", "Tokens per trace hash id", 512);
        var speedup = CliOptions.Create("--speedup", "Trace timestamps are divided by this factor", 1.0);
        var stream = CliOptions.Create("--stream", "Stream responses (needed for TTFT and ITL)", true);
        var apiKey = CliOptions.Create("--api-key", "Bearer token sent in the Authorization header", "");
        var sloTtft = CliOptions.Optional<double>("--slo-ttft-ms", "TTFT objective for goodput (ms)");
        var sloTpot = CliOptions.Optional<double>("--slo-tpot-ms", "TPOT objective for goodput (ms)");
        var seed = CliOptions.Create("--seed", "Seed of prompts, lengths and arrivals", 0);
        var timeout = CliOptions.Create("--timeout", "Per-request timeout, e.g. 300s", "300s");
        var tokensPerWord = CliOptions.Create("--tokens-per-word", "Tokens one prompt word makes on the server's tokenizer (text prompts have round(isl / this) words)", 1.0);
        var promptFormat = CliOptions.Create("--prompt-format", "text, or token-ids (completions only: exact prompt lengths)", "text");
        var vocabSize = CliOptions.Create("--vocab-size", "Token ids are drawn below this bound (token-ids prompts)", 32000);
        var noExtensions = CliOptions.Create("--no-extensions", "Do not send min_tokens and ignore_eos (for servers that reject unknown fields)", false);
        var output = CliOptions.Create("--output", "Write the JSON report (config, aggregate, per-request records) here", "", "-o");
        var html = CliOptions.Create("--html", "Write a self-contained HTML report with charts here", "");
        var compare = new Option<string[]>("--compare")
        {
            Description = "Print two JSON reports side by side with b/a ratios (no run): --compare a.json b.json",
            Arity = new ArgumentArity(2, 2),
            AllowMultipleArgumentsPerToken = true,
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable(CliOptions.EnvironmentName("--compare")) is { Length: > 0 } s
                ? s.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries)
                : [],
        };
        var command = new Command("bench", "Benchmark an OpenAI-compatible server: TTFT, ITL, TPOT, E2E latency, throughput, goodput")
        {
            url, model, endpoint, concurrency, requestRate, burstiness, requests, duration, warmup, isl, islStddev, osl, oslStddev,
            prefixLen, numPrefixes, trace, blockSize, speedup, stream, apiKey, sloTtft, sloTpot, seed, timeout, tokensPerWord,
            promptFormat, vocabSize, noExtensions, output, html, compare,
        };
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var interactive = !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") is not (null or "dumb");
            var reports = parse.GetValue(compare) ?? [];
            if (reports.Length == 2)
            {
                return BenchApplication.Compare(reports[0], reports[1], Console.Out, interactive);
            }
            var urlText = parse.GetValue(url);
            if (string.IsNullOrEmpty(urlText) || !Uri.TryCreate(urlText, UriKind.Absolute, out var baseUrl))
            {
                throw new ArgumentException("--url is required (the server's base URL, e.g. http://127.0.0.1:8000)");
            }
            var options = new BenchOptions
            {
                Url = baseUrl,
                Model = parse.GetValue(model) ?? "",
                Endpoint = parse.GetValue(endpoint) switch
                {
                    "chat" => BenchEndpoint.Chat,
                    "completions" => BenchEndpoint.Completions,
                    var other => throw new ArgumentException($"--endpoint must be chat or completions, got '{other}'"),
                },
                Concurrency = parse.GetValue(concurrency),
                RequestRate = parse.GetValue(requestRate),
                Burstiness = parse.GetValue(burstiness),
                Requests = parse.GetValue(requests),
                Duration = parse.GetValue(duration) is { Length: > 0 } d ? ParseDuration(d, "--duration") : null,
                WarmupRequests = parse.GetValue(warmup),
                InputLength = parse.GetValue(isl),
                InputLengthStddev = parse.GetValue(islStddev),
                OutputLength = parse.GetValue(osl),
                OutputLengthStddev = parse.GetValue(oslStddev),
                PrefixLength = parse.GetValue(prefixLen),
                NumPrefixes = parse.GetValue(numPrefixes),
                TracePath = NullIfEmpty(parse.GetValue(trace)),
                TraceBlockSize = parse.GetValue(blockSize),
                Speedup = parse.GetValue(speedup),
                Stream = parse.GetValue(stream),
                ApiKey = NullIfEmpty(parse.GetValue(apiKey)),
                SloTtftMs = parse.GetValue(sloTtft),
                SloTpotMs = parse.GetValue(sloTpot),
                Seed = parse.GetValue(seed),
                Timeout = ParseDuration(parse.GetValue(timeout) ?? "300s", "--timeout"),
                TokensPerWord = parse.GetValue(tokensPerWord),
                PromptFormat = parse.GetValue(promptFormat) switch
                {
                    "text" => PromptFormat.Text,
                    "token-ids" => PromptFormat.TokenIds,
                    var other => throw new ArgumentException($"--prompt-format must be text or token-ids, got '{other}'"),
                },
                VocabSize = parse.GetValue(vocabSize),
                NoExtensions = parse.GetValue(noExtensions),
                OutputPath = NullIfEmpty(parse.GetValue(output)),
                HtmlPath = NullIfEmpty(parse.GetValue(html)),
            };
            options.Validate();
            using var cts = new CancellationTokenSource();
            void OnCancel(object? sender, ConsoleCancelEventArgs e)
            {
                e.Cancel = true; // first Ctrl+C: cancel in-flight requests and still write the reports
                cts.Cancel();
            }
            Console.CancelKeyPress += OnCancel;
            try
            {
                return BenchApplication.RunAsync(options, Console.Out, interactive, cts.Token).GetAwaiter().GetResult();
            }
            finally
            {
                Console.CancelKeyPress -= OnCancel;
            }
        }));
        return command;
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    /// <summary>"300ms", "60s", "5m", "1h" or a plain number of seconds.</summary>
    internal static TimeSpan ParseDuration(string text, string flag)
    {
        var s = text.Trim();
        var (number, scale) = s switch
        {
            _ when s.EndsWith("ms", StringComparison.Ordinal) => (s[..^2], 0.001),
            _ when s.EndsWith('s') => (s[..^1], 1.0),
            _ when s.EndsWith('m') => (s[..^1], 60.0),
            _ when s.EndsWith('h') => (s[..^1], 3600.0),
            _ => (s, 1.0),
        };
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value <= 0 || !double.IsFinite(value))
        {
            throw new ArgumentException($"{flag} must be a positive duration such as 60s, 5m or 1500ms, got '{text}'");
        }
        return TimeSpan.FromSeconds(value * scale);
    }
}
