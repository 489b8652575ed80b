namespace Tandem.Orchestrator.Config;

/// <summary>Which server of a pool takes the next request (TensorRT-LLM's <c>router.type</c>).</summary>
public enum RouterType
{
    RoundRobin,
    LoadBalancing,
    KvCacheAware,
}

/// <summary>A pool's router: its type and the arguments that apply to it.</summary>
public sealed record RouterConfig(RouterType Type = RouterType.RoundRobin)
{
    /// <summary><c>load_balancing</c> with <c>use_tokens: true</c>: balance by prompt tokens in flight, not requests.</summary>
    public bool UseTokens { get; init; }
}

/// <summary><c>context_servers</c> or <c>generation_servers</c>.</summary>
public sealed record ServerPoolConfig
{
    public int NumInstances { get; init; }

    /// <summary>Base URLs (<c>http://host:port</c>), normalized from the file's <c>host:port</c> entries.</summary>
    public IReadOnlyList<Uri> Urls { get; init; } = [];

    public RouterConfig Router { get; init; } = new();

    /// <summary>Engine options of the section (tensor_parallel_size, kv_cache_config, ...): accepted, not applied.</summary>
    public IReadOnlyList<string> IgnoredOptions { get; init; } = [];
}

/// <summary><c>conditional_disagg_config</c>: prompts this short skip the context server.</summary>
public sealed record ConditionalDisaggConfig(int MaxLocalPrefillLength);

/// <summary>A TensorRT-LLM <c>disagg_config.yaml</c> as Tandem reads it.</summary>
public sealed record DisaggConfig
{
    public string Hostname { get; init; } = "localhost";
    public int Port { get; init; } = 8000;
    public string? Model { get; init; }
    public string? Backend { get; init; }

    /// <summary>Extra attempts of a failed leg, each on another server when one is left.</summary>
    public int MaxRetries { get; init; } = 1;

    public required ServerPoolConfig ContextServers { get; init; }
    public required ServerPoolConfig GenerationServers { get; init; }
    public ConditionalDisaggConfig? ConditionalDisagg { get; init; }

    /// <summary>What was accepted but not applied, or not recognized, each with its file position.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary><c>metadata_config.yml</c>: where servers register themselves (etcd) and how the orchestrator watches them.</summary>
public sealed record MetadataConfig
{
    public string ServerType { get; init; } = "etcd";
    public string Hostname { get; init; } = "localhost";
    public int Port { get; init; } = 2379;

    /// <summary>Timeout of one <c>/health</c> check.</summary>
    public TimeSpan HealthCheckTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often the server list is read again and servers are checked.</summary>
    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromSeconds(10);

    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The etcd endpoint in Tandem's form.</summary>
    public string EtcdEndpoint => $"etcd://{Hostname}:{Port}";
}

/// <summary>A configuration file is invalid; the message names the file, line and column.</summary>
public sealed class ConfigException(string message) : ArgumentException(message);
