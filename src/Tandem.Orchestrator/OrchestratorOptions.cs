using Tandem.Orchestrator.Config;

namespace Tandem.Orchestrator;

/// <summary>Settings of `tandem disagg`, validated at startup.</summary>
public sealed record OrchestratorOptions
{
    public required DisaggConfig Config { get; init; }

    /// <summary>Metadata-server mode: servers register themselves; null = the file's URLs only.</summary>
    public MetadataConfig? Metadata { get; init; }

    /// <summary>Overrides the file's port (0 picks a free one; tests).</summary>
    public int? Port { get; init; }

    /// <summary>Deadline of one whole request (context and generation legs, including streaming).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Deadline to connect to a server.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Health checks of servers from the file (metadata mode uses its refresh interval).</summary>
    public TimeSpan HealthCheckInterval { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan HealthCheckTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Largest accepted request body.</summary>
    public long MaxRequestBodyBytes { get; init; } = 32L << 20;

    /// <summary>Counts a text prompt's tokens (conditional disaggregation, routing); null = estimate from its length.</summary>
    public Func<string, int>? CountTokens { get; init; }

    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Config);
        if (RequestTimeout <= TimeSpan.Zero || ConnectTimeout <= TimeSpan.Zero || HealthCheckInterval <= TimeSpan.Zero || HealthCheckTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("orchestrator timeouts and intervals must be positive");
        }
        if (Port is < 0 or > 65535)
        {
            throw new ArgumentException($"port must be in 0..65535, got {Port}");
        }
    }
}
