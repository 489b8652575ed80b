using Tandem.Worker;

namespace Tandem.Frontend.Tests;

/// <summary>The prefill worker's admission: it learns its rate from finished prefills and refuses what cannot finish in time.</summary>
public sealed class PrefillBacklogTests
{
    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 12, 2, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;

        public void Advance(double seconds) => Now += TimeSpan.FromSeconds(seconds);
    }

    [Fact]
    public void AcceptsEverything_UntilARateIsLearned()
    {
        var clock = new ManualClock();
        var backlog = new PrefillBacklog(clock);
        using var a = backlog.TryAdmit(10_000, clock.Now.AddMilliseconds(1), out var estimate);
        Assert.NotNull(a);
        Assert.Equal(TimeSpan.Zero, estimate);
        Assert.Equal(10_000, backlog.PendingTokens);
        Assert.Equal(1, backlog.Pending);
    }

    [Fact]
    public void LearnsSecondsPerToken_AsAFirstInFirstOutServer()
    {
        var clock = new ManualClock();
        var backlog = new PrefillBacklog(clock);
        var first = backlog.TryAdmit(1000, null, out _)!;
        var second = backlog.TryAdmit(500, null, out _)!;
        clock.Advance(2); // the first took 2 s for 1000 tokens
        first.Completed(1000);
        first.Dispose();
        Assert.Equal(0.002, backlog.SecondsPerToken, 9);
        clock.Advance(1); // the second waited behind the first, then took 1 s for 500 tokens: the same rate
        second.Completed(500);
        second.Dispose();
        Assert.Equal(0.002, backlog.SecondsPerToken, 9);
        Assert.Equal(0, backlog.PendingTokens);

        // An idle gap is not service time: a prefill arriving later is timed from its own arrival.
        clock.Advance(60);
        var third = backlog.TryAdmit(1000, null, out var estimate)!;
        Assert.Equal(2.0, estimate.TotalSeconds, 6);
        clock.Advance(4); // twice as slow now: the mean moves by the smoothing weight
        third.Completed(1000);
        third.Dispose();
        Assert.Equal((0.3 * 0.004) + (0.7 * 0.002), backlog.SecondsPerToken, 9);
    }

    [Fact]
    public void RefusesWhatTheQueueAheadWouldMakeLate()
    {
        var clock = new ManualClock();
        var backlog = new PrefillBacklog(clock);
        var warmup = backlog.TryAdmit(1000, null, out _)!;
        clock.Advance(1); // 1 ms per token
        warmup.Completed(1000);
        warmup.Dispose();

        using var ahead = backlog.TryAdmit(3000, clock.Now.AddSeconds(10), out var aheadEstimate);
        Assert.NotNull(ahead);
        Assert.Equal(3.0, aheadEstimate.TotalSeconds, 6);
        // 3000 tokens ahead + 2000 = 5 s: too late for a 4 s deadline, in time for a 6 s one.
        Assert.Null(backlog.TryAdmit(2000, clock.Now.AddSeconds(4), out var refused));
        Assert.Equal(5.0, refused.TotalSeconds, 6);
        Assert.Equal(3000, backlog.PendingTokens); // a refusal takes no room
        using var accepted = backlog.TryAdmit(2000, clock.Now.AddSeconds(6), out _);
        Assert.NotNull(accepted);
        // No deadline (a context-only prefill the frontend sent): always accepted.
        using var contextOnly = backlog.TryAdmit(100_000, null, out _);
        Assert.NotNull(contextOnly);
        Assert.Equal(3, backlog.Pending);
    }

    [Fact]
    public void FailedAndTinyPrefills_TeachNothing_ButLeaveTheBacklog()
    {
        var clock = new ManualClock();
        var backlog = new PrefillBacklog(clock);
        var warmup = backlog.TryAdmit(1000, null, out _)!;
        clock.Advance(1);
        warmup.Completed(1000);
        warmup.Dispose();

        var failed = backlog.TryAdmit(1000, null, out _)!;
        clock.Advance(30);
        failed.Dispose(); // cancelled or failed: no Completed
        var cached = backlog.TryAdmit(1000, null, out _)!;
        clock.Advance(0.5);
        cached.Completed(PrefillBacklog.MinSampleTokens - 1); // a prefix-cache hit: push and messages dominate
        cached.Dispose();
        cached.Dispose(); // twice is harmless
        Assert.Equal(0.001, backlog.SecondsPerToken, 9);
        Assert.Equal(0, backlog.PendingTokens);
        Assert.Equal(0, backlog.Pending);
    }
}
