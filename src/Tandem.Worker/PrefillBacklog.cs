namespace Tandem.Worker;

/// <summary>
/// A prefill worker's view of its own queue: the prompt tokens it accepted and has not finished, and how fast it works
/// through them. It refuses a remote prefill it cannot finish before the decode worker stops waiting, so that the decode
/// worker prefills locally at once instead of after its timeout, with the prefill worker's work thrown away.
/// </summary>
/// <remarks>
/// The rate is learned from finished prefills. The engine runs the oldest prefill first, so the queue behaves like one
/// first-in first-out server: the time spent on a prefill is its finish time minus the later of its arrival and the
/// previous finish. Seconds per token is an exponentially weighted mean of those samples; until there is one, every
/// prefill is accepted.
/// </remarks>
public sealed class PrefillBacklog(TimeProvider? time = null)
{
    /// <summary>Weight of the newest sample in the mean.</summary>
    private const double Smoothing = 0.3;

    /// <summary>
    /// Prefills that computed fewer tokens (mostly prefix-cache hits) teach nothing: their fixed costs (the KV push,
    /// messages) would read as a slow rate per token.
    /// </summary>
    public const int MinSampleTokens = 32;

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Lock _gate = new();
    private long _pendingTokens;
    private int _pending;
    private double _secondsPerToken;
    private DateTimeOffset _lastFinish = DateTimeOffset.MinValue;

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

    /// <summary>Learned seconds per prompt token; 0 before the first finished prefill.</summary>
    public double SecondsPerToken
    {
        get
        {
            lock (_gate)
            {
                return _secondsPerToken;
            }
        }
    }

    /// <summary>
    /// Accepts a prefill of <paramref name="tokens"/> prompt tokens unless the queue ahead of it and itself are estimated
    /// to finish after <paramref name="deadline"/> (null: always accepted). <paramref name="estimate"/> is the estimated
    /// time to finish it (zero while the rate is unknown).
    /// </summary>
    public Ticket? TryAdmit(int tokens, DateTimeOffset? deadline, out TimeSpan estimate)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            estimate = TimeSpan.FromSeconds((_pendingTokens + tokens) * _secondsPerToken);
            if (deadline is { } d && _secondsPerToken > 0 && now + estimate > d)
            {
                return null;
            }
            _pendingTokens += tokens;
            _pending++;
            return new Ticket(this, tokens, now);
        }
    }

    private void Finish(Ticket ticket, int computedTokens)
    {
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            _pendingTokens -= ticket.Tokens;
            _pending--;
            var previousFinish = _lastFinish;
            if (computedTokens >= 0)
            {
                _lastFinish = now;
            }
            if (computedTokens < MinSampleTokens)
            {
                return;
            }
            var start = ticket.AcceptedAt > previousFinish ? ticket.AcceptedAt : previousFinish;
            var sample = Math.Max(0, (now - start).TotalSeconds) / computedTokens;
            _secondsPerToken = _secondsPerToken == 0 ? sample : (Smoothing * sample) + ((1 - Smoothing) * _secondsPerToken);
        }
    }

    /// <summary>One accepted prefill. Dispose it when the prefill ends; <see cref="Completed"/> first teaches the rate.</summary>
    public sealed class Ticket : IDisposable
    {
        private readonly PrefillBacklog _owner;
        private int _computed = -1;
        private int _disposed;

        internal Ticket(PrefillBacklog owner, int tokens, DateTimeOffset acceptedAt)
        {
            _owner = owner;
            Tokens = tokens;
            AcceptedAt = acceptedAt;
        }

        public int Tokens { get; }

        public DateTimeOffset AcceptedAt { get; }

        /// <summary>The prefill finished, computing <paramref name="computedTokens"/> tokens (the prompt less its prefix-cache hit).</summary>
        public void Completed(int computedTokens) => _computed = computedTokens;

        /// <summary>Leaves the backlog; a prefill that failed or was cancelled teaches nothing about the rate.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                _owner.Finish(this, _computed);
            }
        }
    }
}
