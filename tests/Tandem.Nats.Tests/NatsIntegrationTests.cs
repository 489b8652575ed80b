using System.Text;
using Tandem.Abstractions;

namespace Tandem.Nats.Tests;

/// <summary>Client against a real nats-server shared by the collection.</summary>
[Collection("nats-server")]
public class NatsIntegrationTests(NatsServerFixture server)
{
    internal static CancellationToken Timeout(int seconds = 20) =>
        CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken, new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token).Token;

    internal static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    internal static string S(NatsMsg m) => Encoding.UTF8.GetString(m.Payload.Span);

    private Task<NatsConnection> ConnectAsync(CancellationToken ct) => NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url }, ct);

    internal static async Task<List<NatsMsg>> ReadAsync(NatsSubscription subscription, int count, CancellationToken ct)
    {
        var list = new List<NatsMsg>();
        while (list.Count < count)
        {
            list.Add(await subscription.Messages.ReadAsync(ct));
        }
        return list;
    }

    /// <summary>Enumerates to the end; an error that ended the subscription is thrown as is.</summary>
    internal static async Task DrainAsync(NatsSubscription subscription, CancellationToken ct)
    {
        await foreach (var _ in subscription.WithCancellation(ct))
        {
        }
    }

    [Fact]
    public async Task PublishAsync_Subscriber_ReceivesPayloadAndSubject()
    {
        var ct = Timeout();
        await using var a = await ConnectAsync(ct);
        await using var b = await ConnectAsync(ct);
        await using var sub = await b.SubscribeAsync("greet.one", cancellationToken: ct);
        await a.PublishAsync("greet.one", B("hello"), "reply.here", cancellationToken: ct);
        var m = await sub.Messages.ReadAsync(ct);
        Assert.Equal("greet.one", m.Subject);
        Assert.Equal("reply.here", m.ReplyTo);
        Assert.Equal("hello", S(m));
        Assert.Equal(NatsConnectionState.Connected, a.State);
        Assert.NotNull(a.ServerInfo);
    }

    [Fact]
    public async Task SubscribeAsync_Wildcards_MatchOneTokenOrTheRest()
    {
        var ct = Timeout();
        await using var nc = await ConnectAsync(ct);
        await using var star = await nc.SubscribeAsync("wc.*.end", cancellationToken: ct);
        await using var rest = await nc.SubscribeAsync("wc.>", cancellationToken: ct);
        foreach (var subject in new[] { "wc.a.end", "wc.a.b.end", "wc.x", "other.a.end" })
        {
            await nc.PublishAsync(subject, B(subject), cancellationToken: ct);
        }
        await nc.PublishAsync("wc.done.end", B("done"), cancellationToken: ct);
        Assert.Equal(["wc.a.end", "done"], (await ReadAsync(star, 2, ct)).Select(S));
        Assert.Equal(["wc.a.end", "wc.a.b.end", "wc.x", "done"], (await ReadAsync(rest, 4, ct)).Select(S));
    }

    [Fact]
    public async Task SubscribeAsync_QueueGroup_SplitsMessagesExactlyOnce()
    {
        var ct = Timeout();
        await using var nc = await ConnectAsync(ct);
        await using var other = await ConnectAsync(ct);
        await using var w1 = await nc.SubscribeAsync("jobs.work", "workers", ct);
        await using var w2 = await other.SubscribeAsync("jobs.work", "workers", ct);
        await using var all = await nc.SubscribeAsync("jobs.work", cancellationToken: ct);
        const int N = 1000;
        for (var i = 0; i < N; i++)
        {
            await nc.PublishAsync("jobs.work", B(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), cancellationToken: ct);
        }
        Assert.Equal(N, (await ReadAsync(all, N, ct)).Count);
        await nc.FlushAsync(ct);
        await other.FlushAsync(ct);
        while (w1.Delivered + w2.Delivered < N)
        {
            await Task.Delay(10, ct);
        }
        var got = (await ReadAsync(w1, (int)w1.Delivered, ct)).Concat(await ReadAsync(w2, (int)w2.Delivered, ct)).Select(S).ToList();
        Assert.Equal(N, got.Count);
        Assert.Equal(N, got.Distinct().Count());
        Assert.True(w1.Delivered > 0 && w2.Delivered > 0, $"split {w1.Delivered}/{w2.Delivered}");
    }

    [Fact]
    public async Task RequestAsync_Responder_ReturnsReply()
    {
        var ct = Timeout();
        await using var client = await ConnectAsync(ct);
        await using var service = await ConnectAsync(ct);
        await using var sub = await service.SubscribeAsync("svc.echo", "svc", ct);
        var responder = Task.Run(async () =>
        {
            await foreach (var m in sub.WithCancellation(ct))
            {
                await service.PublishAsync(m.ReplyTo!, B("echo:" + S(m)), cancellationToken: ct);
            }
        }, ct);
        for (var i = 0; i < 20; i++)
        {
            var reply = await client.RequestAsync("svc.echo", B($"r{i}"), TimeSpan.FromSeconds(5), cancellationToken: ct);
            Assert.Equal($"echo:r{i}", S(reply));
        }
        var parallel = await Task.WhenAll(Enumerable.Range(0, 50).Select(i => client.RequestAsync("svc.echo", B($"p{i}"), cancellationToken: ct)));
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"echo:p{i}"), parallel.Select(S));
    }

    [Fact]
    public async Task RequestAsync_NoSubscriber_ThrowsNoRespondersException()
    {
        var ct = Timeout();
        await using var nc = await ConnectAsync(ct);
        var ex = await Assert.ThrowsAsync<NoRespondersException>(() => nc.RequestAsync("nobody.home", B("x"), TimeSpan.FromSeconds(5), cancellationToken: ct));
        Assert.Equal("nobody.home", ex.Subject);
    }

    [Fact]
    public async Task RequestAsync_SilentResponder_ThrowsTimeoutException()
    {
        var ct = Timeout();
        await using var nc = await ConnectAsync(ct);
        await using var sub = await nc.SubscribeAsync("silent.svc", cancellationToken: ct);
        var started = DateTime.UtcNow;
        var ex = await Assert.ThrowsAsync<TimeoutException>(() => nc.RequestAsync("silent.svc", B("x"), TimeSpan.FromMilliseconds(200), cancellationToken: ct));
        Assert.Contains("silent.svc", ex.Message, StringComparison.Ordinal);
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task RequestAsync_Cancelled_ThrowsOperationCanceled()
    {
        var ct = Timeout();
        await using var nc = await ConnectAsync(ct);
        await using var sub = await nc.SubscribeAsync("slow.svc", cancellationToken: ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var request = nc.RequestAsync("slow.svc", B("x"), TimeSpan.FromSeconds(30), cancellationToken: cts.Token);
        await sub.Messages.ReadAsync(ct); // the request reached the responder
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        Assert.Equal(NatsConnectionState.Connected, nc.State);
    }

    [Fact]
    public async Task PublishAsync_Headers_ArriveWithMessage()
    {
        var ct = Timeout();
        await using var nc = await ConnectAsync(ct);
        await using var sub = await nc.SubscribeAsync("hdr.test", cancellationToken: ct);
        await nc.PublishAsync("hdr.test", B("body"), headers: new NatsHeaders().Add("X-Id", "7").Add("X-Multi", "a").Add("X-Multi", "b"), cancellationToken: ct);
        var m = await sub.Messages.ReadAsync(ct);
        Assert.Equal("body", S(m));
        Assert.NotNull(m.Headers);
        Assert.Null(m.Status);
        Assert.Equal("7", m.Headers["X-Id"]);
        Assert.Equal(["a", "b"], m.Headers.GetValues("X-Multi"));
    }

    [Fact]
    public async Task PublishAsync_TenThousandMessages_ArriveInOrder()
    {
        var ct = Timeout(60);
        await using var a = await ConnectAsync(ct);
        await using var b = await ConnectAsync(ct);
        await using var sub = await b.SubscribeAsync("order.test", cancellationToken: ct);
        const int N = 10_000;
        var reader = Task.Run(() => ReadAsync(sub, N, ct), ct);
        for (var i = 0; i < N; i++)
        {
            await a.PublishAsync("order.test", BitConverter.GetBytes(i), cancellationToken: ct);
        }
        var got = await reader;
        Assert.Equal(Enumerable.Range(0, N), got.Select(m => BitConverter.ToInt32(m.Payload.Span)));
        Assert.Equal(0, sub.Dropped);
    }

    [Fact]
    public async Task UnsubscribeAsync_MaxMsgs_EndsAfterThatMany()
    {
        var ct = Timeout();
        await using var nc = await ConnectAsync(ct);
        var sub = await nc.SubscribeAsync("max.test", cancellationToken: ct);
        await sub.UnsubscribeAsync(3);
        for (var i = 0; i < 10; i++)
        {
            await nc.PublishAsync("max.test", B($"{i}"), cancellationToken: ct);
        }
        var got = new List<string>();
        await foreach (var m in sub.WithCancellation(ct))
        {
            got.Add(S(m));
        }
        Assert.Equal(["0", "1", "2"], got);
    }

    [Fact]
    public async Task Subscription_SlowReader_DropsOldestAndCounts()
    {
        var ct = Timeout();
        await using var nc = await NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url, SubscriptionCapacity = 10 }, ct);
        await using var sub = await nc.SubscribeAsync("slow.reader", cancellationToken: ct);
        for (var i = 0; i < 100; i++)
        {
            await nc.PublishAsync("slow.reader", B($"{i}"), cancellationToken: ct);
        }
        await nc.FlushAsync(ct);
        while (sub.Delivered < 100)
        {
            await Task.Delay(10, ct);
        }
        Assert.Equal(90, sub.Dropped);
        Assert.Equal(Enumerable.Range(90, 10).Select(i => $"{i}"), (await ReadAsync(sub, 10, ct)).Select(S));
    }

    [Fact]
    public async Task PublishAsync_InvalidSubject_ThrowsArgumentException()
    {
        var ct = Timeout();
        await using var nc = await ConnectAsync(ct);
        await Assert.ThrowsAsync<ArgumentException>(async () => await nc.PublishAsync("a.*", B("x"), cancellationToken: ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await nc.PublishAsync("a b", B("x"), cancellationToken: ct));
        await Assert.ThrowsAsync<ArgumentException>(() => nc.SubscribeAsync("a.>.b", cancellationToken: ct));
    }

    [Fact]
    public async Task EventBus_PublishSubscribeAndRequest_BehaveLikeInMemoryBus()
    {
        var ct = Timeout();
        await using var bus = await NatsEventBus.ConnectAsync(new NatsOptions { Url = server.Url }, ct);
        IEventBus eventBus = bus; // through the interface, as the runtime uses it
        var events = eventBus.SubscribeAsync("tandem.ns.kv_events.>", cancellationToken: ct).GetAsyncEnumerator(ct);
        var first = events.MoveNextAsync(); // subscribes before the publish below (same connection, ordered)
        await eventBus.PublishAsync("tandem.ns.kv_events.w1", B("stored"), cancellationToken: ct);
        Assert.True(await first);
        Assert.Equal("tandem.ns.kv_events.w1", events.Current.Subject);
        await events.DisposeAsync();

        var prefill = Task.Run(async () =>
        {
            await foreach (var m in eventBus.SubscribeAsync("tandem.ns.prefill.m", "prefill", ct))
            {
                await eventBus.PublishAsync(m.ReplyTo!, B("done:" + Encoding.UTF8.GetString(m.Payload.Span)), cancellationToken: ct);
            }
        }, ct);
        BusMessage reply = null!;
        for (var i = 0; i < 100; i++)
        {
            try
            {
                reply = await eventBus.RequestAsync("tandem.ns.prefill.m", B("req"), TimeSpan.FromSeconds(5), ct);
                break;
            }
            catch (NoRespondersException)
            {
                await Task.Delay(20, ct); // the responder is still subscribing
            }
        }
        Assert.Equal("done:req", Encoding.UTF8.GetString(reply.Payload.Span));
        await Assert.ThrowsAsync<NoRespondersException>(() => eventBus.RequestAsync("tandem.ns.prefill.none", B("x"), TimeSpan.FromSeconds(5), ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await eventBus.PublishAsync("a.*", B("x"), cancellationToken: ct));
    }
}
