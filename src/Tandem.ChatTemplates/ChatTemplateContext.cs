namespace Tandem.ChatTemplates;

/// <summary>Variables a chat template is rendered with besides <c>messages</c>.</summary>
public sealed record ChatTemplateContext
{
    /// <summary><c>add_generation_prompt</c>: end the prompt with the header of a new assistant turn.</summary>
    public bool AddGenerationPrompt { get; init; } = true;

    /// <summary><c>bos_token</c>.</summary>
    public string BosToken { get; init; } = "";

    /// <summary><c>eos_token</c>.</summary>
    public string EosToken { get; init; } = "";

    /// <summary>
    /// Extra variables, e.g. <c>enable_thinking</c>, <c>tools</c>, <c>date_string</c>. Values are JSON-like:
    /// null, string, bool, integers, floating point numbers, lists and string-keyed dictionaries
    /// (a <see cref="System.Text.Json.JsonElement"/> is accepted too). They override the built-in variables.
    /// </summary>
    public IReadOnlyDictionary<string, object?>? Extra { get; init; }

    /// <summary>Clock for <c>strftime_now</c> (local time); <see cref="TimeProvider.System"/> when null.</summary>
    public TimeProvider? TimeProvider { get; init; }
}
