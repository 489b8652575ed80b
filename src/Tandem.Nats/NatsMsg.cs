namespace Tandem.Nats;

/// <summary>A message delivered to a subscription or returned by a request.</summary>
public sealed record NatsMsg(string Subject, string? ReplyTo, NatsHeaders? Headers, ReadOnlyMemory<byte> Payload)
{
    /// <summary>The status of an HMSG status line (<c>NATS/1.0 503</c>), or null when the message has none.</summary>
    public int? Status => Headers?.Status;
}
