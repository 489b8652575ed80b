namespace Tandem.Nats.Tests;

/// <summary>Each test runs its own nats-server, kills it and (maybe) restarts it on the same port.</summary>
public class NatsReconnectTests
{
    private static NatsOptions Fast(string url) => new()
    {
        Url = url,
        ReconnectWait = TimeSpan.FromMilliseconds(50),
        MaxReconnectWait = TimeSpan.FromMilliseconds(200),
        ReconnectJitter = TimeSpan.FromMilliseconds(20),
        ConnectTimeout = TimeSpan.FromSeconds(1),
    };

    private static string S(NatsMsg m) => NatsIntegrationTests.S(m);

    private static byte[] B(string s) => NatsIntegrationTests.B(s);

    [Fact]
    public async Task ServerRestart_MidTraffic_ReconnectsResubscribesAndDeliversBufferedPublishes()
    {
        var ct = NatsIntegrationTests.Timeout(60);
        await using var server = await NatsServerProcess.StartAsync();
        await using var a = await NatsConnection.ConnectAsync(Fast(server.Url), ct);
        await using var b = await NatsConnection.ConnectAsync(Fast(server.Url), ct);
        var states = new List<NatsConnectionState>();
        a.StateChanged += (_, e) =>
        {
            lock (states)
            {
                states.Add(e.State);
            }
        };
        await using var own = await a.SubscribeAsync("restart.>", cancellationToken: ct);
        await using var remote = await b.SubscribeAsync("restart.>", cancellationToken: ct);
        await using var counted = await b.SubscribeAsync("restart.max", cancellationToken: ct);
        await counted.UnsubscribeAsync(4);

        // Background traffic across the outage: publishing must never fail (the buffer is large enough).
        using var stopTraffic = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var traffic = Task.Run(async () =>
        {
            var n = 0;
            while (!stopTraffic.IsCancellationRequested)
            {
                await a.PublishAsync("restart.traffic", BitConverter.GetBytes(n++), cancellationToken: ct);
                await Task.Delay(2, ct);
            }
            return n;
        }, ct);

        await a.PublishAsync("restart.max", B("m0"), cancellationToken: ct);
        await a.PublishAsync("restart.max", B("m1"), cancellationToken: ct);
        await Task.Delay(200, ct);
        await server.StopAsync();
        await FakeServerTests.WaitForStateAsync(a, NatsConnectionState.Reconnecting, ct);
        await FakeServerTests.WaitForStateAsync(b, NatsConnectionState.Reconnecting, ct);
        for (var i = 0; i < 50; i++)
        {
            await a.PublishAsync("restart.outage", B($"o{i}"), cancellationToken: ct);
        }
        await Task.Delay(300, ct);
        await server.StartAsync();
        await FakeServerTests.WaitForStateAsync(a, NatsConnectionState.Connected, ct);
        await FakeServerTests.WaitForStateAsync(b, NatsConnectionState.Connected, ct);
        await b.FlushAsync(ct); // b's subscriptions are registered again
        await a.PublishAsync("restart.max", B("m2"), cancellationToken: ct);
        await a.PublishAsync("restart.max", B("m3"), cancellationToken: ct);
        await a.PublishAsync("restart.max", B("m4"), cancellationToken: ct);
        await a.PublishAsync("restart.after", B("after"), cancellationToken: ct);
        await stopTraffic.CancelAsync();
        var published = await traffic;
        await a.PublishAsync("restart.traffic", BitConverter.GetBytes(published), cancellationToken: ct);

        // a's own subscription was re-sent before the buffered publishes, so every outage message arrives, in order.
        var ownOutage = new List<string>();
        var ownTraffic = new List<int>();
        while (true)
        {
            var m = await own.Messages.ReadAsync(ct);
            if (m.Subject == "restart.outage")
            {
                ownOutage.Add(S(m));
            }
            else if (m.Subject == "restart.traffic")
            {
                ownTraffic.Add(BitConverter.ToInt32(m.Payload.Span));
                if (ownTraffic[^1] == published)
                {
                    break;
                }
            }
        }
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"o{i}"), ownOutage);
        Assert.True(ownTraffic.Zip(ownTraffic.Skip(1)).All(p => p.First <= p.Second), "traffic out of order");

        // b resubscribed by itself: the message after the restart arrives, and the max-count subscription ends after 4.
        while (true)
        {
            var m = await remote.Messages.ReadAsync(ct);
            if (m.Subject == "restart.after")
            {
                break;
            }
        }
        var max = new List<string>();
        await foreach (var m in counted.WithCancellation(ct))
        {
            max.Add(S(m));
        }
        Assert.Equal(4, max.Count);
        Assert.Equal(["m0", "m1"], max.Take(2));
        Assert.True(a.Statistics.Reconnects >= 1);
        lock (states)
        {
            Assert.Contains(NatsConnectionState.Reconnecting, states);
            Assert.Equal(NatsConnectionState.Connected, states[^1]);
        }
    }

    [Fact]
    public async Task PublishAsync_OutageBeyondBuffer_FailsClearlyThenRecovers()
    {
        var ct = NatsIntegrationTests.Timeout(30);
        await using var server = await NatsServerProcess.StartAsync();
        await using var nc = await NatsConnection.ConnectAsync(Fast(server.Url) with { ReconnectBufferBytes = 10_000 }, ct);
        await using var sub = await nc.SubscribeAsync("overflow.test", cancellationToken: ct);
        await server.StopAsync();
        await FakeServerTests.WaitForStateAsync(nc, NatsConnectionState.Reconnecting, ct);
        var payload = new byte[1000];
        var buffered = 0;
        var ex = await Assert.ThrowsAsync<NatsReconnectBufferFullException>(async () =>
        {
            while (true)
            {
                await nc.PublishAsync("overflow.test", payload, cancellationToken: ct);
                buffered++;
            }
        });
        Assert.InRange(buffered, 8, 10);
        Assert.Equal(10_000, ex.LimitBytes);
        await server.StartAsync();
        await FakeServerTests.WaitForStateAsync(nc, NatsConnectionState.Connected, ct);
        for (var i = 0; i < buffered; i++)
        {
            await sub.Messages.ReadAsync(ct);
        }
        await nc.PublishAsync("overflow.test", payload, cancellationToken: ct); // accepted again
        await sub.Messages.ReadAsync(ct);
    }

    [Fact]
    public async Task Reconnect_AttemptsExhausted_ClosesAndFailsOperations()
    {
        var ct = NatsIntegrationTests.Timeout(30);
        await using var server = await NatsServerProcess.StartAsync();
        await using var nc = await NatsConnection.ConnectAsync(Fast(server.Url) with { MaxReconnectAttempts = 3 }, ct);
        var sub = await nc.SubscribeAsync("gone.test", cancellationToken: ct);
        var request = nc.RequestAsync("gone.test", B("x"), TimeSpan.FromSeconds(30), cancellationToken: ct);
        await sub.Messages.ReadAsync(ct);
        await server.StopAsync();
        await FakeServerTests.WaitForStateAsync(nc, NatsConnectionState.Closed, ct);
        var ex = await Assert.ThrowsAsync<NatsConnectionException>(async () => await nc.PublishAsync("gone.test", B("x"), cancellationToken: ct));
        Assert.Contains("gave up reconnecting after 3", ex.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<NatsConnectionException>(() => request);
        await Assert.ThrowsAsync<NatsConnectionException>(() => NatsIntegrationTests.DrainAsync(sub, ct));
    }

    [Fact]
    public async Task ConnectAsync_NoServer_FailsClearly()
    {
        var ct = NatsIntegrationTests.Timeout();
        var port = NatsServerProcess.FreePort();
        var ex = await Assert.ThrowsAsync<NatsConnectionException>(() => NatsConnection.ConnectAsync(new NatsOptions { Url = $"nats://127.0.0.1:{port}" }, ct));
        Assert.Contains($"127.0.0.1:{port}", ex.Message, StringComparison.Ordinal);
    }
}
