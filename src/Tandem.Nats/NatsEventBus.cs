using System.Runtime.CompilerServices;
using Tandem.Abstractions;

namespace Tandem.Nats;

/// <summary>
/// The event plane (<see cref="IEventBus"/>) over a NATS server, with the same semantics as the in-memory bus:
/// subjects with '*' and '>' wildcards, queue groups, request-reply, <see cref="NoRespondersException"/> when nobody
/// listens and <see cref="TimeoutException"/> when nobody answers. Each subscription buffers up to
/// <see cref="NatsOptions.SubscriptionCapacity"/> messages and drops the oldest when its reader falls behind.
/// </summary>
public sealed class NatsEventBus(NatsConnection connection, bool ownsConnection = false) : IEventBus, IAsyncDisposable
{
    public NatsConnection Connection { get; } = connection;

    /// <summary>Connects to the servers of <paramref name="options"/> and returns a bus that owns the connection.</summary>
    public static async Task<NatsEventBus> ConnectAsync(NatsOptions options, CancellationToken cancellationToken = default) =>
        new(await NatsConnection.ConnectAsync(options, cancellationToken).ConfigureAwait(false), ownsConnection: true);

    public ValueTask PublishAsync(string subject, ReadOnlyMemory<byte> payload, string? replyTo = null, CancellationToken cancellationToken = default) =>
        Connection.PublishAsync(subject, payload, replyTo, null, cancellationToken);

    public async IAsyncEnumerable<BusMessage> SubscribeAsync(string subject, string? queueGroup = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var subscription = await Connection.SubscribeAsync(subject, queueGroup, cancellationToken).ConfigureAwait(false);
        try
        {
            await foreach (var message in subscription.Messages.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return new BusMessage(message.Subject, message.Payload, message.ReplyTo);
            }
        }
        finally
        {
            await subscription.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async Task<BusMessage> RequestAsync(string subject, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var reply = await Connection.RequestAsync(subject, payload, timeout, null, cancellationToken).ConfigureAwait(false);
        return new BusMessage(reply.Subject, reply.Payload, reply.ReplyTo);
    }

    public ValueTask DisposeAsync() => ownsConnection ? Connection.DisposeAsync() : ValueTask.CompletedTask;
}
