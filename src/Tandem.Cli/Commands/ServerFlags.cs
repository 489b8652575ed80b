using Tandem.Frontend;

namespace Tandem.Cli.Commands;

/// <summary>Flag values shared by the commands that run a frontend (`serve`, `frontend`).</summary>
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
}
