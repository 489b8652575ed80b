using System.Threading.Channels;

namespace Tandem.Nats;

/// <summary>A server-side subscription (one sid) and where its messages go.</summary>
internal abstract class SubscriptionBase(long sid, string subject, string? queueGroup)
{
    private long _delivered;
    private long _maxMsgs;

    public long Sid { get; } = sid;

    public string Subject { get; } = subject;

    public string? QueueGroup { get; } = queueGroup;

    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Messages after which the server ends the subscription (UNSUB with a count); 0 = no limit.</summary>
    public long MaxMsgs
    {
        get => Interlocked.Read(ref _maxMsgs);
        set => Interlocked.Exchange(ref _maxMsgs, value);
    }

    /// <summary>Counts a delivery; true when the subscription has reached <see cref="MaxMsgs"/>.</summary>
    public bool CountDelivery()
    {
        var delivered = Interlocked.Increment(ref _delivered);
        var max = MaxMsgs;
        return max > 0 && delivered >= max;
    }

    public abstract void Deliver(NatsMsg message);

    public abstract void Complete(Exception? error);
}

/// <summary>
/// Messages of one subscription, buffered in a bounded channel: when the reader is slower than the traffic the
/// oldest message is dropped and counted in <see cref="Dropped"/> (the client-side form of a NATS slow consumer).
/// Enumerate it, or read <see cref="Messages"/>; dispose (or <see cref="UnsubscribeAsync"/>) to end it.
/// </summary>
public sealed class NatsSubscription : IAsyncEnumerable<NatsMsg>, IAsyncDisposable
{
    private readonly NatsConnection _connection;
    private readonly Channel<NatsMsg> _channel;
    private long _dropped;

    internal NatsSubscription(NatsConnection connection, long sid, string subject, string? queueGroup, int capacity)
    {
        _connection = connection;
        _channel = Channel.CreateBounded<NatsMsg>(
            new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleWriter = true },
            _ => Interlocked.Increment(ref _dropped));
        Entry = new ChannelEntry(this, sid, subject, queueGroup);
    }

    public string Subject => Entry.Subject;

    public string? QueueGroup => Entry.QueueGroup;

    /// <summary>Messages received from the server for this subscription (including dropped ones).</summary>
    public long Delivered => Entry.Delivered;

    /// <summary>Messages dropped because the buffer was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public ChannelReader<NatsMsg> Messages => _channel.Reader;

    internal SubscriptionBase Entry { get; }

    /// <summary>Ends the subscription now, or (with <paramref name="maxMsgs"/>) after that many messages in total.</summary>
    public ValueTask UnsubscribeAsync(long? maxMsgs = null) => _connection.UnsubscribeAsync(Entry, maxMsgs);

    public ValueTask DisposeAsync() => _connection.UnsubscribeAsync(Entry, null);

    public IAsyncEnumerator<NatsMsg> GetAsyncEnumerator(CancellationToken cancellationToken = default) =>
        _channel.Reader.ReadAllAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);

    private sealed class ChannelEntry(NatsSubscription owner, long sid, string subject, string? queueGroup) : SubscriptionBase(sid, subject, queueGroup)
    {
        public override void Deliver(NatsMsg message) => owner._channel.Writer.TryWrite(message);

        public override void Complete(Exception? error) => owner._channel.Writer.TryComplete(error);
    }
}

/// <summary>The connection's one wildcard inbox subscription (<c>_INBOX.&lt;random&gt;.*</c>); replies are routed by their last token.</summary>
internal sealed class InboxSubscription(long sid, string prefix, Action<NatsMsg> onReply) : SubscriptionBase(sid, prefix + "*", null)
{
    public string Prefix { get; } = prefix;

    public override void Deliver(NatsMsg message) => onReply(message);

    public override void Complete(Exception? error)
    {
    }
}
