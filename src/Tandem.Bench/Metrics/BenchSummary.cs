namespace Tandem.Bench.Metrics;

/// <summary>Mean, percentiles and extremes of one metric over the measured requests (milliseconds).</summary>
public sealed record Distribution(int Count, double Mean, double Std, double Min, double P50, double P90, double P95, double P99, double Max)
{
    public static Distribution? Of(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).ToArray();
        if (sorted.Length == 0)
        {
            return null;
        }
        Array.Sort(sorted);
        var mean = sorted.Average();
        var variance = sorted.Sum(v => (v - mean) * (v - mean)) / sorted.Length;
        return new Distribution(sorted.Length, mean, Math.Sqrt(variance), sorted[0], Percentile(sorted, 50), Percentile(sorted, 90), Percentile(sorted, 95), Percentile(sorted, 99), sorted[^1]);
    }

    /// <summary>Linear interpolation between closest ranks (the definition numpy.percentile uses by default).</summary>
    public static double Percentile(double[] sorted, double percent)
    {
        var rank = percent / 100.0 * (sorted.Length - 1);
        var low = (int)Math.Floor(rank);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + ((sorted[high] - sorted[low]) * (rank - low));
    }
}

/// <summary>Aggregate metrics of a run.</summary>
public sealed record BenchSummary
{
    public int Completed { get; init; }

    public int Failed { get; init; }

    public int Cancelled { get; init; }

    public Dictionary<string, int> ErrorsByKind { get; init; } = [];

    public double DurationSeconds { get; init; }

    public long TotalInputTokens { get; init; }

    public long TotalOutputTokens { get; init; }

    /// <summary>Completed requests per second of the measured phase.</summary>
    public double RequestThroughput { get; init; }

    public double OutputTokenThroughput { get; init; }

    /// <summary>(input + output tokens of completed requests) per second.</summary>
    public double TotalTokenThroughput { get; init; }

    /// <summary>Requests per second that met every given SLO (null when no SLO was given).</summary>
    public double? Goodput { get; init; }

    /// <summary>Completed requests that met every given SLO.</summary>
    public int? GoodRequests { get; init; }

    public Distribution? TtftMs { get; init; }

    public Distribution? TpotMs { get; init; }

    public Distribution? ItlMs { get; init; }

    public Distribution? E2eMs { get; init; }

    public Distribution? InputTokens { get; init; }

    public Distribution? OutputTokens { get; init; }

    /// <summary>Peak of the per-second output token throughput series.</summary>
    public double PeakOutputTokenThroughput { get; init; }

    public static BenchSummary Compute(IReadOnlyList<RequestRecord> records, double durationSeconds, double? sloTtftMs, double? sloTpotMs, IReadOnlyList<TimeBucket>? series = null)
    {
        var ok = records.Where(r => r.Success).ToList();
        var failed = records.Where(r => !r.Success && r.ErrorKind != "cancelled").ToList();
        var seconds = Math.Max(durationSeconds, 1e-9);
        long input = ok.Sum(r => (long)r.InputTokens);
        long output = ok.Sum(r => (long)r.OutputTokens);
        int? good = null;
        if (sloTtftMs is not null || sloTpotMs is not null)
        {
            // DistServe goodput: a request counts when it meets every SLO; a missing TPOT (one output token) meets the TPOT SLO.
            good = ok.Count(r => (sloTtftMs is not { } ttft || (r.TtftMs ?? r.E2eMs) <= ttft) && (sloTpotMs is not { } tpot || (r.TpotMs ?? 0) <= tpot));
        }
        series ??= TimeBucket.Series(records, 1.0);
        return new BenchSummary
        {
            Completed = ok.Count,
            Failed = failed.Count,
            Cancelled = records.Count(r => r.ErrorKind == "cancelled"),
            ErrorsByKind = failed.GroupBy(r => r.ErrorKind ?? "unknown").OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count()),
            DurationSeconds = durationSeconds,
            TotalInputTokens = input,
            TotalOutputTokens = output,
            RequestThroughput = ok.Count / seconds,
            OutputTokenThroughput = output / seconds,
            TotalTokenThroughput = (input + output) / seconds,
            Goodput = good / seconds,
            GoodRequests = good,
            TtftMs = Distribution.Of(ok.Where(r => r.TtftMs is not null).Select(r => r.TtftMs!.Value)),
            TpotMs = Distribution.Of(ok.Where(r => r.TpotMs is not null).Select(r => r.TpotMs!.Value)),
            ItlMs = Distribution.Of(ok.SelectMany(r => r.ItlMs)),
            E2eMs = Distribution.Of(ok.Select(r => r.E2eMs)),
            InputTokens = Distribution.Of(ok.Select(r => (double)r.InputTokens)),
            OutputTokens = Distribution.Of(ok.Select(r => (double)r.OutputTokens)),
            PeakOutputTokenThroughput = series.Count == 0 ? 0 : series.Max(b => b.OutputTokensPerSecond),
        };
    }
}

/// <summary>One bucket of the throughput time series: tokens that arrived and requests that finished within it.</summary>
public sealed record TimeBucket(double StartSeconds, double OutputTokensPerSecond, double RequestsPerSecond, int InFlight)
{
    /// <summary>
    /// Buckets of <paramref name="width"/> seconds over the measured phase. A request's output tokens are spread over its
    /// content chunks (arrival time of each chunk = start + TTFT + the ITLs so far); without chunk times they count at its end.
    /// </summary>
    public static List<TimeBucket> Series(IReadOnlyList<RequestRecord> records, double width)
    {
        var done = records.Where(r => r.ErrorKind != "cancelled").ToList();
        if (done.Count == 0)
        {
            return [];
        }
        var end = done.Max(r => r.StartMs + r.E2eMs) / 1000.0;
        var count = Math.Max(1, (int)Math.Ceiling(end / width));
        var tokens = new double[count];
        var finished = new int[count];
        var inFlight = new int[count];
        int Bucket(double ms) => Math.Clamp((int)(ms / 1000.0 / width), 0, count - 1);
        foreach (var r in done)
        {
            finished[Bucket(r.StartMs + r.E2eMs)] += r.Success ? 1 : 0;
            for (var b = Bucket(r.StartMs); b <= Bucket(r.StartMs + r.E2eMs); b++)
            {
                inFlight[b]++;
            }
            if (!r.Success)
            {
                continue;
            }
            if (r.TtftMs is { } ttft && r.Chunks > 0)
            {
                var perChunk = (double)r.OutputTokens / r.Chunks;
                var at = r.StartMs + ttft;
                tokens[Bucket(at)] += perChunk;
                foreach (var gap in r.ItlMs)
                {
                    at += gap;
                    tokens[Bucket(at)] += perChunk;
                }
            }
            else
            {
                tokens[Bucket(r.StartMs + r.E2eMs)] += r.OutputTokens;
            }
        }
        return [.. Enumerable.Range(0, count).Select(i => new TimeBucket(i * width, tokens[i] / width, finished[i] / width, inFlight[i]))];
    }
}
