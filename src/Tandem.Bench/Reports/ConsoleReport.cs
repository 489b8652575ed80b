using System.Globalization;
using Spectre.Console;

namespace Tandem.Bench.Reports;

/// <summary>Terminal tables: the summary of one run and two runs side by side.</summary>
internal static class ConsoleReport
{
    /// <summary>A console writing to <paramref name="writer"/>; ANSI colours and live widgets only when <paramref name="interactive"/>.</summary>
    public static IAnsiConsole Create(TextWriter writer, bool interactive) => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(writer),
        Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
        ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
    });

    /// <summary>Rows of (label, value) describing a report; shared by the summary and the comparison.</summary>
    public static List<(string Label, double? Value, string Unit)> Rows(BenchReport report)
    {
        var s = report.Summary;
        var rows = new List<(string, double?, string)>
        {
            ("Completed requests", s.Completed, ""),
            ("Failed requests", s.Failed, ""),
            ("Duration", s.DurationSeconds, "s"),
            ("Total input tokens", s.TotalInputTokens, ""),
            ("Total output tokens", s.TotalOutputTokens, ""),
            ("Request throughput", s.RequestThroughput, "req/s"),
            ("Output token throughput", s.OutputTokenThroughput, "tok/s"),
            ("Peak output token throughput", s.PeakOutputTokenThroughput, "tok/s"),
            ("Total token throughput", s.TotalTokenThroughput, "tok/s"),
        };
        if (s.Goodput is not null)
        {
            rows.Add(("Goodput", s.Goodput, "req/s"));
            rows.Add(("Requests meeting SLOs", s.GoodRequests, ""));
        }
        foreach (var (name, d) in new[] { ("TTFT", s.TtftMs), ("TPOT", s.TpotMs), ("ITL", s.ItlMs), ("E2E", s.E2eMs) })
        {
            if (d is null)
            {
                continue;
            }
            rows.Add(($"{name} mean", d.Mean, "ms"));
            rows.Add(($"{name} p50", d.P50, "ms"));
            rows.Add(($"{name} p90", d.P90, "ms"));
            rows.Add(($"{name} p99", d.P99, "ms"));
            rows.Add(($"{name} max", d.Max, "ms"));
        }
        return rows;
    }

    public static string Format(double? value)
    {
        if (value is not { } v)
        {
            return "-";
        }
        if (Math.Abs(v - Math.Round(v)) < 1e-9 && Math.Abs(v) < 1e12)
        {
            return ((long)Math.Round(v)).ToString(CultureInfo.InvariantCulture);
        }
        return v.ToString(Math.Abs(v) >= 100 ? "0.0" : "0.00", CultureInfo.InvariantCulture);
    }

    public static void WriteSummary(IAnsiConsole console, BenchReport report)
    {
        var c = report.Config;
        var load = c.Trace is not null ? $"trace {Path.GetFileName(c.Trace)} (speedup {c.Speedup})"
            : c.RequestRate is { } rate ? $"{rate} req/s, burstiness {c.Burstiness}" + (c.Concurrency is { } mc ? $", at most {mc} in flight" : "")
            : $"concurrency {c.Concurrency ?? 1}";
        var table = new Table().Title(Markup.Escape($"tandem bench: {c.Model} at {c.Url} ({c.Endpoint}, {load})")).AddColumn("metric").AddColumn(new TableColumn("value").RightAligned()).AddColumn("unit");
        foreach (var (label, value, unit) in Rows(report))
        {
            table.AddRow(Markup.Escape(label), Format(value), unit);
        }
        console.Write(table);
        if (report.Summary.ErrorsByKind.Count > 0)
        {
            console.WriteLine("errors: " + string.Join(", ", report.Summary.ErrorsByKind.Select(e => $"{e.Key} {e.Value}")));
            var first = report.Requests.FirstOrDefault(r => !r.Success && r.ErrorKind != "cancelled");
            if (first?.Error is { } message)
            {
                console.WriteLine("first error: " + message);
            }
        }
        if (report.Interrupted)
        {
            console.WriteLine($"interrupted: {report.Summary.Cancelled} in-flight requests were cancelled and are not counted");
        }
        if (report.Requests.Any(r => r.Success && !r.UsageReported))
        {
            console.WriteLine("note: the server reported no usage for some requests; their output tokens are counted as streamed chunks");
        }
    }

    /// <summary>Two runs side by side; the ratio column is b/a.</summary>
    public static void WriteComparison(IAnsiConsole console, BenchReport a, BenchReport b, string nameA, string nameB)
    {
        var table = new Table().Title("comparison (ratio = b/a)").AddColumn("metric")
            .AddColumn(new TableColumn(Markup.Escape($"a: {nameA}")).RightAligned())
            .AddColumn(new TableColumn(Markup.Escape($"b: {nameB}")).RightAligned())
            .AddColumn(new TableColumn("b/a").RightAligned()).AddColumn("unit");
        var rowsB = Rows(b).ToDictionary(r => r.Label, r => r.Value);
        var rowsA = Rows(a);
        foreach (var (label, value, unit) in rowsA.Concat(Rows(b).Where(r => rowsA.All(x => x.Label != r.Label)).Select(r => (r.Label, (double?)null, r.Unit))))
        {
            var other = rowsB.GetValueOrDefault(label);
            var ratio = value is { } va && other is { } vb && va != 0 ? vb / va : (double?)null;
            table.AddRow(Markup.Escape(label), Format(value), Format(other), ratio is { } r ? r.ToString("0.000", CultureInfo.InvariantCulture) : "-", unit);
        }
        console.Write(table);
    }
}
