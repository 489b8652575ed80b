namespace Tandem.Abstractions;

/// <summary>A message received from the event bus. <see cref="ReplyTo"/> is set for requests that expect an answer.</summary>
public sealed record BusMessage(string Subject, ReadOnlyMemory<byte> Payload, string? ReplyTo = null);

/// <summary>
/// The event plane (blueprint §5): subject-based publish/subscribe with NATS semantics — tokens separated by '.',
/// '*' matches one token and '>' the rest; subscribers sharing a queue group split the messages (each message goes to
/// one of them); request-reply over a reply subject. In memory for `tandem serve`, NATS for separate processes.
/// </summary>
public interface IEventBus
{
    /// <summary>Sends a message to every matching subscription (one member per queue group); no one listening is not an error.</summary>
    ValueTask PublishAsync(string subject, ReadOnlyMemory<byte> payload, string? replyTo = null, CancellationToken cancellationToken = default);

    /// <summary>Receives messages on <paramref name="subject"/> until cancelled; the subscription ends with the enumeration.</summary>
    IAsyncEnumerable<BusMessage> SubscribeAsync(string subject, string? queueGroup = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends a request and waits for the first reply. Throws <see cref="TimeoutException"/> when none comes within
    /// <paramref name="timeout"/> and <see cref="NoRespondersException"/> when no subscription matches the subject.
    /// </summary>
    Task<BusMessage> RequestAsync(string subject, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>
    /// False while the bus cannot reach its server (a NATS outage): publishes are then buffered or dropped by their
    /// callers, and requests fail at once with <see cref="BusUnavailableException"/>. Always true in memory.
    /// </summary>
    bool IsConnected => true;
}

/// <summary>The bus has no connection to its server (now, or it was lost while waiting for a reply).</summary>
public class BusUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A request found no subscriber (e.g. no prefill worker is listening).</summary>
public class NoRespondersException(string subject) : Exception($"no subscriber for '{subject}'")
{
    public string Subject { get; } = subject;
}
