namespace Tandem.Worker;

/// <summary>
/// A prefill worker's view of its own queue: the prompt tokens it accepted and has not finished, and how fast its engine
/// computes prompt tokens. It refuses a remote prefill it cannot finish before the decode worker stops waiting, so that
/// the decode worker prefills locally at once instead of after its timeout, with the prefill worker's work thrown away.
/// </summary>
/// <remarks>
/// The rate comes from the engine's own accounting (<paramref name="progress"/>: the time it spent computing steps and
/// the prompt tokens those steps computed), read at each admission: seconds per token is an exponentially weighted
/// mean of the ratio over each interval in which at least <see cref="MinSampleTokens"/> prompt tokens were computed.
/// So it is learned from every step, also from prefills that were cancelled or timed out (a worker whose every prefill
/// misses the deadline still learns that it is slow), and a worker that gets faster once warm (JIT, first page touches)
/// catches up within a few prefills. Until a first sample exists, and whenever nothing is pending, a prefill is
/// accepted.
/// </remarks>
public sealed class PrefillBacklog(Func<(TimeSpan Busy, long PromptTokens)> progress, TimeProvider? time = null)
{
    /// <summary>Weight of the newest sample in the mean.</summary>
    private const double Smoothing = 0.3;

    /// <summary>Fewer prompt tokens since the last sample teach nothing yet (a step's fixed costs would read as a slow rate).</summary>
    public const int MinSampleTokens = 32;

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Lock _gate = new();
    private long _pendingTokens;
    private int _pending;
    private double _secondsPerToken;
    private (TimeSpan Busy, long PromptTokens) _last;

    /// <summary>Prompt tokens accepted and not finished.</summary>
    public long PendingTokens
    {
        get
        {
            lock (_gate)
            {
                return _pendingTokens;
            }
        }
    }

    /// <summary>Prefills accepted and not finished.</summary>
    public int Pending
    {
        get
        {
            lock (_gate)
            {
                return _pending;
            }
        }
    }

    /// <summary>Learned seconds per prompt token (0 while unknown), brought up to date with the engine's progress.</summary>
    public double SecondsPerToken
    {
        get
        {
            lock (_gate)
            {
                Learn();
                return _secondsPerToken;
            }
        }
    }

    /// <summary>
    /// Accepts a prefill of <paramref name="tokens"/> prompt tokens unless the queue ahead of it and itself are estimated
    /// to finish after <paramref name="deadline"/> (null: always accepted). <paramref name="estimate"/> is the estimated
    /// time to finish it (zero while the rate is unknown). Dispose the ticket when the prefill ends, however it ends.
    /// </summary>
    public IDisposable? TryAdmit(int tokens, DateTimeOffset? deadline, out TimeSpan estimate)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            Learn();
            estimate = TimeSpan.FromSeconds((_pendingTokens + tokens) * _secondsPerToken);
            // An idle worker always takes the next prefill: it is the best it can do, and refusing everything would also
            // stop it from ever learning that it got faster.
            if (deadline is { } d && _pending > 0 && _secondsPerToken > 0 && now + estimate > d)
            {
                return null;
            }
            _pendingTokens += tokens;
            _pending++;
            return new Ticket(this, tokens);
        }
    }

    private void Learn()
    {
        var current = progress();
        var tokens = current.PromptTokens - _last.PromptTokens;
        if (tokens < MinSampleTokens)
        {
            return;
        }
        var sample = Math.Max(0, (current.Busy - _last.Busy).TotalSeconds) / tokens;
        _secondsPerToken = _secondsPerToken == 0 ? sample : (Smoothing * sample) + ((1 - Smoothing) * _secondsPerToken);
        _last = current;
    }

    private void Leave(int tokens)
    {
        lock (_gate)
        {
            _pendingTokens -= tokens;
            _pending--;
        }
    }

    private sealed class Ticket(PrefillBacklog owner, int tokens) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Leave(tokens);
            }
        }
    }
}
