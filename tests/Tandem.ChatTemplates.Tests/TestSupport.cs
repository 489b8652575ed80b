namespace Tandem.ChatTemplates.Tests;

internal static class TestSupport
{
    public static ChatTemplate Load(string file) =>
        ChatTemplate.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Templates", file)));

    /// <summary>Renders <paramref name="template"/> with no messages and the given variables.</summary>
    public static string Render(string template, IReadOnlyDictionary<string, object?>? variables = null) =>
        ChatTemplate.Parse(template).Render([], new ChatTemplateContext { Extra = variables });

    public static ChatMessage SystemMessage(string content) => new("system", content);

    public static ChatMessage User(string content) => new("user", content);

    public static ChatMessage Assistant(string? content) => new("assistant", content);

    /// <summary>An OpenAI-style tool definition as the frontend passes it in <c>tools</c>.</summary>
    public static IReadOnlyList<object?> WeatherTools() =>
    [
        new Dictionary<string, object?>
        {
            ["type"] = "function",
            ["function"] = new Dictionary<string, object?>
            {
                ["name"] = "get_weather",
                ["description"] = "Get the weather",
                ["parameters"] = new Dictionary<string, object?>
                {
                    ["type"] = "object",
                    ["properties"] = new Dictionary<string, object?>
                    {
                        ["city"] = new Dictionary<string, object?> { ["type"] = "string" },
                    },
                    ["required"] = new List<object?> { "city" },
                },
            },
        },
    ];
}

/// <summary>A clock fixed at one instant, in UTC as the local zone.</summary>
internal sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
