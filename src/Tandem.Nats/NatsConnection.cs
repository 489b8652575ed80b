using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using Tandem.Nats.Protocol;

namespace Tandem.Nats;

/// <summary>
/// A client connection for the NATS core protocol: publish (PUB/HPUB), subscribe with wildcards and queue groups,
/// request-reply over one inbox subscription, PING/PONG keep-alive, and automatic reconnect with buffered publishes
/// and re-sent subscriptions.
/// </summary>
/// <remarks>
/// All commands are formatted into one command pipe under a lock, so concurrent callers never interleave bytes; a
/// single writer loop per live socket drains it (see <c>NatsConnection.Writer.cs</c>). While disconnected the pipe
/// keeps the commands (up to <see cref="NatsOptions.ReconnectBufferBytes"/>) and the next connection sends them after
/// CONNECT and the subscriptions. Publishing completes when the command is queued; <see cref="FlushAsync(CancellationToken)"/> waits
/// until the server has processed everything queued before it.
/// </remarks>
public sealed partial class NatsConnection : IAsyncDisposable
{
    private readonly NatsOptions _options;
    private readonly Lock _lock = new();
    private readonly Pipe _commands = new(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
    private readonly ProtocolParser _parser;
    private readonly ConcurrentDictionary<long, SubscriptionBase> _subscriptions = new();
    private readonly List<NatsServerAddress> _servers;
    private readonly CancellationTokenSource _disposeCts = new();
    private TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Connection? _current;
    private NatsConnectionState _state = NatsConnectionState.Disconnected;
    private NatsServerInfo? _serverInfo;
    private Exception? _closeReason;
    private int _serverIndex;
    private long _nextSid;
    private long _inMsgs;
    private long _inBytes;
    private long _outMsgs;
    private long _outBytes;
    private long _reconnects;

    public NatsConnection(NatsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Validate();
        _servers = [.. NatsOptions.ParseServers(options.Url)];
        _parser = new ProtocolParser(options.MaxPayloadBytes);
    }

    /// <summary>Raised on every state change (connected, lost, reconnected, closed), outside the connection's locks.</summary>
    public event EventHandler<NatsConnectionStateChangedEventArgs>? StateChanged;

    /// <summary>Raised for errors no caller receives: permission violations, failed reconnect attempts.</summary>
    public event EventHandler<NatsErrorEventArgs>? Error;

    public NatsOptions Options => _options;

    public NatsConnectionState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    /// <summary>INFO of the server of the current (or last) connection.</summary>
    public NatsServerInfo? ServerInfo => Volatile.Read(ref _serverInfo);

    /// <summary>The server of the live connection, or null.</summary>
    public string? ConnectedServer => Volatile.Read(ref _current)?.Server.ToString();

    public NatsStatistics Statistics => new(
        Interlocked.Read(ref _inMsgs), Interlocked.Read(ref _inBytes), Interlocked.Read(ref _outMsgs), Interlocked.Read(ref _outBytes),
        Interlocked.Read(ref _reconnects), Interlocked.Read(ref _pendingBytes));

    /// <summary>Creates a connection and connects it.</summary>
    public static async Task<NatsConnection> ConnectAsync(NatsOptions options, CancellationToken cancellationToken = default)
    {
        var connection = new NatsConnection(options);
        try
        {
            await connection.ConnectAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Connects to the first server of the list that accepts (each tried once). Throws
    /// <see cref="NatsAuthorizationException"/> when credentials are refused and <see cref="NatsConnectionException"/>
    /// when no server could be reached; later losses are repaired by reconnecting.
    /// </summary>
    public async Task ConnectAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (_state != NatsConnectionState.Disconnected)
            {
                throw new InvalidOperationException($"the connection is already {_state}");
            }
            _state = NatsConnectionState.Connecting;
        }
        RaiseStateChanged(NatsConnectionState.Connecting, null, null);
        Exception? last = null;
        var servers = SnapshotServers();
        for (var i = 0; i < servers.Count; i++)
        {
            try
            {
                await EstablishAsync(servers[i], cancellationToken).ConfigureAwait(false);
                lock (_lock)
                {
                    _serverIndex = i;
                }
                return;
            }
            catch (NatsAuthorizationException)
            {
                SetDisconnected();
                throw;
            }
            catch (Exception ex) when (ex is NatsException or ObjectDisposedException && !cancellationToken.IsCancellationRequested)
            {
                last = ex;
            }
            catch
            {
                SetDisconnected();
                throw;
            }
        }
        SetDisconnected();
        throw last is NatsConnectionException ? last : new NatsConnectionException($"cannot connect to {_options.Url}: {last?.Message}", last);

        void SetDisconnected()
        {
            lock (_lock)
            {
                if (_state == NatsConnectionState.Connecting)
                {
                    _state = NatsConnectionState.Disconnected;
                }
            }
        }
    }

    /// <summary>Sends what is still queued (best effort, bounded by the write timeout), then closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (State == NatsConnectionState.Connected)
        {
            try
            {
                await FlushAsync(_options.WriteTimeout).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NatsException or TimeoutException or OperationCanceledException or ObjectDisposedException)
            {
                // Closing anyway.
            }
        }
        await CloseAsync(null).ConfigureAwait(false);
        _disposeCts.Dispose();
    }

