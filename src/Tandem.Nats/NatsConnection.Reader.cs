using Tandem.Nats.Protocol;

namespace Tandem.Nats;

public sealed partial class NatsConnection
{
    /// <summary>Parses the server's operations from one socket and dispatches them until the socket is lost.</summary>
    private async Task ReadLoopAsync(Connection connection)
    {
        Exception? error;
        try
        {
            while (true)
            {
                var result = await connection.Reader.ReadAsync(connection.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    while (_parser.TryRead(ref buffer, out var op))
                    {
                        Dispatch(connection, op);
                    }
                }
                finally
                {
                    connection.Reader.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted)
                {
                    error = new NatsConnectionException($"server {connection.Server} closed the connection");
                    break;
                }
            }
        }
        catch (Exception) when (connection.Token.IsCancellationRequested)
        {
            return;
        }
#pragma warning disable CA1031 // Any failure of the socket or the stream means the connection is lost.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            error = ex;
        }
        OnConnectionLost(connection, error);
    }

    private void Dispatch(Connection connection, in ServerOp op)
    {
        switch (op.Kind)
        {
            case ServerOpKind.Msg:
                DispatchMessage(op);
                break;
            case ServerOpKind.Ping:
                WriteControlIfConnected(ProtocolWriter.WritePong);
                break;
            case ServerOpKind.Pong:
                lock (_lock)
                {
                    _pingsOut = 0;
                    if (_pongWaiters.TryDequeue(out var waiter))
                    {
                        waiter?.TrySetResult();
                    }
                }
                break;
            case ServerOpKind.Info:
                var info = NatsServerInfo.Parse(op.Text!);
                Volatile.Write(ref _serverInfo, info);
                AddDiscoveredServers(connection.Server, info);
                break;
            case ServerOpKind.Err:
                var error = new NatsServerException(op.Text ?? "");
                if (!error.IsPermissionViolation)
                {
                    // Fatal: the server closes the connection after it; reconnect now with this as the reason.
                    throw error;
                }
                OnPermissionViolation(error);
                break;
            default:
                break;
        }
    }

    private void DispatchMessage(in ServerOp op)
    {
        Interlocked.Increment(ref _inMsgs);
        Interlocked.Add(ref _inBytes, op.HeaderBlock.Length + op.Payload.Length);
        if (!_subscriptions.TryGetValue(op.Sid, out var subscription))
        {
            return; // Arrived after the UNSUB was queued.
        }
        var message = new NatsMsg(op.Subject!, op.ReplyTo, op.HasHeaders ? NatsHeaders.Parse(op.HeaderBlock.Span) : null, op.Payload);
        var done = subscription.CountDelivery();
        subscription.Deliver(message);
        if (done && _subscriptions.TryRemove(op.Sid, out _))
        {
            subscription.Complete(null);
        }
    }

    /// <summary>
    /// A permission violation leaves the connection open: a refused subscription ends with the error, a refused
    /// publish is reported through <see cref="Error"/> (publishing is fire-and-forget).
    /// </summary>
    private void OnPermissionViolation(NatsServerException error)
    {
        const string SubscriptionMarker = "for Subscription to ";
        var at = error.ServerMessage.IndexOf(SubscriptionMarker, StringComparison.OrdinalIgnoreCase);
        if (at >= 0)
        {
            var subject = error.ServerMessage[(at + SubscriptionMarker.Length)..].Trim().Trim('"');
            foreach (var s in _subscriptions.Values)
            {
                if (s.Subject == subject && _subscriptions.TryRemove(s.Sid, out _))
                {
                    s.Complete(error);
                }
            }
        }
        RaiseError(error);
    }
}
