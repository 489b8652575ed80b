using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Tandem.Cli.Commands;

/// <summary>Console logging for server commands: `--log-level` (or TANDEM_LOG) and `--log-format text|json`.</summary>
internal static class Logging
{
    public static ILoggerFactory Create(string level, string format)
    {
        var env = Environment.GetEnvironmentVariable("TANDEM_LOG");
        var minimum = ParseLevel(env is { Length: > 0 } && level == "information" ? env : level);
        var json = format.ToLowerInvariant() switch
        {
            "text" => false,
            "json" => true,
            _ => throw new ArgumentException($"--log-format must be text or json, got '{format}'"),
        };
        return LoggerFactory.Create(b =>
        {
            b.SetMinimumLevel(minimum);
            // Kestrel's and ASP.NET Core's own chatter stays at warnings unless asked for with trace/debug.
            b.AddFilter("Microsoft", minimum <= LogLevel.Debug ? minimum : LogLevel.Warning);
            if (json)
            {
                b.AddJsonConsole(o =>
                {
                    o.IncludeScopes = true;
                    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                    o.UseUtcTimestamp = true;
                });
            }
            else
            {
                b.AddSimpleConsole(o =>
                {
                    o.SingleLine = true;
                    o.IncludeScopes = false;
                    o.TimestampFormat = "HH:mm:ss.fff ";
                    o.ColorBehavior = LoggerColorBehavior.Disabled;
                });
            }
        });
    }

    private static LogLevel ParseLevel(string s) => s.ToLowerInvariant() switch
    {
        "trace" => LogLevel.Trace,
        "debug" => LogLevel.Debug,
        "info" or "information" => LogLevel.Information,
        "warn" or "warning" => LogLevel.Warning,
        "error" => LogLevel.Error,
        "critical" => LogLevel.Critical,
        "none" => LogLevel.None,
        _ => throw new ArgumentException($"--log-level must be trace, debug, information, warning or error, got '{s}'"),
    };
}
