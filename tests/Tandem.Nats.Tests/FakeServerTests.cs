using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Tandem.Nats.Tests;

/// <summary>Behaviour checked against a scripted TCP server (no nats-server needed).</summary>
public class FakeServerTests
{
    private static CancellationToken Timeout(int seconds = 10) =>
        CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken, new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token).Token;

    private static async Task<string> ReadLineAsync(Stream stream, CancellationToken cancellationToken)
    {
        var sb = new StringBuilder();
        var one = new byte[1];
        while (!sb.ToString().EndsWith("\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(one, cancellationToken) == 0)
            {
                throw new EndOfStreamException();
            }
            sb.Append((char)one[0]);
        }
        return sb.ToString();
    }

    [Fact]
    public async Task ConnectAsync_TlsOption_StartsTlsHandshakeAfterInfo()
    {
        var ct = Timeout();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync(ct);
            var stream = client.GetStream();
            await stream.WriteAsync("INFO {\"server_id\":\"fake\",\"tls_available\":true}\r\n"u8.ToArray(), ct);
            var first = new byte[1];
            var read = await stream.ReadAsync(first, ct);
            return read == 1 ? first[0] : -1;
        }, ct);
        await using var connection = new NatsConnection(new NatsOptions { Url = $"nats://127.0.0.1:{port}", Tls = true, ConnectTimeout = TimeSpan.FromSeconds(2) });
        await Assert.ThrowsAnyAsync<NatsConnectionException>(() => connection.ConnectAsync(ct));
        Assert.Equal(0x16, await server); // a TLS handshake record (ClientHello), not CONNECT
    }

    [Fact]
    public async Task ConnectAsync_TlsUrlButServerWithoutTls_FailsClearly()
    {
        var ct = Timeout();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync(ct);
            await client.GetStream().WriteAsync("INFO {\"server_id\":\"fake\"}\r\n"u8.ToArray(), ct);
            await Task.Delay(500, ct);
        }, ct);
        await using var connection = new NatsConnection(new NatsOptions { Url = $"tls://127.0.0.1:{port}" });
        var ex = await Assert.ThrowsAnyAsync<NatsConnectionException>(() => connection.ConnectAsync(ct));
        Assert.Contains("does not offer", ex.Message, StringComparison.Ordinal);
        await server;
    }

    [Fact]
    public async Task ConnectAsync_ServerNeverSendsInfo_TimesOut()
    {
        var ct = Timeout();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var accept = listener.AcceptTcpClientAsync(ct);
        await using var connection = new NatsConnection(new NatsOptions { Url = $"nats://127.0.0.1:{port}", ConnectTimeout = TimeSpan.FromMilliseconds(300) });
        var ex = await Assert.ThrowsAnyAsync<NatsConnectionException>(() => connection.ConnectAsync(ct));
        Assert.Contains("timed out", ex.Message, StringComparison.Ordinal);
        (await accept).Dispose();
    }

    [Fact]
    public async Task PingLoop_ServerStopsAnswering_DetectsStaleConnection()
    {
        var ct = Timeout();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync(ct);
            var stream = client.GetStream();
            await stream.WriteAsync("INFO {\"server_id\":\"fake\",\"headers\":true}\r\n"u8.ToArray(), ct);
            Assert.StartsWith("CONNECT ", await ReadLineAsync(stream, ct), StringComparison.Ordinal);
            Assert.Equal("PING\r\n", await ReadLineAsync(stream, ct));
            await stream.WriteAsync("PONG\r\n"u8.ToArray(), ct);
            var pings = 0;
            while (await ReadLineAsync(stream, ct) == "PING\r\n")
            {
                pings++; // never answered
            }
            return pings;
        }, ct);
        var lost = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var connection = new NatsConnection(new NatsOptions
        {
            Url = $"nats://127.0.0.1:{port}",
            PingInterval = TimeSpan.FromMilliseconds(100),
            MaxPingsOut = 2,
            MaxReconnectAttempts = 0,
        });
        connection.StateChanged += (_, e) =>
        {
            if (e.State is NatsConnectionState.Reconnecting)
            {
                lost.TrySetResult(e.Error);
            }
        };
        await connection.ConnectAsync(ct);
        var error = await lost.Task.WaitAsync(ct);
        Assert.Contains("stale connection", error?.Message, StringComparison.Ordinal);
        await Assert.ThrowsAnyAsync<IOException>(() => server);
        Assert.Equal(NatsConnectionState.Closed, await WaitForStateAsync(connection, NatsConnectionState.Closed, ct));
    }

    [Fact]
    public async Task PublishAsync_NeverConnected_BuffersUntilLimitThenFailsClearly()
    {
        await using var connection = new NatsConnection(new NatsOptions { ReconnectBufferBytes = 4096 });
        var payload = new byte[1000];
        var sent = 0;
        var ex = await Assert.ThrowsAsync<NatsReconnectBufferFullException>(async () =>
        {
            for (var i = 0; i < 100; i++)
            {
                await connection.PublishAsync("a.b", payload, cancellationToken: TestContext.Current.CancellationToken);
                sent++;
            }
        });
        Assert.InRange(sent, 3, 4);
        Assert.Contains("reconnect buffer is full", ex.Message, StringComparison.Ordinal);
    }

    internal static async Task<NatsConnectionState> WaitForStateAsync(NatsConnection connection, NatsConnectionState state, CancellationToken cancellationToken)
    {
        while (connection.State != state)
        {
            await Task.Delay(10, cancellationToken);
        }
        return connection.State;
    }
}
