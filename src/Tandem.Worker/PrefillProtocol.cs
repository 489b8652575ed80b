using System.Text.Json;
using System.Text.Json.Serialization;
using Tandem.Abstractions;

namespace Tandem.Worker;

/// <summary>A remote prefill request on the prefill queue: compute this prompt and push its KV into my reserved blocks.</summary>
internal sealed record RemotePrefillRequest
{
    public required string RequestId { get; init; }
    public required int[] PromptTokens { get; init; }
    public required SamplingParams Sampling { get; init; }
    public int MaxTokens { get; init; }
    public int MinTokens { get; init; }
    public int[] StopTokenIds { get; init; } = [];
    public bool IgnoreEos { get; init; }
    public bool Logprobs { get; init; }
    public string? CacheSalt { get; init; }

    /// <summary>Decode worker's KV address and lease to push into, from block <see cref="FirstBlock"/> on (before it: its own cache hits).</summary>
    public required string KvDestination { get; init; }
    public long KvHandle { get; init; }
    public int FirstBlock { get; init; }
    public required string ModelFingerprint { get; init; }

    /// <summary>Unix milliseconds after which the decode worker no longer waits: skip the work.</summary>
    public long DeadlineUnixMs { get; init; }

    public GenerateRequest ToGenerateRequest() => new()
    {
        RequestId = RequestId,
        PromptTokens = PromptTokens,
        MaxTokens = MaxTokens,
        MinTokens = MinTokens,
        Sampling = Sampling,
        StopTokenIds = StopTokenIds,
        IgnoreEos = IgnoreEos,
        Logprobs = Logprobs,
        CacheSalt = CacheSalt,
    };
}

/// <summary>The prefill worker's answer: the first token (KV already pushed), or why it could not.</summary>
internal sealed record RemotePrefillReply
{
    public bool Ok { get; init; }
    public string? Error { get; init; }

    /// <summary>The decode worker's deadline passed on the prefill side (counted as a timeout, not an error).</summary>
    public bool TimedOut { get; init; }

    /// <summary>Refused before any work: the prefill worker's queue would not let it finish before the deadline.</summary>
    public bool Busy { get; init; }

    public int FirstToken { get; init; }
    public float FirstLogprob { get; init; }
    public int CachedPromptTokens { get; init; }
    public string? PrefillWorker { get; init; }
}

internal static class PrefillProtocol
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static byte[] Encode<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    public static T Decode<T>(ReadOnlyMemory<byte> payload) =>
        JsonSerializer.Deserialize<T>(payload.Span, Options) ?? throw new JsonException($"empty {typeof(T).Name}");
}
