using System.CommandLine;
using Microsoft.Extensions.Logging;
using Tandem.Frontend;
using Tandem.Hosting;
using Tandem.Routing;

namespace Tandem.Cli.Commands;

/// <summary>`tandem frontend`: the OpenAI API in front of worker processes (etcd discovery or a static topology file).</summary>
internal static class FrontendCommand
{
    public static Command Create()
    {
        var model = CliOptions.Create<string>("--model", "The model's files, for its tokenizer and chat template", "", "-m");
        var servedName = CliOptions.Create<string?>("--served-model-name", "Model name clients use (must match the workers')", null);
        var host = CliOptions.Create("--host", "Address to listen on", "127.0.0.1");
        var port = CliOptions.Create("--http-port", "HTTP port", 8000, "--port");
        var discovery = CliOptions.Create<string?>("--discovery", "etcd endpoints, e.g. etcd://127.0.0.1:2379", null);
        var config = CliOptions.Create<string?>("--config", "Static topology file (cluster.yaml) instead of etcd", null);
        var ns = CliOptions.Create("--namespace", "Discovery namespace", "default");
        var router = CliOptions.Create("--router", $"Routing policy: {string.Join(", ", RoutingPolicies.Names)}", RoutingPolicies.RoundRobin);
        var strategy = CliOptions.Create("--strategy", "decode-first or prefill-first", "decode-first");
        var apiKey = CliOptions.Create<string?>("--api-key", "Require 'Authorization: Bearer KEY' on /v1 (comma-separated for several keys)", null);
        var timeout = CliOptions.Create("--request-timeout", "Seconds a request may take before it is cancelled", 600.0);
        var maxInflight = CliOptions.Create("--max-inflight-requests", "Requests served at once; more get 429 with Retry-After", 512);
        var logLevel = CliOptions.Create("--log-level", "trace, debug, information, warning, error", "information");
        var logFormat = CliOptions.Create("--log-format", "text or json", "text");
        var nats = CliOptions.Create<string?>("--nats", "NATS server the workers publish KV events on (needed by --router kv), e.g. nats://127.0.0.1:4222", null);
        var kvFlags = new KvRoutingFlags();
        var command = new Command("frontend", "Run the OpenAI-compatible frontend in front of `tandem worker` processes")
        {
            model, servedName, host, port, discovery, config, ns, router, strategy, apiKey, timeout, maxInflight, logLevel, logFormat, nats,
        };
        foreach (var option in kvFlags.RouterOptions)
        {
            command.Options.Add(option);
        }
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var path = parse.GetValue(model);
            if (string.IsNullOrEmpty(path))
            {
                throw new ArgumentException("--model is required: the frontend tokenizes with the model's tokenizer");
            }
            var (kvRouting, indexCap) = kvFlags.ReadRouter(parse);
            var options = new FrontendProcessOptions
            {
                Nats = parse.GetValue(nats) is { Length: > 0 } s ? s : null,
                KvRouting = kvRouting,
                KvIndexMaxBlocksPerWorker = indexCap,
                ModelPath = path,
                ServedModelName = parse.GetValue(servedName) is { Length: > 0 } n ? n : null,
                Discovery = parse.GetValue(discovery) is { Length: > 0 } d ? d : null,
                ConfigFile = parse.GetValue(config) is { Length: > 0 } c ? c : null,
                Namespace = parse.GetValue(ns)!,
                Router = parse.GetValue(router)!,
                Frontend = new FrontendOptions
                {
                    Host = parse.GetValue(host)!,
                    Port = parse.GetValue(port),
                    ApiKeys = ServerFlags.ApiKeys(parse.GetValue(apiKey)),
                    MaxInflightRequests = parse.GetValue(maxInflight),
                    RequestTimeout = ServerFlags.Seconds(parse.GetValue(timeout), "--request-timeout"),
                    Strategy = ServerFlags.Strategy(parse.GetValue(strategy)),
                },
            };
            using var loggerFactory = Logging.Create(parse.GetValue(logLevel)!, parse.GetValue(logFormat)!);
            return RunAsync(options, loggerFactory).GetAwaiter().GetResult();
        }));
        return command;
    }

    private static async Task<int> RunAsync(FrontendProcessOptions options, ILoggerFactory loggerFactory)
    {
        using var stop = new ShutdownSignal();
        await using var frontend = await FrontendProcess.StartAsync(options, loggerFactory, stop.Token).ConfigureAwait(false);
        Console.Error.WriteLine($"tandem: frontend ready at {frontend.Server.Url}");
        await stop.WaitAsync().ConfigureAwait(false);
        await frontend.Server.DrainAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return 0;
    }
}
