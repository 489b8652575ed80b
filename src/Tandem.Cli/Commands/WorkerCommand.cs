using System.CommandLine;
using Microsoft.Extensions.Logging;
using Tandem.Abstractions;
using Tandem.Hosting;

namespace Tandem.Cli.Commands;

/// <summary>`tandem worker`: one engine in a role as its own process (request plane, KV transfer, etcd, NATS).</summary>
internal static class WorkerCommand
{
    public static Command Create()
    {
        var model = CliOptions.Create<string>("--model", "Model path: a .gguf file or a Hugging Face model directory", "", "-m");
        var servedName = CliOptions.Create<string?>("--served-model-name", "Model name clients use (default: the file or directory name)", null);
        var role = CliOptions.Create("--role", "both, prefill or decode", "both");
        var isPrefill = CliOptions.Create("--is-prefill-worker", "Same as --role prefill", false);
        var id = CliOptions.Create<string?>("--instance-id", "Unique id of this worker (default: role-host-pid)", null);
        var host = CliOptions.Create("--host", "Address to listen on and advertise", "127.0.0.1");
        var rpcPort = CliOptions.Create("--rpc-port", "Request-plane (gRPC) port (0 = any free port)", 0);
        var kvPort = CliOptions.Create("--kv-port", "KV transfer port (0 = any free port)", 0);
        var kvAdvertise = CliOptions.Create<string?>("--kv-advertise-address", "HOST:PORT peers reach the KV port at, when it differs from --host/--kv-port (NAT, containers, a proxy)", null);
        var kvTransport = CliOptions.Create("--kv-transport", "auto (shared memory with workers on this host, TCP with the others) or tcp", "auto");
        var threads = CliOptions.Create("--threads", "Compute threads (0 = one per core)", 0);
        var discovery = CliOptions.Create<string?>("--discovery", "etcd endpoints to register in, e.g. etcd://127.0.0.1:2379", null);
        var ns = CliOptions.Create("--namespace", "Discovery and event-plane namespace", "default");
        var nats = CliOptions.Create<string?>("--nats", "NATS server for the prefill queue, e.g. nats://127.0.0.1:4222", null);
        var maxLocalPrefill = CliOptions.Create("--max-local-prefill-length", "Decode-first: prompts with at most this many uncached tokens are prefilled locally", 512);
        var maxPrefillQueue = CliOptions.Create("--max-prefill-queue-size", "Decode-first: remote prefills outstanding before prefilling locally", 4);
        var remotePrefillTimeout = CliOptions.Create("--remote-prefill-timeout", "Decode-first: seconds a decode worker waits for a remote prefill before prefilling locally", 30.0);
        var drain = CliOptions.Create("--drain-timeout", "Seconds to let requests in flight finish on SIGTERM", 30.0);
        var logLevel = CliOptions.Create("--log-level", "trace, debug, information, warning, error", "information");
        var logFormat = CliOptions.Create("--log-format", "text or json", "text");
        var httpPort = CliOptions.Optional<int>("--http-port", "Serve the OpenAI API on this port too (TensorRT-LLM context/generation server protocol)");
        var serverRole = CliOptions.Create<string?>("--server-role", "TensorRT-LLM server role for --http-port: CONTEXT or GENERATION", null);
        var metadataFile = CliOptions.Create<string?>("--metadata-server-config-file", "TensorRT-LLM metadata_config.yml: list this server in etcd (needs --http-port and --server-role)", null);
        var serving = new ServingFlags();
        var command = new Command("worker", "Run one worker process (prefill, decode or both) that a `tandem frontend` sends requests to")
        {
            model, servedName, role, isPrefill, id, host, rpcPort, kvPort, kvAdvertise, kvTransport, threads, discovery, ns, nats, maxLocalPrefill, maxPrefillQueue, remotePrefillTimeout, drain, logLevel, logFormat,
            httpPort, serverRole, metadataFile,
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
            var options = new WorkerProcessOptions
            {
                ModelPath = path,
                ServedModelName = parse.GetValue(servedName) is { Length: > 0 } n ? n : null,
                Role = parse.GetValue(isPrefill) ? WorkerRole.Prefill : parse.GetValue(role) switch
                {
                    "both" => WorkerRole.Both,
                    "prefill" => WorkerRole.Prefill,
                    "decode" => WorkerRole.Decode,
                    var other => throw new ArgumentException($"--role must be both, prefill or decode, got '{other}'"),
                },
                InstanceId = parse.GetValue(id) is { Length: > 0 } i ? i : null,
                Host = parse.GetValue(host)!,
                RpcPort = parse.GetValue(rpcPort),
                KvPort = parse.GetValue(kvPort),
                KvAdvertiseAddress = HostPort(parse.GetValue(kvAdvertise), "--kv-advertise-address"),
                SharedMemory = parse.GetValue(kvTransport) switch
                {
                    "auto" => true,
                    "tcp" => false,
                    var other => throw new ArgumentException($"--kv-transport must be auto or tcp, got '{other}'"),
                },
                Threads = parse.GetValue(threads),
                Discovery = parse.GetValue(discovery) is { Length: > 0 } d ? d : null,
                Namespace = parse.GetValue(ns)!,
                Nats = parse.GetValue(nats) is { Length: > 0 } s ? s : null,
                Serving = serving.Read(parse),
                Disaggregation = new Tandem.Worker.DisaggregationOptions
                {
                    MaxLocalPrefillLength = parse.GetValue(maxLocalPrefill),
                    MaxPrefillQueueSize = parse.GetValue(maxPrefillQueue),
                    RemotePrefillTimeout = ServerFlags.Seconds(parse.GetValue(remotePrefillTimeout), "--remote-prefill-timeout"),
                },
                Http = WorkerHttp(parse.GetValue(httpPort), parse.GetValue(serverRole), parse.GetValue(metadataFile)),
            };
            var drainTimeout = ServerFlags.Seconds(parse.GetValue(drain), "--drain-timeout");
            using var loggerFactory = Logging.Create(parse.GetValue(logLevel)!, parse.GetValue(logFormat)!);
            return RunAsync(options, drainTimeout, loggerFactory).GetAwaiter().GetResult();
        }));
        return command;
    }

    /// <summary><c>host:port</c> (an IPv6 host in brackets) with a port in 1..65535, or null when not given.</summary>
    internal static string? HostPort(string? value, string flag)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }
        var colon = value.LastIndexOf(':');
        var host = colon < 0 ? "" : value[..colon];
        var bracketed = host.StartsWith('[') && host.EndsWith(']') && host.Length > 2;
        var valid = host.Length > 0 && (bracketed || !host.Contains(':', StringComparison.Ordinal)) && !host.Any(char.IsWhiteSpace) && !host.Contains('/', StringComparison.Ordinal)
            && int.TryParse(value.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535;
        return valid ? value : throw new ArgumentException($"{flag} must be HOST:PORT with a port in 1..65535 (an IPv6 host in brackets), got '{value}'");
    }

    /// <summary>The TensorRT-LLM server flags: --http-port, --server-role, --metadata-server-config-file.</summary>
    private static WorkerHttpOptions? WorkerHttp(int? port, string? role, string? metadata)
    {
        var serverRole = role switch
        {
            null or "" => (ServerRole?)null,
            _ when role.Equals("CONTEXT", StringComparison.OrdinalIgnoreCase) => ServerRole.Context,
            _ when role.Equals("GENERATION", StringComparison.OrdinalIgnoreCase) => ServerRole.Generation,
            _ => throw new ArgumentException($"--server-role must be CONTEXT or GENERATION, got '{role}'"),
        };
        if (port is null)
        {
            return serverRole is null && string.IsNullOrEmpty(metadata) ? null : throw new ArgumentException("--server-role and --metadata-server-config-file need --http-port");
        }
        if (port is < 0 or > 65535)
        {
            throw new ArgumentException($"--http-port must be in 0..65535, got {port}");
        }
        if (!string.IsNullOrEmpty(metadata) && serverRole is null)
        {
            throw new ArgumentException("--metadata-server-config-file needs --server-role CONTEXT or GENERATION");
        }
        return new WorkerHttpOptions { Port = port.Value, ServerRole = serverRole, MetadataConfigFile = string.IsNullOrEmpty(metadata) ? null : metadata };
    }

    private static async Task<int> RunAsync(WorkerProcessOptions options, TimeSpan drainTimeout, ILoggerFactory loggerFactory)
    {
        using var stop = new ShutdownSignal();
        await using var worker = await WorkerProcess.StartAsync(options, loggerFactory, stop.Token).ConfigureAwait(false);
        // One line scripts can read: where this worker is reachable.
        Console.Out.WriteLine($"tandem-worker id={worker.Instance.InstanceId} role={worker.Instance.Role.ToString().ToLowerInvariant()} rpc={worker.RpcUrl} kv={worker.KvAddress}"
            + (worker.HttpUrl is { } http ? $" http={http.ToString().TrimEnd('/')}" : ""));
        Console.Out.Flush();
        await stop.WaitAsync().ConfigureAwait(false);
        Console.Error.WriteLine($"tandem: worker draining (up to {drainTimeout.TotalSeconds:0} s)");
        var drained = await worker.DrainAsync(drainTimeout).ConfigureAwait(false);
        // Exit 3 tells a supervisor that requests were still running when the deadline passed (they are cut off now).
        Console.Error.WriteLine(drained ? "tandem: worker drained" : "tandem: worker drain deadline missed; stopping with requests in flight");
        return drained ? 0 : 3;
    }
}
