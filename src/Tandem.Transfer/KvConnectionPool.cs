using System.Collections.Concurrent;
using System.Net.Sockets;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// Client connections of the network transports. One transfer uses one connection at a time (no multiplexing); idle
/// connections are kept per (server address, layout) up to <see cref="KvTransferOptions.MaxIdleConnectionsPerEndpoint"/>,
/// so concurrent transfers open more connections and sequential ones reuse them without a new handshake.
/// </summary>
internal sealed class KvConnectionPool(string scheme, KvTransferOptions options) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<(string Address, KvLayout Layout), ConcurrentQueue<KvConnection>> _idle = new();
    private int _disposed;

    public KvTransferOptions Options { get; } = options;

    /// <summary>An idle connection for <paramref name="address"/>, or a new one after the handshake.</summary>
    public async Task<KvConnection> RentAsync(string address, KvLayout layout, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_idle.TryGetValue((address, layout), out var queue))
        {
            while (queue.TryDequeue(out var idle))
            {
                if (!idle.LooksClosed())
                {
                    return idle;
                }
                await idle.DisposeAsync().ConfigureAwait(false);
            }
        }
        return await ConnectAsync(address, layout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Keeps a healthy connection for reuse; closes it otherwise.</summary>
    public async ValueTask ReturnAsync(string address, KvConnection connection, bool healthy)
    {
        if (healthy && !connection.IsBroken && Volatile.Read(ref _disposed) == 0 && connection.Layout is { } layout)
        {
            var queue = _idle.GetOrAdd((address, layout), static _ => new ConcurrentQueue<KvConnection>());
            if (queue.Count < Options.MaxIdleConnectionsPerEndpoint)
            {
                queue.Enqueue(connection);
                return;
            }
        }
        await connection.DisposeAsync().ConfigureAwait(false);
    }

    private async Task<KvConnection> ConnectAsync(string address, KvLayout layout, CancellationToken cancellationToken)
    {
        var (host, port) = ParseAddress(scheme, address);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        KvConnection? connection = null;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            throw new KvTransferException(e is OperationCanceledException
                ? $"connecting to {address} timed out after {Options.ConnectTimeout.TotalMilliseconds:0} ms"
                : $"cannot connect to {address}: {e.Message}", e);
        }
        try
        {
            connection = new KvConnection(socket, Options, address);
            using (connection.BeginOperation(cancellationToken))
            {
                connection.WriteFrame(KvFrameType.Hello, KvFrames.EncodeHello(layout));
                await connection.FlushAsync("the handshake").ConfigureAwait(false);
                var payload = await connection.ExpectAsync(KvFrameType.HelloOk, "the handshake reply").ConfigureAwait(false);
                if (payload.Length < 1 || payload.FirstSpan[0] != KvFrames.Version)
                {
                    throw new KvProtocolException(KvErrorCode.Version, $"{address} answered the handshake with an unsupported protocol version");
                }
                connection.PeerSharesPool = payload.Length >= 2 && (payload.Slice(1, 1).FirstSpan[0] & KvFrames.SharedPoolFlag) != 0;
                connection.Consume();
            }
            connection.Layout = layout;
            return connection;
        }
        catch
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                socket.Dispose();
            }
            throw;
        }
    }

    /// <summary>Splits <c>scheme://host:port</c>; throws <see cref="KvTransferException"/> on anything else.</summary>
    public static (string Host, int Port) ParseAddress(string scheme, string address)
    {
        if (address is null || !address.StartsWith(scheme, StringComparison.Ordinal) ||
            !Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Port <= 0 || string.IsNullOrEmpty(uri.Host))
        {
            throw new KvTransferException($"invalid KV address '{address}': expected {scheme}host:port");
        }
        return (uri.DnsSafeHost, uri.Port);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        foreach (var queue in _idle.Values)
        {
            while (queue.TryDequeue(out var connection))
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
