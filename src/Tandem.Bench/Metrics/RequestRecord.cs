namespace Tandem.Bench.Metrics;

/// <summary>What one request measured. Times are milliseconds; <see cref="StartMs"/> is relative to the start of the measured phase.</summary>
public sealed record RequestRecord
{
    public int Index { get; init; }

    public double StartMs { get; init; }

    public bool Success { get; init; }

    /// <summary>null on success; otherwise http_&lt;status&gt;, timeout, connection, stream_error, stream_truncated, bad_response or cancelled.</summary>
    public string? ErrorKind { get; init; }

    public string? Error { get; init; }

    /// <summary>Prompt tokens: from the server's usage when reported, else the workload's length.</summary>
    public int InputTokens { get; init; }

    /// <summary>Output tokens: from the server's usage when reported, else the number of streamed content chunks.</summary>
    public int OutputTokens { get; init; }

    public bool UsageReported { get; init; }

    /// <summary>Output tokens the request asked for (max_tokens).</summary>
    public int RequestedOutputTokens { get; init; }

    /// <summary>Streamed chunks that carried content.</summary>
    public int Chunks { get; init; }

    /// <summary>Time to the first content chunk (null when not streaming or nothing arrived).</summary>
    public double? TtftMs { get; init; }

    /// <summary>Gaps between consecutive content chunks.</summary>
    public double[] ItlMs { get; init; } = [];

    /// <summary>(E2E − TTFT) / (output tokens − 1); null with fewer than two output tokens or no TTFT.</summary>
    public double? TpotMs { get; init; }

    public double E2eMs { get; init; }

    public static double? Tpot(double? ttftMs, double e2eMs, int outputTokens) => ttftMs is { } ttft && outputTokens > 1 ? (e2eMs - ttft) / (outputTokens - 1) : null;
}
