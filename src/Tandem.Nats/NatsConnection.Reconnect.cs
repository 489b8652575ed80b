using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using Tandem.Nats.Protocol;

namespace Tandem.Nats;

public sealed partial class NatsConnection
{
    private const int MaxServers = 64;

    /// <summary>
    /// Opens one connection: TCP connect, INFO, TLS when asked for or required, CONNECT + PING answered by PONG (or a
    /// -ERR, e.g. refused credentials), then the subscriptions; all within <see cref="NatsOptions.ConnectTimeout"/>.
    /// On success the connection is live and the writer starts sending the commands queued meanwhile.
    /// </summary>
    private async Task EstablishAsync(NatsServerAddress server, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposeCts.Token);
        timeout.CancelAfter(_options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        PipeReader? reader = null;
        try
        {
            await socket.ConnectAsync(server.Host, server.Port, timeout.Token).ConfigureAwait(false);
            stream = new NetworkStream(socket, ownsSocket: true);
            var info = await ReadInfoAsync(stream, timeout.Token).ConfigureAwait(false);
            var tls = _options.Tls || server.Tls || info.TlsRequired;
            if (tls)
            {
                if (!info.TlsRequired && !info.TlsAvailable)
                {
                    throw new NatsConnectionException($"TLS was requested but server {server} does not offer it");
                }
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false, _options.TlsCertificateValidation);
                stream = ssl;
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = server.Host }, timeout.Token).ConfigureAwait(false);
            }
            reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 4096, leaveOpen: true));
            var handshake = new ArrayBufferWriter<byte>(512);
            ProtocolWriter.WriteConnect(handshake, _options, server, tls);
            ProtocolWriter.WritePing(handshake);
            await stream.WriteAsync(handshake.WrittenMemory, timeout.Token).ConfigureAwait(false);
            await stream.FlushAsync(timeout.Token).ConfigureAwait(false);
            info = await WaitForHandshakePongAsync(server, reader, info, timeout.Token).ConfigureAwait(false);

            var connection = new Connection(server, socket, stream, reader);
            List<SubscriptionBase> subscriptions;
            lock (_lock)
            {
                if (_state == NatsConnectionState.Closed)
                {
                    throw ClosedException();
                }
                _current = connection;
                _state = NatsConnectionState.Connected;
                _pingsOut = 0;
                _connected.TrySetResult();
                subscriptions = [.. _subscriptions.Values.OrderBy(s => s.Sid)];
            }
            Volatile.Write(ref _serverInfo, info);
            AddDiscoveredServers(server, info);
            if (subscriptions.Count > 0)
            {
                handshake.Clear();
                foreach (var s in subscriptions)
                {
                    ProtocolWriter.WriteSubscribe(handshake, s.Subject, s.QueueGroup, s.Sid);
                    if (s.MaxMsgs > 0)
                    {
                        ProtocolWriter.WriteUnsubscribe(handshake, s.Sid, Math.Max(1, s.MaxMsgs - s.Delivered));
                    }
                }
                try
                {
                    await stream.WriteAsync(handshake.WrittenMemory, timeout.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
                {
                    // Live already: a loss now is repaired like any other.
                    connection.ReadTask = Task.CompletedTask;
                    OnConnectionLost(connection, new NatsConnectionException($"connection to {server} lost while re-subscribing", ex));
                    return;
                }
            }
            connection.ReadTask = Task.Run(() => ReadLoopAsync(connection), CancellationToken.None);
            connection.WriteTask = Task.Run(() => WriteLoopAsync(connection), CancellationToken.None);
            connection.PingTask = PingLoopAsync(connection);
            RaiseStateChanged(NatsConnectionState.Connected, server, null);
        }
        catch (Exception ex)
        {
            if (reader is not null)
            {
                await reader.CompleteAsync().ConfigureAwait(false);
            }
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }
            socket.Dispose();
            if (ex is OperationCanceledException && timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested && !_disposeCts.IsCancellationRequested)
            {
                throw new NatsConnectionException($"connecting to {server} timed out after {_options.ConnectTimeout.TotalMilliseconds:0} ms");
            }
            if (ex is SocketException or IOException or System.Security.Authentication.AuthenticationException)
            {
                throw new NatsConnectionException($"cannot connect to {server}: {ex.Message}", ex);
            }
            throw;
        }
    }

    /// <summary>Reads the INFO line a server sends first (byte by byte, so nothing after it is consumed before TLS).</summary>
    private async Task<NatsServerInfo> ReadInfoAsync(Stream stream, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ProtocolParser.DefaultMaxControlLine + 1);
        try
        {
            var length = 0;
            while (length < 2 || buffer[length - 1] != (byte)'\n')
            {
                if (length == ProtocolParser.DefaultMaxControlLine + 1)
                {
                    throw new NatsProtocolException("the server's first line is too long");
                }
                var read = await stream.ReadAsync(buffer.AsMemory(length, 1), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new NatsConnectionException("the server closed the connection before sending INFO");
                }
                length += read;
            }
            var sequence = new ReadOnlySequence<byte>(buffer, 0, length);
            if (!_parser.TryRead(ref sequence, out var op) || op.Kind != ServerOpKind.Info)
            {
                throw new NatsProtocolException("the server did not start with INFO");
            }
            return NatsServerInfo.Parse(op.Text!);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task<NatsServerInfo> WaitForHandshakePongAsync(NatsServerAddress server, PipeReader reader, NatsServerInfo info, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            try
            {
                while (_parser.TryRead(ref buffer, out var op))
                {
                    switch (op.Kind)
                    {
                        case ServerOpKind.Pong:
                            return info;
                        case ServerOpKind.Info:
                            info = NatsServerInfo.Parse(op.Text!);
                            break;
                        case ServerOpKind.Err:
                            var message = op.Text ?? "";
                            if (message.Contains("Authorization", StringComparison.OrdinalIgnoreCase) || message.Contains("Authentication", StringComparison.OrdinalIgnoreCase))
                            {
                                throw new NatsAuthorizationException($"server {server} refused the credentials: {message}");
                            }
                            throw new NatsServerException(message);
                        default:
                            break;
                    }
                }
            }
            finally
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
            }
            if (result.IsCompleted)
            {
                throw new NatsConnectionException($"server {server} closed the connection during the handshake");
            }
        }
    }

    /// <summary>Called once per connection by whichever loop notices the loss first; starts reconnecting (or closes).</summary>
    private void OnConnectionLost(Connection connection, Exception? error)
    {
        List<TaskCompletionSource?> waiters;
        lock (_lock)
        {
            if (!ReferenceEquals(_current, connection) || _state == NatsConnectionState.Closed)
            {
                return;
            }
            _current = null;
            _state = NatsConnectionState.Reconnecting;
            _pingsOut = 0;
            waiters = [.. _pongWaiters];
            _pongWaiters.Clear();
            ReleaseDrainWaiters();
            if (_connected.Task.IsCompleted)
            {
                _connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
        connection.Abort(_commands.Reader);
        var lost = new NatsConnectionException($"connection to {connection.Server} lost: {error?.Message ?? "closed"}", error);
        foreach (var w in waiters)
        {
            w?.TrySetException(lost);
        }
        RaiseStateChanged(NatsConnectionState.Reconnecting, connection.Server, error);
        _ = Task.Run(() => ReconnectLoopAsync(connection, lost), CancellationToken.None);
    }

    /// <summary>
    /// Tries the servers in turn, starting after the lost one, waiting <see cref="NatsOptions.ReconnectWait"/> (doubled
    /// after each full round up to <see cref="NatsOptions.MaxReconnectWait"/>) plus jitter before each attempt; closes
    /// the connection after <see cref="NatsOptions.MaxReconnectAttempts"/> failed attempts.
    /// </summary>
    private async Task ReconnectLoopAsync(Connection lost, Exception reason)
    {
        await lost.StopAsync(_commands.Reader).ConfigureAwait(false);
        var attempts = 0;
        var round = 0;
        Exception last = reason;
        while (!_disposeCts.IsCancellationRequested)
        {
            var servers = SnapshotServers();
            for (var i = 0; i < servers.Count; i++)
            {
                if (_options.MaxReconnectAttempts >= 0 && attempts >= _options.MaxReconnectAttempts)
                {
                    await CloseAsync(new NatsConnectionException($"gave up reconnecting after {attempts} attempt(s): {last.Message}", last)).ConfigureAwait(false);
                    return;
                }
                attempts++;
                NatsServerAddress server;
                lock (_lock)
                {
                    _serverIndex = (_serverIndex + 1) % servers.Count;
                    server = servers[_serverIndex];
                }
                var wait = TimeSpan.FromTicks(Math.Min(_options.MaxReconnectWait.Ticks, _options.ReconnectWait.Ticks << Math.Min(round, 16)))
                    + TimeSpan.FromTicks((long)(Random.Shared.NextDouble() * _options.ReconnectJitter.Ticks));
                try
                {
                    await Task.Delay(wait, _disposeCts.Token).ConfigureAwait(false);
                    await EstablishAsync(server, _disposeCts.Token).ConfigureAwait(false);
                    Interlocked.Increment(ref _reconnects);
                    return;
                }
                catch (Exception) when (_disposeCts.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex) when (ex is NatsException or IOException or SocketException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
                {
                    last = ex;
                    RaiseError(new NatsConnectionException($"reconnect attempt {attempts} to {server} failed: {ex.Message}", ex));
                }
            }
            round++;
        }
    }

    /// <summary>Adds the cluster's announced client URLs (INFO connect_urls) to the server list.</summary>
    private void AddDiscoveredServers(NatsServerAddress current, NatsServerInfo info)
    {
        if (!_options.DiscoverServers || info.ConnectUrls.Count == 0)
        {
            return;
        }
        lock (_servers)
        {
            foreach (var url in info.ConnectUrls)
            {
                NatsServerAddress address;
                try
                {
                    address = NatsServerAddress.Parse(url) with { Tls = current.Tls, User = current.User, Password = current.Password, Token = current.Token };
                }
                catch (FormatException)
                {
                    continue;
                }
                if (_servers.Count < MaxServers && !_servers.Any(s => s.Port == address.Port && string.Equals(s.Host, address.Host, StringComparison.OrdinalIgnoreCase)))
                {
                    _servers.Add(address);
                }
            }
        }
    }
}
