namespace Tandem.Runtime.Grpc;

/// <summary>Deadlines and connection settings of the gRPC request plane's client side.</summary>
public sealed record GrpcWorkerClientOptions
{
    /// <summary>Deadline of a whole Generate stream, first token to last.</summary>
    public TimeSpan GenerateDeadline { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Deadline of unary calls (Stats, ReleaseKv, Health) and of a context-only Prefill.</summary>
    public TimeSpan UnaryDeadline { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time to open a TCP connection to a worker before the call fails with Unavailable.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>An HTTP/2 ping goes out after this much silence on a connection.</summary>
    public TimeSpan KeepAlivePingDelay { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>A connection whose ping is not answered within this time is closed and its calls fail (the worker is gone).</summary>
    public TimeSpan KeepAlivePingTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest response message accepted.</summary>
    public int MaxReceiveMessageSize { get; init; } = 16 * 1024 * 1024;

    public void Validate()
    {
        Positive(GenerateDeadline, nameof(GenerateDeadline));
        Positive(UnaryDeadline, nameof(UnaryDeadline));
        Positive(ConnectTimeout, nameof(ConnectTimeout));
        Positive(KeepAlivePingDelay, nameof(KeepAlivePingDelay));
        Positive(KeepAlivePingTimeout, nameof(KeepAlivePingTimeout));
        if (MaxReceiveMessageSize <= 0)
        {
            throw new ArgumentException($"max receive message size must be > 0, got {MaxReceiveMessageSize}", nameof(MaxReceiveMessageSize));
        }
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{name} must be > 0, got {value}", name);
        }
    }
}
