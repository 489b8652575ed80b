namespace Tandem.Bench;

/// <summary>Which OpenAI endpoint requests go to.</summary>
public enum BenchEndpoint
{
    /// <summary>POST /v1/chat/completions with one user message.</summary>
    Chat,

    /// <summary>POST /v1/completions with a prompt (text or token ids).</summary>
    Completions,
}

/// <summary>How synthetic and trace prompts are sent.</summary>
public enum PromptFormat
{
    /// <summary>Text made of common words (about one token per word on common tokenizers).</summary>
    Text,

    /// <summary>An array of token ids (completions endpoint only): exact lengths on servers that accept token arrays.</summary>
    TokenIds,
}

/// <summary>Everything one benchmark run needs; validated by <see cref="Validate"/> before the run starts.</summary>
public sealed record BenchOptions
{
    /// <summary>Server base URL, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted).</summary>
    public required Uri Url { get; init; }

    public required string Model { get; init; }

    public BenchEndpoint Endpoint { get; init; } = BenchEndpoint.Chat;

    /// <summary>Closed loop: this many requests in flight (default 1). With a request rate or a trace: the most requests in flight (default unbounded).</summary>
    public int? Concurrency { get; init; }

    /// <summary>Open loop: mean arrivals per second (null = closed loop at <see cref="Concurrency"/>).</summary>
    public double? RequestRate { get; init; }

    /// <summary>Gamma shape of inter-arrival times: 1 = Poisson, below 1 burstier, above 1 more regular.</summary>
    public double Burstiness { get; init; } = 1.0;

    /// <summary>Measured requests (null: 100, or every trace record, unless a duration is given).</summary>
    public int? Requests { get; init; }

    /// <summary>Stop issuing requests after this time (in-flight requests finish, bounded by the timeout).</summary>
    public TimeSpan? Duration { get; init; }

    public int WarmupRequests { get; init; }

    public int InputLength { get; init; } = 512;

    public double InputLengthStddev { get; init; }

    public int OutputLength { get; init; } = 128;

    public double OutputLengthStddev { get; init; }

    /// <summary>Length of the shared prefix each request starts with (tokens; 0 = none).</summary>
    public int PrefixLength { get; init; }

    /// <summary>Number of distinct shared prefixes.</summary>
    public int NumPrefixes { get; init; } = 1;

    /// <summary>Mooncake-format JSONL trace to replay instead of the synthetic workload.</summary>
    public string? TracePath { get; init; }

    public int TraceBlockSize { get; init; } = 512;

    /// <summary>Trace timestamps are divided by this factor.</summary>
    public double Speedup { get; init; } = 1.0;

    public bool Stream { get; init; } = true;

    public string? ApiKey { get; init; }

    public double? SloTtftMs { get; init; }

    public double? SloTpotMs { get; init; }

    public int Seed { get; init; }

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Tokens one prompt word stands for (calibration for text prompts; words = tokens / this).</summary>
    public double TokensPerWord { get; init; } = 1.0;

    public PromptFormat PromptFormat { get; init; } = PromptFormat.Text;

    /// <summary>Token ids are drawn below this bound (token-ids prompt format).</summary>
    public int VocabSize { get; init; } = 32000;

    /// <summary>Leave out max_tokens' companions ignore_eos and min_tokens, for servers that reject unknown fields.</summary>
    public bool NoExtensions { get; init; }

    public string? OutputPath { get; init; }

    public string? HtmlPath { get; init; }

    /// <summary>True when requests are sent on a schedule (request rate or trace timestamps) rather than as soon as one finishes.</summary>
    public bool IsOpenLoop => RequestRate is not null || TracePath is not null;

    /// <summary>The number of measured requests the run aims at (null = bounded by duration only).</summary>
    public int? EffectiveRequests => Requests ?? (Duration is null && TracePath is null ? 100 : null);

    /// <summary>Throws <see cref="ArgumentException"/> with a user-facing message when a setting is invalid.</summary>
    public void Validate()
    {
        if (Url.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"--url must be an http or https URL, got '{Url}'");
        }
        if (string.IsNullOrWhiteSpace(Model))
        {
            throw new ArgumentException("--model is required (the model name the server serves)");
        }
        Check(Concurrency is null || Concurrency >= 1, "--concurrency must be at least 1");
        Check(RequestRate is null || RequestRate > 0, "--request-rate must be positive");
        Check(Burstiness > 0, "--burstiness must be positive");
        Check(Requests is null || Requests >= 1, "--requests must be at least 1");
        Check(Duration is null || Duration > TimeSpan.Zero, "--duration must be positive");
        Check(WarmupRequests >= 0, "--warmup-requests must not be negative");
        Check(InputLength >= 1 && OutputLength >= 1, "--isl and --osl must be at least 1");
        Check(InputLengthStddev >= 0 && OutputLengthStddev >= 0, "--isl-stddev and --osl-stddev must not be negative");
        Check(PrefixLength >= 0, "--prefix-len must not be negative");
        Check(NumPrefixes >= 1, "--num-prefixes must be at least 1");
        Check(TraceBlockSize >= 1, "--trace-block-size must be at least 1");
        Check(Speedup > 0, "--speedup must be positive");
        Check(TokensPerWord > 0, "--tokens-per-word must be positive");
        Check(VocabSize >= 16, "--vocab-size must be at least 16");
        Check(Timeout > TimeSpan.Zero, "--timeout must be positive");
        Check(PromptFormat != PromptFormat.TokenIds || Endpoint == BenchEndpoint.Completions, "--prompt-format token-ids needs --endpoint completions");
        if (TracePath is not null && !File.Exists(TracePath))
        {
            throw new ArgumentException($"trace file not found: {TracePath}");
        }
    }

    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }
}