    /// <summary>Closes for good: fails pending work, ends subscriptions (with <paramref name="reason"/> when it is an error).</summary>
    private async Task CloseAsync(Exception? reason)
    {
        Connection? current;
        List<TaskCompletionSource?> waiters;
        lock (_lock)
        {
            if (_state == NatsConnectionState.Closed)
            {
                return;
            }
            _state = NatsConnectionState.Closed;
            _closeReason = reason;
            current = _current;
            _current = null;
            waiters = [.. _pongWaiters];
            _pongWaiters.Clear();
            _connected.TrySetException(ClosedException());
            ReleaseDrainWaiters();
        }
        await _disposeCts.CancelAsync().ConfigureAwait(false);
        if (current is not null)
        {
            await current.StopAsync(_commands.Reader).ConfigureAwait(false);
        }
        foreach (var w in waiters)
        {
            w?.TrySetException(ClosedException());
        }
        foreach (var sub in _subscriptions.Values)
        {
            sub.Complete(reason);
        }
        _subscriptions.Clear();
        FailRequests(ClosedException());
        lock (_lock)
        {
            _commands.Writer.Complete();
        }
        RaiseStateChanged(NatsConnectionState.Closed, null, reason);
    }

    private void ThrowIfClosed()
    {
        if (_state == NatsConnectionState.Closed)
        {
            throw ClosedException();
        }
    }

    private Exception ClosedException() => _closeReason is null
        ? new ObjectDisposedException(nameof(NatsConnection), "the NATS connection is closed")
        : new NatsConnectionException($"the NATS connection is closed: {_closeReason.Message}", _closeReason);

    private List<NatsServerAddress> SnapshotServers()
    {
        lock (_servers)
        {
            return [.. _servers];
        }
    }

    private void RaiseStateChanged(NatsConnectionState state, NatsServerAddress? server, Exception? error)
    {
        try
        {
            StateChanged?.Invoke(this, new NatsConnectionStateChangedEventArgs(state, server?.ToString(), error));
        }
#pragma warning disable CA1031 // A faulty handler must not break the connection's loops.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    private void RaiseError(Exception error)
    {
        try
        {
            Error?.Invoke(this, new NatsErrorEventArgs(error));
        }
#pragma warning disable CA1031 // A faulty handler must not break the connection's loops.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    /// <summary>One live socket with its reader, writer and ping loops.</summary>
    private sealed class Connection(NatsServerAddress server, Socket socket, Stream stream, PipeReader reader) : IDisposable
    {
        private readonly CancellationTokenSource _cts = new();

        public NatsServerAddress Server { get; } = server;

        public Stream Stream { get; } = stream;

        public PipeReader Reader { get; } = reader;

        public CancellationToken Token => _cts.Token;

        public Task ReadTask { get; set; } = Task.CompletedTask;

        public Task WriteTask { get; set; } = Task.CompletedTask;

        public Task PingTask { get; set; } = Task.CompletedTask;

        /// <summary>Stops the loops and closes the socket; the writer loop is woken from the shared command pipe.</summary>
        public void Abort(PipeReader commands)
        {
            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
            commands.CancelPendingRead();
            socket.Dispose();
        }

        public async Task StopAsync(PipeReader commands)
        {
            Abort(commands);
            try
            {
                await Task.WhenAll(ReadTask, WriteTask, PingTask).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // The loops report their own errors; stopping only waits for them.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
            await Reader.CompleteAsync().ConfigureAwait(false);
            await Stream.DisposeAsync().ConfigureAwait(false);
            Dispose();
        }

        public void Dispose() => _cts.Dispose();
    }
}
