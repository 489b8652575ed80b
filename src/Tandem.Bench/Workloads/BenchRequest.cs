namespace Tandem.Bench.Workloads;

/// <summary>One request to send: a text prompt or a token-id prompt, the output length to force, and (for traces and
/// open-loop schedules) when to send it, relative to the start of the measured phase.</summary>
internal sealed record BenchRequest(int Index, string? Text, int[]? TokenIds, int PromptTokens, int OutputTokens)
{
    public TimeSpan? ScheduledAt { get; init; }
}
