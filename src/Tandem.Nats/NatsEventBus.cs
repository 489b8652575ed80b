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

    /// <summary>True while the connection is up (false while it reconnects or after it closed).</summary>
    public bool IsConnected => Connection.State == NatsConnectionState.Connected;

    /// <summary>
    /// Sends a request and waits for the first reply. Fails at once with <see cref="BusUnavailableException"/> when
    /// the connection is down, and as soon as it is lost while waiting (the reply could never arrive), instead of
    /// waiting for <paramref name="timeout"/>.
    /// </summary>
    public async Task<BusMessage> RequestAsync(string subject, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var lost = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnStateChanged(object? sender, NatsConnectionStateChangedEventArgs e)
        {
            if (e.State != NatsConnectionState.Connected)
            {
                try
                {
                    lost.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // The request already ended.
                }
            }
        }
        Connection.StateChanged += OnStateChanged;
        try
        {
            if (!IsConnected)
            {
                throw new BusUnavailableException($"the NATS connection is {Connection.State.ToString().ToLowerInvariant()}; '{subject}' not requested");
            }
            var reply = await Connection.RequestAsync(subject, payload, timeout, null, lost.Token).ConfigureAwait(false);
            return new BusMessage(reply.Subject, reply.Payload, reply.ReplyTo);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BusUnavailableException($"the NATS connection was lost while waiting for a reply on '{subject}'");
        }
        catch (NatsConnectionException e)
        {
            throw new BusUnavailableException($"the NATS connection is unavailable: {e.Message}", e);
        }
        finally
        {
            Connection.StateChanged -= OnStateChanged;
        }
    }

    public ValueTask DisposeAsync() => ownsConnection ? Connection.DisposeAsync() : ValueTask.CompletedTask;
}
