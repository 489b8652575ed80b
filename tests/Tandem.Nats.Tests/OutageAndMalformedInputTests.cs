using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Tandem.Abstractions;

namespace Tandem.Nats.Tests;

/// <summary>
/// What the event plane sees when the server misbehaves: a connection that receives bytes outside the protocol
/// is dropped and re-established (a request waiting on it fails at once), and while the server is down the bus says
/// so (<see cref="NatsEventBus.IsConnected"/>) and refuses requests at once instead of letting them wait.
/// </summary>
public class OutageAndMalformedInputTests
{
    private static NatsOptions Fast(string url) => new()
    {
        Url = url,
        ReconnectWait = TimeSpan.FromMilliseconds(50),
        MaxReconnectWait = TimeSpan.FromMilliseconds(200),
        ReconnectJitter = TimeSpan.FromMilliseconds(20),
        ConnectTimeout = TimeSpan.FromSeconds(1),
    };

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

    /// <summary>INFO, CONNECT, PING/PONG: a connection the client accepts as established.</summary>
    private static async Task<NetworkStream> HandshakeAsync(TcpClient client, CancellationToken cancellationToken)
    {
        var stream = client.GetStream();
        await stream.WriteAsync("INFO {\"server_id\":\"fake\",\"headers\":true,\"max_payload\":1048576}\r\n"u8.ToArray(), cancellationToken);
        Assert.StartsWith("CONNECT ", await ReadLineAsync(stream, cancellationToken), StringComparison.Ordinal);
        Assert.Equal("PING\r\n", await ReadLineAsync(stream, cancellationToken));
        await stream.WriteAsync("PONG\r\n"u8.ToArray(), cancellationToken);
        return stream;
    }

