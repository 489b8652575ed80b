using System.CommandLine;
using System.Globalization;

namespace Tandem.Cli.Commands;

/// <summary>Option helpers: every flag also reads TANDEM_&lt;FLAG&gt; from the environment (e.g. --max-tokens ← TANDEM_MAX_TOKENS).</summary>
internal static class CliOptions
{
    public static Option<T> Create<T>(string name, string description, T defaultValue, params string[] aliases)
    {
        var option = new Option<T>(name, aliases)
        {
            Description = description,
            DefaultValueFactory = _ => FromEnvironment(name, defaultValue),
        };
        return option;
    }

    /// <summary>An option without a default (null when neither the flag nor the environment variable is given).</summary>
    public static Option<T?> Optional<T>(string name, string description, params string[] aliases)
        where T : struct
    {
        return new Option<T?>(name, aliases)
        {
            Description = description,
            DefaultValueFactory = _ => EnvironmentValue(name) is { } s ? (T)Convert.ChangeType(s, typeof(T), CultureInfo.InvariantCulture) : null,
        };
    }

    public static string EnvironmentName(string flag) => "TANDEM_" + flag.TrimStart('-').Replace('-', '_').ToUpperInvariant();

    private static string? EnvironmentValue(string flag) => Environment.GetEnvironmentVariable(EnvironmentName(flag)) is { Length: > 0 } s ? s : null;

    private static T FromEnvironment<T>(string flag, T fallback)
    {
        var s = EnvironmentValue(flag);
        if (s is null)
        {
            return fallback;
        }
        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        try
        {
            return type == typeof(bool) ? (T)(object)(s is "1" or "true" or "TRUE" or "True") : (T)Convert.ChangeType(s, type, CultureInfo.InvariantCulture);
        }
        catch (FormatException)
        {
            throw new ArgumentException($"environment variable {EnvironmentName(flag)}='{s}' is not a valid {type.Name}");
        }
    }
}
