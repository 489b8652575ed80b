using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Tandem.Transfer.Tests;

/// <summary>
/// A TCP proxy on loopback port 0 that forwards to a target and can corrupt one byte at a given offset of a direction,
/// stall a direction after some bytes, or kill every connection. Offsets count bytes per connection. Linked into the
/// frontend and integration tests too.
/// </summary>
internal sealed class TcpFaultProxy : IAsyncDisposable
{
    private readonly IPEndPoint _target;
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<Socket> _sockets = [];
    private readonly Task _accept;
    private readonly TaskCompletionSource _stalled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TcpFaultProxy(IPEndPoint target)
    {
        _target = target;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _accept = Task.Run(AcceptAsync);
    }

    public int Port { get; }

    /// <summary>Offset of the client→server byte to flip (-1: none).</summary>
    public long CorruptClientToServerAt { get; set; } = -1;

    public long CorruptServerToClientAt { get; set; } = -1;

    /// <summary>After this many client→server bytes nothing more is forwarded (-1: never stall).</summary>
    public long StallClientToServerAfter { get; set; } = -1;

    public long StallServerToClientAfter { get; set; } = -1;

    /// <summary>Completes when a direction first reaches its stall point, so that a test can act exactly mid-transfer.</summary>
    public Task Stalled => _stalled.Task;

    /// <summary>
    /// A stalled direction goes on reading from its source (dropping the bytes) so that it sees the source close, and
    /// then closes both sides, as the kernel does for the peer when the source process dies. Off: a stalled direction
    /// reads nothing more (the sender feels back-pressure) and its connection stays open until the proxy closes it.
    /// </summary>
    public bool CloseWhenStalledSourceCloses { get; set; }

    public string Address(string scheme) => $"{scheme}127.0.0.1:{Port}";

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }
            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await server.ConnectAsync(_target, _stop.Token);
            }
            catch (Exception)
            {
                client.Dispose();
                server.Dispose();
                continue;
            }
            _sockets.Add(client);
            _sockets.Add(server);
            _ = PumpAsync(client, server, () => CorruptClientToServerAt, () => StallClientToServerAfter);
            _ = PumpAsync(server, client, () => CorruptServerToClientAt, () => StallServerToClientAfter);
        }
    }

    private async Task PumpAsync(Socket from, Socket to, Func<long> corruptAt, Func<long> stallAfter)
    {
        var buffer = new byte[64 * 1024];
        long offset = 0;
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }
                var at = corruptAt();
                if (at >= offset && at < offset + read)
                {
                    buffer[at - offset] ^= 0x5A;
                }
                var forward = read;
                var stall = stallAfter();
                if (stall >= 0 && offset + read > stall)
                {
                    forward = (int)Math.Max(0, stall - offset);
                }
                if (forward > 0)
                {
                    await to.SendAsync(buffer.AsMemory(0, forward), SocketFlags.None, _stop.Token);
                }
                offset += read;
                if (forward < read)
                {
                    _stalled.TrySetResult();
                    if (!CloseWhenStalledSourceCloses)
                    {
                        await Task.Delay(Timeout.Infinite, _stop.Token);
                    }
                    while (await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token) > 0)
                    {
                        // dropped: the direction is stalled
                    }
                    from.Dispose();
                    to.Dispose();
                    return;
                }
            }
        }
        catch (Exception)
        {
            from.Dispose();
            to.Dispose();
        }
    }

    /// <summary>Closes every proxied connection at once.</summary>
    public void KillAll()
    {
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        KillAll();
        await _accept;
        _stop.Dispose();
    }
}
