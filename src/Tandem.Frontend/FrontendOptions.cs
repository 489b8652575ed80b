namespace Tandem.Frontend;

/// <summary>Who orchestrates a disaggregated request (blueprint §1).</summary>
public enum DisaggregationStrategy
{
    DecodeFirst,
    PrefillFirst,
}

/// <summary>Settings of the HTTP frontend (the `tandem serve` / `tandem frontend` flags), validated at startup.</summary>
public sealed record FrontendOptions
{
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>0 picks a free port (tests); the bound address is reported by <see cref="FrontendServer.Url"/>.</summary>
    public int Port { get; init; } = 8000;

    /// <summary>Accepted Bearer keys for /v1/*; empty = no authentication.</summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];

    /// <summary>Largest accepted request body.</summary>
    public long MaxRequestBodyBytes { get; init; } = 8L << 20;

    /// <summary>Longest prompt in tokens; null = the model's context length.</summary>
    public int? MaxPromptTokens { get; init; }

    /// <summary>Largest prompt + max_tokens; null = the model's context length.</summary>
    public int? MaxTotalTokens { get; init; }

    /// <summary>Requests admitted at once (running and waiting for a worker); beyond it requests get 429 with Retry-After.</summary>
    public int MaxInflightRequests { get; init; } = 512;

    /// <summary>Whole-request deadline: past it a request is cancelled on the worker and the client gets a timeout error.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Value of the Retry-After header on 429/503 answers.</summary>
    public int RetryAfterSeconds { get; init; } = 1;

    /// <summary>
    /// Disaggregation strategy: decode-first (the decode worker decides and asks a prefill worker itself) or
    /// prefill-first (the frontend sends the prompt to a prefill worker first, then the decode worker pulls the KV).
    /// </summary>
    public DisaggregationStrategy Strategy { get; init; } = DisaggregationStrategy.DecodeFirst;

    /// <summary>How many different workers a request is offered to when one is overloaded or unreachable before any token.</summary>
    public int MaxRouteAttempts { get; init; } = 3;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Host))
        {
            throw new ArgumentException("--host must not be empty");
        }
        if (Port is < 0 or > 65535)
        {
            throw new ArgumentException($"--http-port must be in 0..65535, got {Port}");
        }
        if (MaxRequestBodyBytes < 1024)
        {
            throw new ArgumentException($"--max-request-body must be at least 1KiB, got {MaxRequestBodyBytes} bytes");
        }
        if (MaxPromptTokens is < 1 || MaxTotalTokens is < 2)
        {
            throw new ArgumentException("--max-prompt-tokens must be ≥ 1 and --max-total-tokens ≥ 2");
        }
        if (MaxInflightRequests < 1)
        {
            throw new ArgumentException($"--max-inflight-requests must be ≥ 1, got {MaxInflightRequests}");
        }
        if (RequestTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("--request-timeout must be positive");
        }
        if (MaxRouteAttempts < 1 || RetryAfterSeconds < 0)
        {
            throw new ArgumentException("route attempts must be ≥ 1 and Retry-After ≥ 0");
        }
        if (ApiKeys.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("--api-key must not be empty");
        }
    }
}
