using Microsoft.Extensions.Logging;
using Tandem.Engine.Models;
using Tandem.Engine.Tokenizers;
using Tandem.Orchestrator;
using Tandem.Orchestrator.Config;
using Tandem.Orchestrator.Metadata;
using Tandem.Runtime.Etcd;

namespace Tandem.Hosting;

/// <summary>Settings of `tandem disagg`.</summary>
public sealed record DisaggProcessOptions
{
    /// <summary>TensorRT-LLM's <c>disagg_config.yaml</c>.</summary>
    public required string ConfigFile { get; init; }

    /// <summary>TensorRT-LLM's <c>metadata_config.yml</c>: servers register in etcd; null = the file's URLs.</summary>
    public string? MetadataFile { get; init; }

    /// <summary>Overrides the file's port.</summary>
    public int? Port { get; init; }

    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// `tandem disagg -c disagg_config.yaml [-m metadata_config.yml]`: the TensorRT-LLM compatible orchestrator. When the
/// file's <c>model</c> is a local model, its tokenizer counts prompt tokens for conditional disaggregation and routing.
/// </summary>
public sealed class DisaggProcess : IAsyncDisposable
{
    private ModelArtifact? _model;
    private EtcdKeyValue? _store;

    public OrchestratorServer Server { get; private set; } = null!;

    public static async Task<DisaggProcess> StartAsync(DisaggProcessOptions options, ILoggerFactory loggerFactory, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var metadata = options.MetadataFile is { } m ? ConfigParser.LoadMetadata(m) : null;
        var config = ConfigParser.LoadDisagg(options.ConfigFile, dynamicServers: metadata is not null);
        var process = new DisaggProcess();
        try
        {
            Func<string, int>? count = null;
            if (config.Model is { } model && (File.Exists(model) || Directory.Exists(model)))
            {
                var artifact = ModelFiles.Open(model);
                process._model = artifact;
                var tokenizer = TokenizerFactory.For(artifact);
                count = text => tokenizer.Encode(text, addBos: tokenizer.AddBos, parseSpecial: true).Length;
            }
            IServerRegistry? registry = null;
            if (metadata is not null)
            {
                process._store = new EtcdKeyValue(new EtcdDiscoveryOptions { Endpoints = metadata.EtcdEndpoint, RequestTimeout = metadata.HealthCheckTimeout });
                registry = new EtcdRegistry(process._store);
            }
            process.Server = new OrchestratorServer(new OrchestratorOptions
            {
                Config = config,
                Metadata = metadata,
                Port = options.Port,
                RequestTimeout = options.RequestTimeout,
                CountTokens = count,
            }, registry, loggerFactory);
            await process.Server.StartAsync(cancellationToken).ConfigureAwait(false);
            return process;
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Server is { } server)
        {
            await server.DisposeAsync().ConfigureAwait(false);
        }
        _store?.Dispose();
        _model?.Dispose();
    }

    private sealed class EtcdRegistry(EtcdKeyValue store) : IServerRegistry
    {
        public Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ListAsync(CancellationToken cancellationToken = default) =>
            store.ListAsync(ServerRecord.Prefix, cancellationToken);

        public Task DeleteAsync(string key, CancellationToken cancellationToken = default) => store.DeleteAsync(key, cancellationToken);
    }
}
