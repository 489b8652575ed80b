using Tandem.Worker;

namespace Tandem.Frontend.Tests;

/// <summary>The prefill worker's admission: it learns its rate from the engine's progress and refuses what cannot finish in time.</summary>
public sealed class PrefillBacklogTests
{
    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 12, 2, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    /// <summary>What an engine reports: time spent computing and prompt tokens computed.</summary>
    private sealed class FakeEngine
    {
        public TimeSpan Busy { get; set; }

        public long PromptTokens { get; set; }

        public void Compute(long tokens, double seconds)
        {
            PromptTokens += tokens;
            Busy += TimeSpan.FromSeconds(seconds);
        }
    }

    private static (PrefillBacklog Backlog, FakeEngine Engine, ManualClock Clock) Create()
    {
        var engine = new FakeEngine();
        var clock = new ManualClock();
        return (new PrefillBacklog(() => (engine.Busy, engine.PromptTokens), clock), engine, clock);
    }

    [Fact]
    public void AcceptsEverything_UntilARateIsLearned()
    {
        var (backlog, _, clock) = Create();
        using var a = backlog.TryAdmit(10_000, clock.Now.AddMilliseconds(1), out var estimate);
        using var b = backlog.TryAdmit(10_000, clock.Now.AddMilliseconds(1), out _);
        Assert.NotNull(a);
        Assert.NotNull(b);
        Assert.Equal(TimeSpan.Zero, estimate);
        Assert.Equal(20_000, backlog.PendingTokens);
        Assert.Equal(2, backlog.Pending);
    }

    [Fact]
    public void LearnsSecondsPerToken_FromTheEnginesBusyTime_AsAWeightedMean()
    {
        var (backlog, engine, _) = Create();
        engine.Compute(1000, 2); // 2 ms per token
        Assert.Equal(0.002, backlog.SecondsPerToken, 9);
        engine.Compute(PrefillBacklog.MinSampleTokens - 1, 10); // too few tokens for a sample yet
        Assert.Equal(0.002, backlog.SecondsPerToken, 9);
        engine.Compute(1, 0); // now 32 tokens in 10 s since the last sample
        Assert.Equal((0.3 * (10.0 / 32)) + (0.7 * 0.002), backlog.SecondsPerToken, 9);
    }

    [Fact]
    public void RefusesWhatTheQueueAheadWouldMakeLate_ButAnIdleWorkerTakesAnything()
    {
        var (backlog, engine, clock) = Create();
        engine.Compute(1000, 1); // 1 ms per token

        // Idle: even a prefill estimated past its deadline is taken (the best this worker can do).
        using var ahead = backlog.TryAdmit(3000, clock.Now.AddSeconds(1), out var aheadEstimate);
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
    public void FinishedPrefills_LeaveTheBacklog_Once()
    {
        var (backlog, engine, clock) = Create();
        engine.Compute(1000, 1);
        var first = backlog.TryAdmit(1000, null, out _)!;
        var second = backlog.TryAdmit(500, null, out _)!;
        first.Dispose();
        first.Dispose(); // twice is harmless
        Assert.Equal(500, backlog.PendingTokens);
        Assert.Equal(1, backlog.Pending);
        // With the queue shorter, a request refused before is taken now.
        Assert.NotNull(backlog.TryAdmit(1000, clock.Now.AddSeconds(1.6), out _));
        second.Dispose();
    }
}
