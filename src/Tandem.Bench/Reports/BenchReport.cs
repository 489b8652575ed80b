using System.Text.Json;
using System.Text.Json.Serialization;
using Tandem.Bench.Load;
using Tandem.Bench.Metrics;

namespace Tandem.Bench.Reports;

/// <summary>The settings of a run as written into its report.</summary>
public sealed record ReportConfig
{
    public string Url { get; init; } = "";
    public string Model { get; init; } = "";
    public string Endpoint { get; init; } = "";
    public int? Concurrency { get; init; }
    public double? RequestRate { get; init; }
    public double Burstiness { get; init; }
    public int? Requests { get; init; }
    public double? DurationSeconds { get; init; }
    public int WarmupRequests { get; init; }
    public int Isl { get; init; }
    public double IslStddev { get; init; }
    public int Osl { get; init; }
    public double OslStddev { get; init; }
    public int PrefixLen { get; init; }
    public int NumPrefixes { get; init; }
    public string? Trace { get; init; }
    public int TraceBlockSize { get; init; }
    public double Speedup { get; init; }
    public bool Stream { get; init; }
    public double? SloTtftMs { get; init; }
    public double? SloTpotMs { get; init; }
    public int Seed { get; init; }
    public double TimeoutSeconds { get; init; }
    public double TokensPerWord { get; init; }
    public string PromptFormat { get; init; } = "";
    public bool NoExtensions { get; init; }

    public static ReportConfig From(BenchOptions o) => new()
    {
        Url = o.Url.ToString(),
        Model = o.Model,
        Endpoint = o.Endpoint == BenchEndpoint.Chat ? "chat" : "completions",
        Concurrency = o.Concurrency,
        RequestRate = o.RequestRate,
        Burstiness = o.Burstiness,
        Requests = o.EffectiveRequests,
        DurationSeconds = o.Duration?.TotalSeconds,
        WarmupRequests = o.WarmupRequests,
        Isl = o.InputLength,
        IslStddev = o.InputLengthStddev,
        Osl = o.OutputLength,
        OslStddev = o.OutputLengthStddev,
        PrefixLen = o.PrefixLength,
        NumPrefixes = o.NumPrefixes,
        Trace = o.TracePath,
        TraceBlockSize = o.TraceBlockSize,
        Speedup = o.Speedup,
        Stream = o.Stream,
        SloTtftMs = o.SloTtftMs,
        SloTpotMs = o.SloTpotMs,
        Seed = o.Seed,
        TimeoutSeconds = o.Timeout.TotalSeconds,
        TokensPerWord = o.TokensPerWord,
        PromptFormat = o.PromptFormat == Bench.PromptFormat.TokenIds ? "token-ids" : "text",
        NoExtensions = o.NoExtensions,
    };
}

/// <summary>A whole run as written to --output: settings, aggregate metrics, the throughput time series and every request.</summary>
public sealed record BenchReport
{
    public string Tool { get; init; } = "tandem bench";
    public DateTimeOffset StartedAt { get; init; }
    public bool Interrupted { get; init; }
    public int WarmupFailures { get; init; }
    public ReportConfig Config { get; init; } = new();
    public BenchSummary Summary { get; init; } = new();
    public List<TimeBucket> TimeSeries { get; init; } = [];
    public List<RequestRecord> Requests { get; init; } = [];

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = true,
    };

    public static BenchReport From(BenchResult result)
    {
        var series = TimeBucket.Series(result.Records, SeriesWidth(result.DurationSeconds));
        return new BenchReport
        {
            StartedAt = result.StartedAt,
            Interrupted = result.Interrupted,
            WarmupFailures = result.WarmupFailures,
            Config = ReportConfig.From(result.Options),
            Summary = BenchSummary.Compute(result.Records, result.DurationSeconds, result.Options.SloTtftMs, result.Options.SloTpotMs, TimeBucket.Series(result.Records, 1.0)),
            TimeSeries = series,
            Requests = [.. result.Records],
        };
    }

    /// <summary>One-second buckets, coarser for long runs so that a chart has at most a few hundred points.</summary>
    public static double SeriesWidth(double durationSeconds) => durationSeconds <= 300 ? 1.0 : Math.Ceiling(durationSeconds / 300);

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public async Task WriteAsync(string path, CancellationToken cancellationToken = default)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }
        await File.WriteAllTextAsync(path, ToJson(), cancellationToken).ConfigureAwait(false);
    }

    public static BenchReport Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new ArgumentException($"report not found: {path}");
        }
        try
        {
            return JsonSerializer.Deserialize<BenchReport>(File.ReadAllText(path), Json) ?? throw new ArgumentException($"{path}: empty report");
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{path}: not a tandem bench report ({e.Message})", e);
        }
    }
}
