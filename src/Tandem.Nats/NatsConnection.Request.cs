using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Tandem.Abstractions;
using Tandem.Nats.Protocol;

namespace Tandem.Nats;

public sealed partial class NatsConnection
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<NatsMsg>> _requests = new(StringComparer.Ordinal);
    private InboxSubscription? _inbox;
    private long _nextRequest;

    /// <summary>
    /// Publishes a request with a reply subject under this connection's inbox and waits for the first reply.
    /// Throws <see cref="NoRespondersException"/> when the server reports that nobody subscribes to the subject
    /// (status 503), <see cref="TimeoutException"/> when no reply arrives in time (default
    /// <see cref="NatsOptions.RequestTimeout"/>), and <see cref="OperationCanceledException"/> when cancelled.
    /// </summary>
    public async Task<NatsMsg> RequestAsync(string subject, ReadOnlyMemory<byte> payload, TimeSpan? timeout = null, NatsHeaders? headers = null, CancellationToken cancellationToken = default)
    {
        var wait = timeout ?? _options.RequestTimeout;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(wait, TimeSpan.Zero, nameof(timeout));
        var inbox = EnsureInbox();
        var token = Interlocked.Increment(ref _nextRequest).ToString(CultureInfo.InvariantCulture);
        var reply = new TaskCompletionSource<NatsMsg>(TaskCreationOptions.RunContinuationsAsynchronously);
        _requests[token] = reply;
        try
        {
            await PublishAsync(subject, payload, inbox.Prefix + token, headers, cancellationToken).ConfigureAwait(false);
            NatsMsg message;
            try
            {
                message = await reply.Task.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"no reply on '{subject}' within {wait.TotalMilliseconds:0} ms");
            }
            if (message.Status == 503)
            {
                throw new NoRespondersException(subject);
            }
            return message;
        }
        finally
        {
            _requests.TryRemove(token, out _);
        }
    }

    /// <summary>Creates the connection's inbox subscription on first use.</summary>
    private InboxSubscription EnsureInbox()
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (_inbox is null)
            {
                var prefix = "_INBOX." + RandomNumberGenerator.GetString("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 22) + ".";
                _inbox = new InboxSubscription(Interlocked.Increment(ref _nextSid), prefix, OnReply);
                _subscriptions[_inbox.Sid] = _inbox;
                if (_state == NatsConnectionState.Connected)
                {
                    Commit(ProtocolWriter.WriteSubscribe(_commands.Writer, _inbox.Subject, null, _inbox.Sid));
                }
            }
            return _inbox;
        }
    }

    private void OnReply(NatsMsg message)
    {
        var prefix = _inbox!.Prefix;
        if (message.Subject.Length > prefix.Length && _requests.TryRemove(message.Subject[prefix.Length..], out var reply))
        {
            reply.TrySetResult(message);
        }
    }

    private void FailRequests(Exception error)
    {
        foreach (var (token, reply) in _requests)
        {
            if (_requests.TryRemove(token, out _))
            {
                reply.TrySetException(error);
            }
        }
    }
}
