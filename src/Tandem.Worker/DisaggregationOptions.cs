namespace Tandem.Worker;

/// <summary>When a decode worker asks a prefill worker to prefill (blueprint §1, conditional disaggregation).</summary>
public sealed record DisaggregationOptions
{
    /// <summary>Namespace of the bus subjects (<c>tandem.{ns}.prefill.{model}</c>).</summary>
    public string Namespace { get; init; } = "default";

    /// <summary>Prompts whose uncached part is at most this many tokens are prefilled locally.</summary>
    public int MaxLocalPrefillLength { get; init; } = 512;

    /// <summary>Remote prefills this decode worker may have outstanding; beyond it new prompts prefill locally.</summary>
    public int MaxPrefillQueueSize { get; init; } = 4;

    /// <summary>Longest wait for a remote prefill (compute and KV push) before falling back to a local prefill.</summary>
    public TimeSpan RemotePrefillTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a context-only prefill keeps its KV pinned for a decode worker to pull.</summary>
    public TimeSpan RetainedKvTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(Namespace);
        if (MaxLocalPrefillLength < 0 || MaxPrefillQueueSize < 0)
        {
            throw new ArgumentException("--max-local-prefill-length and --max-prefill-queue-size must be ≥ 0");
        }
        if (RemotePrefillTimeout <= TimeSpan.Zero || RetainedKvTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("prefill and KV retention timeouts must be positive");
        }
    }

    public string PrefillSubject(string model) => $"tandem.{Namespace}.prefill.{SubjectToken(model)}";

    /// <summary>Model names may contain dots or spaces; subjects may not.</summary>
    public static string SubjectToken(string name) => string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_'));
}
