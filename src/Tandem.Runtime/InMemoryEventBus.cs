using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Tandem.Abstractions;

namespace Tandem.Runtime;

/// <summary>
/// The event plane inside one process, with the same subject, wildcard, queue-group and request-reply semantics as
/// NATS, so that code above <see cref="IEventBus"/> behaves the same embedded and distributed. Each subscription has a
/// bounded buffer; when a slow subscriber's buffer is full the oldest message is dropped (like a NATS slow consumer).
/// </summary>
public sealed class InMemoryEventBus(int subscriptionCapacity = 65536) : IEventBus
{
    private readonly Lock _gate = new();
    private readonly List<Subscription> _subscriptions = [];
    private long _nextInbox;
    private long _roundRobin;

    public ValueTask PublishAsync(string subject, ReadOnlyMemory<byte> payload, string? replyTo = null, CancellationToken cancellationToken = default)
    {
        SubjectMatcher.ValidateSubject(subject);
        Deliver(new BusMessage(subject, payload.ToArray(), replyTo));
        return ValueTask.CompletedTask;
    }

    public async IAsyncEnumerable<BusMessage> SubscribeAsync(string subject, string? queueGroup = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var subscription = Add(subject, queueGroup);
        try
        {
            await foreach (var message in subscription.Channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return message;
            }
        }
        finally
        {
            Remove(subscription);
        }
    }

    public async Task<BusMessage> RequestAsync(string subject, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        SubjectMatcher.ValidateSubject(subject);
        var inbox = $"_INBOX.{Interlocked.Increment(ref _nextInbox)}";
        var reply = Add(inbox, null);
        try
        {
            if (!Deliver(new BusMessage(subject, payload.ToArray(), inbox)))
            {
                throw new NoRespondersException(subject);
            }
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            try
            {
                return await reply.Channel.Reader.ReadAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"no reply on '{subject}' within {timeout.TotalMilliseconds:0} ms");
            }
        }
        finally
        {
            Remove(reply);
        }
    }

    private Subscription Add(string subject, string? queueGroup)
    {
        SubjectMatcher.ValidatePattern(subject);
        var s = new Subscription(subject, queueGroup, Channel.CreateBounded<BusMessage>(new BoundedChannelOptions(subscriptionCapacity)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        }));
        lock (_gate)
        {
            _subscriptions.Add(s);
        }
        return s;
    }

    private void Remove(Subscription s)
    {
        lock (_gate)
        {
            _subscriptions.Remove(s);
        }
        s.Channel.Writer.TryComplete();
    }

    /// <summary>Delivers to every plain match and to one member of each matching queue group; false when nobody matched.</summary>
    private bool Deliver(BusMessage message)
    {
        List<Subscription> targets = [];
        lock (_gate)
        {
            var groups = new Dictionary<string, List<Subscription>>(StringComparer.Ordinal);
            foreach (var s in _subscriptions)
            {
                if (!SubjectMatcher.Matches(s.Pattern, message.Subject))
                {
                    continue;
                }
                if (s.QueueGroup is null)
                {
                    targets.Add(s);
                }
                else
                {
                    var key = s.Pattern + " " + s.QueueGroup;
                    if (!groups.TryGetValue(key, out var members))
                    {
                        groups[key] = members = [];
                    }
                    members.Add(s);
                }
            }
            foreach (var members in groups.Values)
            {
                targets.Add(members[(int)(Interlocked.Increment(ref _roundRobin) % members.Count)]);
            }
        }
        foreach (var t in targets)
        {
            t.Channel.Writer.TryWrite(message);
        }
        return targets.Count > 0;
    }

    private sealed record Subscription(string Pattern, string? QueueGroup, Channel<BusMessage> Channel);
}

/// <summary>NATS subject rules: dot-separated non-empty tokens; in patterns '*' is one token and '>' (last) the rest.</summary>
public static class SubjectMatcher
{
    public static void ValidateSubject(string subject)
    {
        Validate(subject, allowWildcards: false);
    }

    public static void ValidatePattern(string pattern)
    {
        Validate(pattern, allowWildcards: true);
    }

    public static bool Matches(string pattern, string subject)
    {
        var p = pattern.Split('.');
        var s = subject.Split('.');
        for (var i = 0; i < p.Length; i++)
        {
            if (p[i] == ">")
            {
                return s.Length > i;
            }
            if (i >= s.Length || (p[i] != "*" && p[i] != s[i]))
            {
                return false;
            }
        }
        return p.Length == s.Length;
    }

    private static void Validate(string subject, bool allowWildcards)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject);
        var tokens = subject.Split('.');
        for (var i = 0; i < tokens.Length; i++)
        {
            var t = tokens[i];
            if (t.Length == 0 || t.Any(c => c is ' ' or '\t' or '\r' or '\n'))
            {
                throw new ArgumentException($"invalid subject '{subject}': empty token or whitespace");
            }
            var wildcard = t is "*" or ">";
            if (wildcard && !allowWildcards)
            {
                throw new ArgumentException($"invalid subject '{subject}': wildcards are only allowed in subscriptions");
            }
            if (t == ">" && i != tokens.Length - 1)
            {
                throw new ArgumentException($"invalid subject '{subject}': '>' must be the last token");
            }
        }
    }
}
