namespace Tandem.Nats;

public enum NatsConnectionState
{
    /// <summary>Not connected yet; publishes are buffered up to the reconnect buffer.</summary>
    Disconnected,
    Connecting,
    Connected,
    /// <summary>The connection was lost and is being re-established; publishes are buffered.</summary>
    Reconnecting,
    /// <summary>Disposed, or reconnecting gave up; every operation fails.</summary>
    Closed,
}

/// <summary>A change of <see cref="NatsConnection.State"/>: the server involved and, for losses, the cause.</summary>
public sealed class NatsConnectionStateChangedEventArgs(NatsConnectionState state, string? server, Exception? error) : EventArgs
{
    public NatsConnectionState State { get; } = state;

    public string? Server { get; } = server;

    public Exception? Error { get; } = error;
}

/// <summary>An error that did not come from a call: a permission violation, a failed reconnect attempt.</summary>
public sealed class NatsErrorEventArgs(Exception error) : EventArgs
{
    public Exception Error { get; } = error;
}

/// <summary>Counters of one connection (all reconnects together).</summary>
public readonly record struct NatsStatistics(long MessagesIn, long BytesIn, long MessagesOut, long BytesOut, long Reconnects, long PendingBytes);
