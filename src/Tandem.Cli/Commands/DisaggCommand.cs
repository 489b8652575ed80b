using System.CommandLine;
using Microsoft.Extensions.Logging;
using Tandem.Hosting;

namespace Tandem.Cli.Commands;

/// <summary>`tandem disagg -c disagg_config.yaml [-m metadata_config.yml]`: TensorRT-LLM compatible disaggregated server.</summary>
internal static class DisaggCommand
{
    public static Command Create()
    {
        var config = CliOptions.Create<string?>("--config", "TensorRT-LLM disaggregated-server file (disagg_config.yaml)", null, "-c", "--config_file");
        var metadata = CliOptions.Create<string?>("--metadata-server-config-file", "TensorRT-LLM metadata-server file (metadata_config.yml): servers register in etcd", null, "-m");
        var port = CliOptions.Optional<int>("--port", "Port to listen on (default: the file's port)");
        var timeout = CliOptions.Create("--request-timeout", "Seconds a request may take (both legs, streaming included)", 600.0);
        var logLevel = CliOptions.Create("--log-level", "trace, debug, information, warning, error", "information");
        var logFormat = CliOptions.Create("--log-format", "text or json", "text");
        var command = new Command("disagg", "Run a TensorRT-LLM compatible disaggregated server in front of context and generation servers")
        {
            config, metadata, port, timeout, logLevel, logFormat,
        };
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var file = parse.GetValue(config);
            if (string.IsNullOrEmpty(file))
            {
                throw new ArgumentException("-c disagg_config.yaml is required");
            }
            var options = new DisaggProcessOptions
            {
                ConfigFile = file,
                MetadataFile = parse.GetValue(metadata) is { Length: > 0 } m ? m : null,
                Port = parse.GetValue(port),
                RequestTimeout = ServerFlags.Seconds(parse.GetValue(timeout), "--request-timeout"),
            };
            using var loggerFactory = Logging.Create(parse.GetValue(logLevel)!, parse.GetValue(logFormat)!);
            return RunAsync(options, loggerFactory).GetAwaiter().GetResult();
        }));
        return command;
    }

    private static async Task<int> RunAsync(DisaggProcessOptions options, ILoggerFactory loggerFactory)
    {
        using var stop = new ShutdownSignal();
        await using var process = await DisaggProcess.StartAsync(options, loggerFactory, stop.Token).ConfigureAwait(false);
        Console.Error.WriteLine($"tandem: disaggregated server ready at {process.Server.Url}");
        await stop.WaitAsync().ConfigureAwait(false);
        return 0;
    }
}
