using System.Diagnostics;
using System.Text.RegularExpressions;
using Tandem.Bench.Load;
using Tandem.Bench.Metrics;
using Tandem.Bench.Reports;

namespace Tandem.Bench.Tests;

public class ReportTests
{
    private static RequestRecord Ok(int index, double start, double ttft, double itl, int tokens) => new()
    {
        Index = index,
        StartMs = start,
        Success = true,
        InputTokens = 100,
        OutputTokens = tokens,
        RequestedOutputTokens = tokens,
        UsageReported = true,
        Chunks = tokens,
        TtftMs = ttft,
        ItlMs = [.. Enumerable.Repeat(itl, tokens - 1)],
        TpotMs = RequestRecord.Tpot(ttft, ttft + (itl * (tokens - 1)), tokens),
        E2eMs = ttft + (itl * (tokens - 1)),
    };

    private static BenchReport Report(double itl, double? sloTtft = null, double? sloTpot = null)
    {
        var records = Enumerable.Range(0, 40).Select(i => Ok(i, i * 100, 100 + (i * 5), itl + (i % 7), 10)).ToList();
        records.Add(new RequestRecord { Index = 40, StartMs = 4000, ErrorKind = "http_500", Error = "HTTP 500: boom", E2eMs = 3 });
        var options = new BenchOptions { Url = new Uri("http://127.0.0.1:8000"), Model = "m<x>", SloTtftMs = sloTtft, SloTpotMs = sloTpot };
        var duration = records.Max(r => r.StartMs + r.E2eMs) / 1000.0;
        return BenchReport.From(new BenchResult(options, records, duration, 0, 0, false, DateTimeOffset.UnixEpoch));
    }

    [Fact]
    public void Compute_Slos_GoodputCountsRequestsMeetingBoth()
    {
        // TTFT 100 + 5i ≤ 200 → i ≤ 20; TPOT 20 + (i mod 7) ≤ 24 → i mod 7 ≤ 4.
        var report = Report(20, sloTtft: 200, sloTpot: 24);
        var expected = Enumerable.Range(0, 21).Count(i => i % 7 <= 4);
        Assert.Equal(expected, report.Summary.GoodRequests);
        Assert.Equal(expected / report.Summary.DurationSeconds, report.Summary.Goodput!.Value, 9);
        Assert.Null(Report(20).Summary.Goodput);
        Assert.Equal(40, report.Summary.Completed);
        Assert.Equal(1, report.Summary.ErrorsByKind["http_500"]);
    }

    [Fact]
    public void Percentile_LinearInterpolation_MatchesDefinition()
    {
        double[] sorted = [1, 2, 3, 4];
        Assert.Equal(2.5, Distribution.Percentile(sorted, 50));
        Assert.Equal(3.7, Distribution.Percentile(sorted, 90), 9);
        Assert.Equal(4, Distribution.Percentile(sorted, 100));
        var d = Distribution.Of([5, 1, 3])!;
        Assert.Equal((3, 3.0, 1.0, 3.0, 5.0), (d.Count, d.Mean, d.Min, d.P50, d.Max));
    }

    [Fact]
    public void Series_TokensSpreadOverChunkTimes_SumToTotalOutput()
    {
        var report = Report(20);
        var bucketWidth = report.TimeSeries.Count > 1 ? report.TimeSeries[1].StartSeconds - report.TimeSeries[0].StartSeconds : 1;
        Assert.Equal(report.Summary.TotalOutputTokens, report.TimeSeries.Sum(b => b.OutputTokensPerSecond * bucketWidth), 6);
        Assert.Equal(40, report.TimeSeries.Sum(b => b.RequestsPerSecond * bucketWidth), 6);
    }

