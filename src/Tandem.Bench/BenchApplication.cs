using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Tandem.Bench.Load;
using Tandem.Bench.Metrics;
using Tandem.Bench.Reports;

namespace Tandem.Bench;

/// <summary>What `tandem bench` does: run with live progress, print the summary, write the reports; or compare two reports.</summary>
public static class BenchApplication
{
    /// <summary>
    /// Runs a benchmark and writes the reports. Cancellation (Ctrl+C) aborts in-flight requests; the reports are still written
    /// with what completed. Returns 0, 1 when every request failed, or 130 when interrupted.
    /// </summary>
    public static async Task<int> RunAsync(BenchOptions options, TextWriter output, bool interactive, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var console = ConsoleReport.Create(output, interactive);
        var progress = new ProgressState();
        BenchResult result;
        if (interactive)
        {
            result = await console.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async context =>
                {
                    var task = context.AddTask("starting", maxValue: 1);
                    return await RunWithDisplayAsync(options, progress, () =>
                    {
                        task.MaxValue = progress.Total ?? progress.DurationSeconds ?? 1;
                        task.Value = Math.Min(task.MaxValue, progress.Total is not null ? progress.Completed : progress.Elapsed.TotalSeconds);
                        task.Description = progress.Describe();
                    }, TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
                }).ConfigureAwait(false);
        }
        else
        {
            result = await RunWithDisplayAsync(options, progress, () => output.WriteLine(progress.Describe()), TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        }

        var report = BenchReport.From(result);
        ConsoleReport.WriteSummary(console, report);
        if (options.OutputPath is { } json)
        {
            await report.WriteAsync(json, CancellationToken.None).ConfigureAwait(false);
            console.WriteLine($"report: {json}");
        }
        if (options.HtmlPath is { } html)
        {
            await HtmlReport.WriteAsync(report, html, CancellationToken.None).ConfigureAwait(false);
            console.WriteLine($"html report: {html}");
        }
        if (result.Interrupted)
        {
            return 130;
        }
        return report.Summary.Completed == 0 && report.Summary.Failed > 0 ? 1 : 0;
    }

    /// <summary>Prints two reports side by side with b/a ratios.</summary>
    public static int Compare(string pathA, string pathB, TextWriter output, bool interactive)
    {
        var a = BenchReport.Read(pathA);
        var b = BenchReport.Read(pathB);
        ConsoleReport.WriteComparison(ConsoleReport.Create(output, interactive), a, b, Path.GetFileName(pathA), Path.GetFileName(pathB));
        return 0;
    }

    private static async Task<BenchResult> RunWithDisplayAsync(BenchOptions options, ProgressState progress, Action refresh, TimeSpan period, CancellationToken cancellationToken)
    {
        var run = BenchRunner.RunAsync(options, progress, TimeProvider.System, cancellationToken);
        while (!run.IsCompleted)
        {
            await Task.WhenAny(run, Task.Delay(period, CancellationToken.None)).ConfigureAwait(false);
            if (!run.IsCompleted && progress.Started)
            {
                refresh();
            }
        }
        return await run.ConfigureAwait(false);
    }

    private sealed class ProgressState : IBenchProgress
    {
        private readonly Stopwatch _clock = new();
        private int _completed;
        private int _failed;
        private long _outputTokens;

        public bool Started { get; private set; }

        public int? Total { get; private set; }

        public double? DurationSeconds { get; private set; }

        public int Completed => Volatile.Read(ref _completed);

        public TimeSpan Elapsed => _clock.Elapsed;

        public void MeasurementStarted(int? total, TimeSpan? duration)
        {
            Total = total;
            DurationSeconds = duration?.TotalSeconds;
            _clock.Start();
            Started = true;
        }

        public void RequestCompleted(RequestRecord record, int completed, int failed)
        {
            Interlocked.Add(ref _outputTokens, record.Success ? record.OutputTokens : 0);
            Volatile.Write(ref _completed, Math.Max(Volatile.Read(ref _completed), completed));
            Volatile.Write(ref _failed, Math.Max(Volatile.Read(ref _failed), failed));
        }

        public string Describe()
        {
            var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-9);
            var of = Total is { } t ? $"/{t}" : "";
            return string.Create(CultureInfo.InvariantCulture, $"{Completed}{of} requests, {Volatile.Read(ref _failed)} failed, {Volatile.Read(ref _outputTokens) / seconds:0.0} output tok/s, {seconds:0.0} s");
        }
    }
}
