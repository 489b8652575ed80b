using System.Text;
using Tandem.Abstractions;

namespace Tandem.Runtime.Tests;

public class InMemoryEventBusTests
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static async Task<List<string>> Collect(IAsyncEnumerable<BusMessage> messages, int count)
    {
        var list = new List<string>();
        await foreach (var m in messages)
        {
            list.Add(m.Subject + "=" + Encoding.UTF8.GetString(m.Payload.Span));
            if (list.Count == count)
            {
                break;
            }
        }
        return list;
    }

    [Theory]
    [InlineData("a.b.c", "a.b.c", true)]
    [InlineData("a.*.c", "a.b.c", true)]
    [InlineData("a.*", "a.b.c", false)]
    [InlineData("a.>", "a.b.c", true)]
    [InlineData("a.>", "a", false)]
    [InlineData(">", "a", true)]
    [InlineData("a.b", "a.b.c", false)]
    public void Matches_FollowsNatsWildcards(string pattern, string subject, bool expected) => Assert.Equal(expected, SubjectMatcher.Matches(pattern, subject));

    [Theory]
    [InlineData("a..b")]
    [InlineData("a.>.b")]
    [InlineData("a b")]
    [InlineData("")]
    public void ValidatePattern_Malformed_Throws(string pattern) => Assert.ThrowsAny<ArgumentException>(() => SubjectMatcher.ValidatePattern(pattern));

    [Fact]
    public async Task Publish_ReachesEveryMatchingSubscriberInOrder()
    {
        var bus = new InMemoryEventBus();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var all = bus.SubscribeAsync("kv.>", cancellationToken: cts.Token).GetAsyncEnumerator(cts.Token);
        var one = bus.SubscribeAsync("kv.w1", cancellationToken: cts.Token).GetAsyncEnumerator(cts.Token);
        var allTask = all.MoveNextAsync(); // subscribes
        var oneTask = one.MoveNextAsync();
        await Task.Delay(20, cts.Token);
        await bus.PublishAsync("kv.w1", B("1"), cancellationToken: cts.Token);
        await bus.PublishAsync("kv.w2", B("2"), cancellationToken: cts.Token);
        Assert.True(await allTask);
        Assert.Equal("kv.w1", all.Current.Subject);
        Assert.True(await all.MoveNextAsync());
        Assert.Equal("kv.w2", all.Current.Subject);
        Assert.True(await oneTask);
        Assert.Equal("1", Encoding.UTF8.GetString(one.Current.Payload.Span));
        await all.DisposeAsync();
        await one.DisposeAsync();
    }

    [Fact]
    public async Task QueueGroup_EachMessageGoesToExactlyOneMember()
    {
        var bus = new InMemoryEventBus();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var received = new int[3];
        var readers = Enumerable.Range(0, 3).Select(i => Task.Run(async () =>
        {
            await foreach (var _ in bus.SubscribeAsync("work", "pool", cts.Token))
            {
                Interlocked.Increment(ref received[i]);
            }
        }, cts.Token)).ToList();
        await Task.Delay(100, cts.Token);
        for (var i = 0; i < 300; i++)
        {
            await bus.PublishAsync("work", B("x"), cancellationToken: cts.Token);
        }
        while (received.Sum() < 300 && !cts.IsCancellationRequested)
        {
            await Task.Delay(10, cts.Token);
        }
        Assert.Equal(300, received.Sum());
        Assert.All(received, r => Assert.InRange(r, 1, 298));
        await cts.CancelAsync();
    }

    [Fact]
    public async Task Request_GetsReply_NoResponders_AndTimeout()
    {
        var bus = new InMemoryEventBus();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await Assert.ThrowsAsync<NoRespondersException>(() => bus.RequestAsync("svc", B("q"), TimeSpan.FromSeconds(1), cts.Token));
        var responder = Task.Run(async () =>
        {
            await foreach (var m in bus.SubscribeAsync("svc", "g", cts.Token))
            {
                if (Encoding.UTF8.GetString(m.Payload.Span) == "ping")
                {
                    await bus.PublishAsync(m.ReplyTo!, B("pong"), cancellationToken: cts.Token);
                }
            }
        }, cts.Token);
        await Task.Delay(50, cts.Token);
        var reply = await bus.RequestAsync("svc", B("ping"), TimeSpan.FromSeconds(5), cts.Token);
        Assert.Equal("pong", Encoding.UTF8.GetString(reply.Payload.Span));
        await Assert.ThrowsAsync<TimeoutException>(() => bus.RequestAsync("svc", B("ignored"), TimeSpan.FromMilliseconds(100), cts.Token));
        await cts.CancelAsync();
    }
}
