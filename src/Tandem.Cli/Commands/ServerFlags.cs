using Tandem.Frontend;

namespace Tandem.Cli.Commands;

/// <summary>Flag values shared by the server commands (`serve`, `frontend`, `worker`).</summary>
internal static class ServerFlags
{
    public static DisaggregationStrategy Strategy(string? value) => value switch
    {
        "decode-first" => DisaggregationStrategy.DecodeFirst,
        "prefill-first" => DisaggregationStrategy.PrefillFirst,
        _ => throw new ArgumentException($"--strategy must be decode-first or prefill-first, got '{value}'"),
    };

    /// <summary>`--api-key k1,k2`: the accepted keys (none = no authentication).</summary>
    public static IReadOnlyList<string> ApiKeys(string? value) =>
        value is { Length: > 0 } keys ? keys.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) : [];

    /// <summary>A duration flag in seconds; NaN, infinite, zero or negative values are refused (TimeSpan.FromSeconds would throw or misbehave).</summary>
    public static TimeSpan Seconds(double value, string flag) =>
        value > 0 && double.IsFinite(value) ? TimeSpan.FromSeconds(value) : throw new ArgumentException($"{flag} must be a positive number of seconds, got {value}");
}