    [Theory]
    [InlineData("MSG reply.subject 1 notanumber\r\n")]
    [InlineData("BOGUS operation\r\n")]
    [InlineData("MSG reply.subject 1 99999999999\r\n")]
    [InlineData("MSG reply.subject 1 3\r\nabcXY")]
    [InlineData("HMSG reply.subject 1 50 10\r\n")]
    public async Task MalformedServerInput_MidConnection_FailsTheWaitingRequestAtOnce_AndReconnects(string garbage)
    {
        var ct = NatsIntegrationTests.Timeout(90);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var requestSent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var garbageSent = 0;
        var connections = new List<TcpClient>();
        // Every connection gets a normal handshake; the first to publish a request then receives the garbage. Later
        // connections (the reconnect) stay open. Failures of one connection (reset, timeout) do not stop the server.
        async Task ServeAsync(TcpClient client)
        {
            try
            {
                var stream = await HandshakeAsync(client, ct);
                if (Volatile.Read(ref garbageSent) == 0)
                {
                    while (!(await ReadLineAsync(stream, ct)).StartsWith("PUB ", StringComparison.Ordinal))
                    {
                    }
                    if (Interlocked.Exchange(ref garbageSent, 1) == 0)
                    {
                        requestSent.TrySetResult();
                        await stream.WriteAsync(Encoding.ASCII.GetBytes(garbage), ct);
                    }
                }
                var buffer = new byte[4096];
                while (await stream.ReadAsync(buffer, ct) > 0)
                {
                }
            }
            catch (Exception e) when (e is IOException or EndOfStreamException or OperationCanceledException or ObjectDisposedException)
            {
                // The client closed or reset this connection.
            }
        }
        var server = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var client = await listener.AcceptTcpClientAsync(ct);
                    lock (connections)
                    {
                        connections.Add(client);
                    }
                    _ = Task.Run(() => ServeAsync(client), ct);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // The test ended.
            }
        }, ct);

        var errors = new List<Exception?>();
        // A generous connect timeout: the scripted server may answer slowly on a loaded machine.
        await using var bus = await NatsEventBus.ConnectAsync(Fast($"nats://127.0.0.1:{port}") with { ConnectTimeout = TimeSpan.FromSeconds(10) }, ct);
        bus.Connection.StateChanged += (_, e) =>
        {
            if (e.State == NatsConnectionState.Reconnecting)
            {
                lock (errors)
                {
                    errors.Add(e.Error);
                }
            }
        };
        var stopwatch = Stopwatch.StartNew();
        // Nobody will ever answer: only the broken connection can end this request before its 60 s timeout.
        var request = bus.RequestAsync("svc.slow", "x"u8.ToArray(), TimeSpan.FromSeconds(60), ct);
        await requestSent.Task.WaitAsync(ct);
        await Assert.ThrowsAsync<BusUnavailableException>(() => request);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(30), $"the request waited {stopwatch.Elapsed}");
        await FakeServerTests.WaitForStateAsync(bus.Connection, NatsConnectionState.Connected, ct);
        Assert.True(bus.IsConnected);
        lock (errors)
        {
            Assert.Contains(errors, e => e is NatsProtocolException);
        }
        Assert.False(server.IsFaulted, server.Exception?.ToString());
        listener.Stop();
        lock (connections)
        {
            connections.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task EventBus_ServerDown_ReportsDisconnected_RefusesRequestsAtOnce_AndRecoversAfterRestart()
    {
        var ct = NatsIntegrationTests.Timeout(60);
        await using var server = await NatsServerProcess.StartAsync();
        await using var bus = await NatsEventBus.ConnectAsync(Fast(server.Url), ct);
        await using var responder = await NatsEventBus.ConnectAsync(Fast(server.Url), ct);
        IEventBus eventBus = bus;
        Assert.True(eventBus.IsConnected);
        await using var echo = await responder.Connection.SubscribeAsync("svc.echo", "workers", ct);
        var answering = Task.Run(async () =>
        {
            await foreach (var m in echo.Messages.ReadAllAsync(ct))
            {
                await responder.PublishAsync(m.ReplyTo!, m.Payload, cancellationToken: ct);
            }
        }, ct);
        Assert.Equal("hi", Encoding.UTF8.GetString((await eventBus.RequestAsync("svc.echo", "hi"u8.ToArray(), TimeSpan.FromSeconds(10), ct)).Payload.Span));

        // A request in flight when the server dies fails as soon as the connection is lost.
        await using var listener = await responder.Connection.SubscribeAsync("svc.silent", cancellationToken: ct);
        var silent = eventBus.RequestAsync("svc.silent", "x"u8.ToArray(), TimeSpan.FromSeconds(60), ct);
        await listener.Messages.ReadAsync(ct);
        await server.StopAsync();
        var stopwatch = Stopwatch.StartNew();
        await Assert.ThrowsAsync<BusUnavailableException>(() => silent);
        await FakeServerTests.WaitForStateAsync(bus.Connection, NatsConnectionState.Reconnecting, ct);
        Assert.False(eventBus.IsConnected);

        // While down: requests are refused at once, not after their timeout.
        var refused = await Assert.ThrowsAsync<BusUnavailableException>(() => eventBus.RequestAsync("svc.echo", "x"u8.ToArray(), TimeSpan.FromSeconds(60), ct));
        Assert.Contains("reconnecting", refused.Message, StringComparison.Ordinal);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(30), $"took {stopwatch.Elapsed}");

        // Back: both connections reconnect and resubscribe by themselves; request-reply works again.
        await server.StartAsync();
        await FakeServerTests.WaitForStateAsync(bus.Connection, NatsConnectionState.Connected, ct);
        await FakeServerTests.WaitForStateAsync(responder.Connection, NatsConnectionState.Connected, ct);
        Assert.True(eventBus.IsConnected);
        await responder.Connection.FlushAsync(ct);
        Assert.Equal("back", Encoding.UTF8.GetString((await eventBus.RequestAsync("svc.echo", "back"u8.ToArray(), TimeSpan.FromSeconds(10), ct)).Payload.Span));
        Assert.False(answering.IsFaulted, answering.Exception?.ToString());
    }
}
