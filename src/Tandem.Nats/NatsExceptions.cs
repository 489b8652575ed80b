namespace Tandem.Nats;

/// <summary>Base type of the errors raised by the NATS client.</summary>
public class NatsException(string message, Exception? innerException = null) : Exception(message, innerException);

/// <summary>The byte stream from the server does not follow the NATS protocol (bad op, bad size, missing CRLF, oversized line).</summary>
public sealed class NatsProtocolException(string message) : NatsException(message);

/// <summary>The connection could not be established, was lost or is closed.</summary>
public class NatsConnectionException(string message, Exception? innerException = null) : NatsException(message, innerException);

/// <summary>The server refused the credentials (user/password or token) in CONNECT.</summary>
public sealed class NatsAuthorizationException(string message) : NatsConnectionException(message);

/// <summary>The server answered with <c>-ERR</c>; <see cref="IsPermissionViolation"/> errors leave the connection open.</summary>
public sealed class NatsServerException(string serverMessage) : NatsException($"nats server error: {serverMessage}")
{
    public string ServerMessage { get; } = serverMessage;

    public bool IsPermissionViolation => ServerMessage.StartsWith("Permissions Violation", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// A publish was refused because the connection is down and the reconnect buffer
/// (<see cref="NatsOptions.ReconnectBufferBytes"/>) is full.
/// </summary>
public sealed class NatsReconnectBufferFullException(long bufferedBytes, long limitBytes)
    : NatsConnectionException($"nats connection is reconnecting and its reconnect buffer is full ({bufferedBytes} of {limitBytes} bytes used); the message was not sent")
{
    public long BufferedBytes { get; } = bufferedBytes;

    public long LimitBytes { get; } = limitBytes;
}
