using System.CommandLine;
using Microsoft.Extensions.Logging;
using Tandem.Frontend;
using Tandem.Hosting;
using Tandem.Routing;

namespace Tandem.Cli.Commands;

/// <summary>`tandem serve`: the OpenAI-compatible server with its workers in one process (no infrastructure needed).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = CliOptions.Create<string?>("--model", "Model path: a .gguf file or a Hugging Face model directory (default: the random-weight demo model tandem-demo)", null, "-m");
        var servedName = CliOptions.Create<string?>("--served-model-name", "Model name clients use (default: the file or directory name)", null);
        var host = CliOptions.Create("--host", "Address to listen on (0.0.0.0 for all interfaces)", "127.0.0.1");
        var port = CliOptions.Create("--http-port", "HTTP port (0 = any free port)", 8000, "--port");
        var workers = CliOptions.Create("--workers", "Aggregated workers (--mode agg), each with its own engine and KV cache", 1);
        var mode = CliOptions.Create("--mode", "agg (workers do prefill and decode) or disagg (separate prefill and decode workers)", "agg");
        var prefillWorkers = CliOptions.Create("--prefill-workers", "Prefill workers (--mode disagg)", 1);
        var decodeWorkers = CliOptions.Create("--decode-workers", "Decode workers (--mode disagg); with --mode agg the number of aggregated workers like --workers", 1);
        var strategy = CliOptions.Create("--strategy", "decode-first (the decode worker asks for a remote prefill) or prefill-first (prefill worker first, decode worker pulls the KV)", "decode-first");
        var maxLocalPrefill = CliOptions.Create("--max-local-prefill-length", "Decode-first: prompts with at most this many uncached tokens are prefilled by the decode worker", 512);
        var maxPrefillQueue = CliOptions.Create("--max-prefill-queue-size", "Decode-first: remote prefills a decode worker may have outstanding before it prefills locally", 4);
        var remotePrefillTimeout = CliOptions.Create("--remote-prefill-timeout", "Seconds a decode worker waits for a remote prefill before prefilling locally", 30.0);
        var router = CliOptions.Create("--router", $"Routing policy: {string.Join(", ", RoutingPolicies.Names)}", RoutingPolicies.RoundRobin);
        var threads = CliOptions.Create("--threads", "Compute threads per worker (0 = one per core)", 0);
        var apiKey = CliOptions.Create<string?>("--api-key", "Require 'Authorization: Bearer KEY' on /v1 (comma-separated for several keys)", null);
        var maxBody = CliOptions.Create("--max-request-body", "Largest request body, e.g. 8MiB", "8MiB");
        var maxPrompt = CliOptions.Optional<int>("--max-prompt-tokens", "Longest prompt in tokens (default: the model's context length)");
        var maxTotal = CliOptions.Optional<int>("--max-total-tokens", "Largest prompt + max_tokens (default: the model's context length)");
        var maxInflight = CliOptions.Create("--max-inflight-requests", "Requests served at once; more get 429 with Retry-After", 512);
        var timeout = CliOptions.Create("--request-timeout", "Seconds a request may take before it is cancelled", 600.0);
        var drain = CliOptions.Create("--drain-timeout", "Seconds to let requests in flight finish on shutdown (SIGTERM, Ctrl+C)", 30.0);
        var logLevel = CliOptions.Create("--log-level", "trace, debug, information, warning, error", "information");
        var logFormat = CliOptions.Create("--log-format", "text or json", "text");
        var serving = new ServingFlags();
        var command = new Command("serve", "Serve a model behind an OpenAI-compatible HTTP API (frontend and workers in one process)")
        {
            model, servedName, host, port, workers, mode, prefillWorkers, decodeWorkers, strategy, maxLocalPrefill, maxPrefillQueue, remotePrefillTimeout, router, threads, apiKey, maxBody, maxPrompt, maxTotal, maxInflight, timeout, drain, logLevel, logFormat,
        };
        var kvRouting = new KvRoutingFlags();
        foreach (var option in serving.Options.Concat(kvRouting.Options))
        {
            command.Options.Add(option);
        }
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var options = new EmbeddedServerOptions
            {
                ModelPath = parse.GetValue(model) is { Length: > 0 } m ? m : null,
                ServedModelName = parse.GetValue(servedName) is { Length: > 0 } n ? n : null,
                Workers = Math.Max(parse.GetValue(workers), parse.GetValue(decodeWorkers)),
                Mode = parse.GetValue(mode) switch
                {
                    "agg" => ServeMode.Aggregated,
                    "disagg" => ServeMode.Disaggregated,
                    var other => throw new ArgumentException($"--mode must be agg or disagg, got '{other}'"),
                },
                PrefillWorkers = parse.GetValue(prefillWorkers),
                DecodeWorkers = parse.GetValue(decodeWorkers),
                Disaggregation = new Tandem.Worker.DisaggregationOptions
                {
                    MaxLocalPrefillLength = parse.GetValue(maxLocalPrefill),
                    MaxPrefillQueueSize = parse.GetValue(maxPrefillQueue),
                    RemotePrefillTimeout = ServerFlags.Seconds(parse.GetValue(remotePrefillTimeout), "--remote-prefill-timeout"),
                },
                Threads = parse.GetValue(threads),
                Router = parse.GetValue(router)!,
                Serving = serving.Read(parse),
                Frontend = new FrontendOptions
                {
                    Host = parse.GetValue(host)!,
                    Port = parse.GetValue(port),
                    ApiKeys = ServerFlags.ApiKeys(parse.GetValue(apiKey)),
                    MaxRequestBodyBytes = ServingFlags.ParseBytes(parse.GetValue(maxBody)!),
                    MaxPromptTokens = parse.GetValue(maxPrompt),
                    MaxTotalTokens = parse.GetValue(maxTotal),
                    MaxInflightRequests = parse.GetValue(maxInflight),
                    RequestTimeout = ServerFlags.Seconds(parse.GetValue(timeout), "--request-timeout"),
                    Strategy = ServerFlags.Strategy(parse.GetValue(strategy)),
                },
            };
            options = kvRouting.Apply(parse, options, serving);
            var drainTimeout = ServerFlags.Seconds(parse.GetValue(drain), "--drain-timeout");
            using var loggerFactory = Logging.Create(parse.GetValue(logLevel)!, parse.GetValue(logFormat)!);
            return RunAsync(options, drainTimeout, loggerFactory).GetAwaiter().GetResult();
        }));
        return command;
    }

    private static async Task<int> RunAsync(EmbeddedServerOptions options, TimeSpan drainTimeout, ILoggerFactory loggerFactory)
    {
        using var stop = new ShutdownSignal();

        var server = await EmbeddedServer.StartAsync(options, loggerFactory, stop.Token).ConfigureAwait(false);
        var err = Console.Error;
        if (server.IsDemoModel)
        {
            err.WriteLine($"tandem: serving the demo model '{server.ModelName}' (random weights: its text is meaningless).");
            err.WriteLine("tandem: to serve a real model: tandem serve --model PATH (a .gguf file or a Hugging Face directory)");
        }
        err.WriteLine($"tandem: model '{server.ModelName}' ready at {server.Url} (OpenAI API under {server.Url}v1). Ctrl+C stops.");
        err.WriteLine($"tandem: try: curl {server.Url}v1/completions -H 'Content-Type: application/json' -d '{{\"model\":\"{server.ModelName}\",\"prompt\":\"Once upon a time\",\"max_tokens\":32}}'");
        await stop.WaitAsync().ConfigureAwait(false);
        err.WriteLine($"tandem: shutting down; letting requests in flight finish (up to {drainTimeout.TotalSeconds:0} s)");
        await server.ShutdownAsync(drainTimeout).ConfigureAwait(false);
        return 0;
    }
}
