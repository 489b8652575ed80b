namespace Tandem.Orchestrator.Backends;

/// <summary>One context or generation server: its address, load and health as the orchestrator sees them.</summary>
public sealed class BackendServer(Uri url, string? metadataKey = null)
{
    private int _inflight;
    private long _inflightTokens;
    private int _failures;
    private volatile bool _healthy = true;

    /// <summary>Base URL ending with '/'.</summary>
    public Uri Url { get; } = url;

    /// <summary>The server's key in the metadata server, when it registered itself.</summary>
    public string? MetadataKey { get; } = metadataKey;

    /// <summary>In rotation: passed its last health check and its last request did not fail to connect.</summary>
    public bool Healthy => _healthy;

    public int Inflight => Volatile.Read(ref _inflight);

    public long InflightTokens => Interlocked.Read(ref _inflightTokens);

    /// <summary>Consecutive failed health checks.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _failures);

    /// <summary>The address as written in logs: <c>http://host:port</c>.</summary>
    public string Name => Url.GetLeftPart(UriPartial.Authority);

    internal void Enter(int tokens)
    {
        Interlocked.Increment(ref _inflight);
        Interlocked.Add(ref _inflightTokens, tokens);
    }

    internal void Exit(int tokens)
    {
        Interlocked.Decrement(ref _inflight);
        Interlocked.Add(ref _inflightTokens, -tokens);
    }

    /// <summary>A health check passed: back in rotation.</summary>
    internal void ReportHealthy()
    {
        Volatile.Write(ref _failures, 0);
        _healthy = true;
    }

    /// <summary>A health check failed; returns the number of consecutive failures. Two take the server out of rotation.</summary>
    internal int ReportUnhealthy()
    {
        var failures = Interlocked.Increment(ref _failures);
        if (failures >= 2)
        {
            _healthy = false;
        }
        return failures;
    }

    /// <summary>A request could not reach the server: out of rotation until a health check passes.</summary>
    internal void ReportUnreachable() => _healthy = false;

    public override string ToString() => Name;
}