    [Fact]
    public async Task Json_RoundTrip_KeepsSummaryAndRequests()
    {
        var report = Report(20, sloTtft: 150);
        var path = Path.Combine(Path.GetTempPath(), $"report-{Guid.NewGuid():N}.json");
        try
        {
            await report.WriteAsync(path, TestContext.Current.CancellationToken);
            var text = File.ReadAllText(path);
            Assert.Contains("\"ttft_ms\"", text);
            Assert.Contains("\"output_token_throughput\"", text);
            Assert.Contains("\"slo_ttft_ms\": 150", text);
            var back = BenchReport.Read(path);
            Assert.Equal(report.Summary.TtftMs, back.Summary.TtftMs);
            Assert.Equal(report.Summary.GoodRequests, back.Summary.GoodRequests);
            Assert.Equal(report.Requests.Count, back.Requests.Count);
            Assert.Equal(report.Requests[3].ItlMs, back.Requests[3].ItlMs);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Compare_TwoReports_PrintsBothAndRatios()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"compare-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var a = Path.Combine(dir, "a.json");
            var b = Path.Combine(dir, "b.json");
            var ra = Report(20);
            var rb = Report(40);
            await ra.WriteAsync(a, TestContext.Current.CancellationToken);
            await rb.WriteAsync(b, TestContext.Current.CancellationToken);
            using var output = new StringWriter();
            Assert.Equal(0, BenchApplication.Compare(a, b, output, interactive: false));
            var text = output.ToString();
            Assert.Contains("a: a.json", text);
            Assert.Contains("b: b.json", text);
            var itl = text.Split('\n').Single(l => l.Contains("ITL mean", StringComparison.Ordinal));
            var ratio = rb.Summary.ItlMs!.Mean / ra.Summary.ItlMs!.Mean;
            Assert.Contains(ratio.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture), itl);
            var completed = text.Split('\n').Single(l => l.Contains("Completed requests", StringComparison.Ordinal));
            Assert.Contains("1.000", completed);

            var e = Assert.Throws<ArgumentException>(() => BenchApplication.Compare(a, Path.Combine(dir, "missing.json"), output, false));
            Assert.Contains("missing.json", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void WriteSummary_PlainOutput_ShowsMetricsAndErrors()
    {
        using var output = new StringWriter();
        ConsoleReport.WriteSummary(ConsoleReport.Create(output, interactive: false), Report(20));
        var text = output.ToString();
        Assert.Contains("TTFT p99", text);
        Assert.Contains("Output token throughput", text);
        Assert.Contains("http_500 1", text);
        Assert.DoesNotContain("\u001b[", text); // no ANSI escapes when not a terminal
    }

    [Fact]
    public async Task Html_RenderedInHeadlessChromium_DrawsEveryChartWithoutErrors()
    {
        const string chromium = "/usr/bin/chromium";
        var path = File.Exists(chromium) ? chromium : FindOnPath("chromium") ?? FindOnPath("chromium-browser");
        if (path is null)
        {
            const string message = "chromium is not installed (apt-get install -y chromium); the HTML report was not checked in a browser";
            if (Environment.GetEnvironmentVariable("CI") == "true")
            {
                Assert.Fail(message);
            }
            Assert.Skip(message);
        }
        var dir = Path.Combine(Path.GetTempPath(), $"html-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var html = Path.Combine(dir, "report.html");
            File.WriteAllText(html, HtmlReport.Render(Report(20)));
            var text = File.ReadAllText(html);
            Assert.DoesNotContain("http://", text.Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal).Replace("http://127.0.0.1:8000", "", StringComparison.Ordinal));
            Assert.DoesNotContain("https://", text);
            Assert.Contains("m&lt;x&gt;", text);

            var dom = await DumpDomAsync(path, html, Path.Combine(dir, "profile"));
            Assert.Contains("data-rendered=\"true\"", dom);
            Assert.Matches(new Regex("<pre id=\"errors\"></pre>"), dom);
            Assert.Equal(HtmlReport.Charts.Length, Regex.Count(dom, "data-drawn=\"true\""));
            Assert.Equal(HtmlReport.Charts.Length, Regex.Count(dom, "<svg "));
            Assert.True(Regex.Count(dom, "<rect [^>]*class=\"bar\"") >= 3 * 4, "histogram bars");
            Assert.True(Regex.Count(dom, "<path d=\"M[^\"]+L") >= 3 + 3, "CDF and time-series lines");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<string> DumpDomAsync(string chromium, string html, string profile)
    {
        var info = new ProcessStartInfo(chromium)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", $"--user-data-dir={profile}", "--dump-dom", new Uri(html).AbsoluteUri })
        {
            info.ArgumentList.Add(arg);
        }
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        limit.CancelAfter(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("chromium did not finish within 90 s");
        }
        var dom = await stdout;
        Assert.True(dom.Contains("<body", StringComparison.Ordinal), $"chromium printed no DOM (exit {process.ExitCode}): {await stderr}");
        return dom;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
