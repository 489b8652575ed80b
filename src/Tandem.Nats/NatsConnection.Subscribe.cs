using Tandem.Nats.Protocol;

namespace Tandem.Nats;

public sealed partial class NatsConnection
{
    /// <summary>
    /// Subscribes to <paramref name="subject"/> (wildcards allowed), optionally in a queue group. When connected, waits
    /// until the server has registered the subscription, so that messages published afterwards by anyone arrive.
    /// Subscriptions survive reconnects (re-sent with the same sid).
    /// </summary>
    public async Task<NatsSubscription> SubscribeAsync(string subject, string? queueGroup = null, CancellationToken cancellationToken = default)
    {
        NatsSubjects.ValidatePattern(subject);
        if (queueGroup is not null)
        {
            NatsSubjects.ValidateQueueGroup(queueGroup);
        }
        var subscription = new NatsSubscription(this, Interlocked.Increment(ref _nextSid), subject, queueGroup, _options.SubscriptionCapacity);
        var entry = subscription.Entry;
        bool connected;
        lock (_lock)
        {
            ThrowIfClosed();
            _subscriptions[entry.Sid] = entry;
            connected = _state == NatsConnectionState.Connected;
            if (connected)
            {
                Commit(ProtocolWriter.WriteSubscribe(_commands.Writer, subject, queueGroup, entry.Sid));
            }
        }
        if (connected)
        {
            try
            {
                await FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                await UnsubscribeAsync(entry, null).ConfigureAwait(false);
                throw;
            }
            catch (Exception ex) when (ex is NatsConnectionException or TimeoutException)
            {
                // Lost meanwhile: the subscription is re-sent on reconnect.
            }
        }
        return subscription;
    }

    internal ValueTask UnsubscribeAsync(SubscriptionBase subscription, long? maxMsgs)
    {
        if (maxMsgs is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(maxMsgs), "maxMsgs must be positive");
        }
        lock (_lock)
        {
            if (!_subscriptions.ContainsKey(subscription.Sid))
            {
                return ValueTask.CompletedTask;
            }
            var connected = _state == NatsConnectionState.Connected;
            if (maxMsgs is { } max && subscription.Delivered < max)
            {
                subscription.MaxMsgs = max;
                if (connected)
                {
                    Commit(ProtocolWriter.WriteUnsubscribe(_commands.Writer, subscription.Sid, max));
                }
                return ValueTask.CompletedTask;
            }
            _subscriptions.TryRemove(subscription.Sid, out _);
            if (connected)
            {
                Commit(ProtocolWriter.WriteUnsubscribe(_commands.Writer, subscription.Sid, null));
            }
        }
        subscription.Complete(null);
        return ValueTask.CompletedTask;
    }
}
