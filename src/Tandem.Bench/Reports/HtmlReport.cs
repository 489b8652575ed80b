using System.Net;
using System.Text;
using System.Text.Json;

namespace Tandem.Bench.Reports;

/// <summary>
/// A self-contained HTML page for one run: the summary table, histograms and CDFs of TTFT, ITL and E2E latency and the
/// throughput time series, drawn as inline SVG by an inline script (no network access). The script marks the body with
/// data-rendered="true" when every chart is drawn and writes any script error into the #errors element.
/// </summary>
internal static class HtmlReport
{
    /// <summary>At most this many ITL samples are embedded (evenly picked from the sorted gaps).</summary>
    private const int MaxSamples = 20000;

    public static string Render(BenchReport report)
    {
        var ok = report.Requests.Where(r => r.Success).ToList();
        var data = new
        {
            ttft = Sample(ok.Where(r => r.TtftMs is not null).Select(r => r.TtftMs!.Value)),
            itl = Sample(ok.SelectMany(r => r.ItlMs)),
            e2e = Sample(ok.Select(r => r.E2eMs)),
            tpot = Sample(ok.Where(r => r.TpotMs is not null).Select(r => r.TpotMs!.Value)),
            series = report.TimeSeries.Select(b => new[] { b.StartSeconds, b.OutputTokensPerSecond, b.RequestsPerSecond, b.InFlight }),
        };
        var json = JsonSerializer.Serialize(data); // the default encoder escapes '<', '>' and '&', so the JSON cannot close the script element
        var c = report.Config;
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>tandem bench: ")
            .Append(E(c.Model)).Append("</title>\n<style>\n").Append(Style).Append("</style>\n</head>\n<body>\n");
        html.Append("<h1>tandem bench: ").Append(E(c.Model)).Append("</h1>\n<p class=\"meta\">")
            .Append(E($"{c.Url} · {c.Endpoint} · started {report.StartedAt:yyyy-MM-dd HH:mm:ss} UTC · "))
            .Append(E(c.Trace is not null ? $"trace {Path.GetFileName(c.Trace)}" : c.RequestRate is { } rate ? $"{rate} req/s (burstiness {c.Burstiness})" : $"concurrency {c.Concurrency ?? 1}"))
            .Append(E(c.Trace is null ? $" · isl {c.Isl} · osl {c.Osl}" : ""))
            .Append(report.Interrupted ? " · <strong>interrupted</strong>" : "").Append("</p>\n");
        html.Append("<pre id=\"errors\"></pre>\n<table class=\"summary\"><thead><tr><th>metric</th><th>value</th><th>unit</th></tr></thead><tbody>\n");
        foreach (var (label, value, unit) in ConsoleReport.Rows(report))
        {
            html.Append("<tr><td>").Append(E(label)).Append("</td><td class=\"num\">").Append(ConsoleReport.Format(value)).Append("</td><td>").Append(E(unit)).Append("</td></tr>\n");
        }
        foreach (var (kind, count) in report.Summary.ErrorsByKind)
        {
            html.Append("<tr><td>errors: ").Append(E(kind)).Append("</td><td class=\"num\">").Append(count).Append("</td><td></td></tr>\n");
        }
        html.Append("</tbody></table>\n<div class=\"grid\">\n");
        foreach (var (id, title) in Charts)
        {
            html.Append("<figure><figcaption>").Append(E(title)).Append("</figcaption><div class=\"chart\" data-chart=\"").Append(id).Append("\"></div></figure>\n");
        }
        html.Append("</div>\n<script type=\"application/json\" id=\"bench-data\">").Append(json).Append("</script>\n<script>\n").Append(Script).Append("</script>\n</body>\n</html>\n");
        return html.ToString();
    }

    public static async Task WriteAsync(BenchReport report, string path, CancellationToken cancellationToken = default)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }
        await File.WriteAllTextAsync(path, Render(report), cancellationToken).ConfigureAwait(false);
    }

    internal static readonly (string Id, string Title)[] Charts =
    [
        ("ttft-hist", "TTFT histogram (ms)"),
        ("ttft-cdf", "TTFT CDF (ms)"),
        ("itl-hist", "ITL histogram (ms)"),
        ("itl-cdf", "ITL CDF (ms)"),
        ("e2e-hist", "E2E latency histogram (ms)"),
        ("e2e-cdf", "E2E latency CDF (ms)"),
        ("throughput", "Output tokens/s over time (s)"),
        ("requests", "Finished requests/s and requests in flight over time (s)"),
    ];

    private static double[] Sample(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        if (sorted.Length <= MaxSamples)
        {
            return [.. sorted.Select(Round)];
        }
        return [.. Enumerable.Range(0, MaxSamples).Select(i => Round(sorted[(int)((long)i * (sorted.Length - 1) / (MaxSamples - 1))]))];
    }

    private static double Round(double v) => Math.Round(v, 3);

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private const string Style = """
        body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
        h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
        .meta { color: #555; margin: 0 0 1rem; }
        table.summary { border-collapse: collapse; margin-bottom: 1.5rem; }
        table.summary td, table.summary th { border-bottom: 1px solid #ddd; padding: .2rem .8rem; text-align: left; }
        table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
        .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 1rem; }
        figure { margin: 0; border: 1px solid #ddd; padding: .5rem; }
        figcaption { font-weight: 600; margin-bottom: .3rem; }
        svg text { font-size: 11px; fill: #444; }
        .bar { fill: #4e79a7; } .line { fill: none; stroke: #4e79a7; stroke-width: 1.5; } .line2 { fill: none; stroke: #e15759; stroke-width: 1.5; }
        .axis { stroke: #888; } .empty { color: #888; font-style: italic; }
        #errors:empty { display: none; } #errors { color: #b00; border: 1px solid #b00; padding: .5rem; }

        """;

    private const string Script = """
        (function () {
          var errors = document.getElementById('errors');
          function fail(message) { errors.textContent += message + '\n'; }
          window.addEventListener('error', function (e) { fail('error: ' + e.message); });
          var NS = 'http://www.w3.org/2000/svg', W = 440, H = 220, L = 48, R = 12, T = 10, B = 28;
          function el(name, attrs, parent) {
            var node = document.createElementNS(NS, name);
            for (var k in attrs) { node.setAttribute(k, attrs[k]); }
            if (parent) { parent.appendChild(node); }
            return node;
          }
          function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2); }
          function frame(container, xmin, xmax, ymin, ymax) {
            var svg = el('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H }, container);
            if (xmax <= xmin) { xmax = xmin + 1; }
            if (ymax <= ymin) { ymax = ymin + 1; }
            var sx = function (x) { return L + (x - xmin) / (xmax - xmin) * (W - L - R); };
            var sy = function (y) { return H - B - (y - ymin) / (ymax - ymin) * (H - T - B); };
            el('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, 'class': 'axis' }, svg);
            el('line', { x1: L, y1: T, x2: L, y2: H - B, 'class': 'axis' }, svg);
            for (var i = 0; i <= 4; i++) {
              var xv = xmin + (xmax - xmin) * i / 4, yv = ymin + (ymax - ymin) * i / 4;
              el('text', { x: sx(xv), y: H - B + 14, 'text-anchor': 'middle' }, svg).textContent = fmt(xv);
              el('text', { x: L - 4, y: sy(yv) + 4, 'text-anchor': 'end' }, svg).textContent = fmt(yv);
            }
            return { svg: svg, sx: sx, sy: sy };
          }
          function empty(container) {
            var p = document.createElement('p'); p.className = 'empty'; p.textContent = 'no data'; container.appendChild(p);
          }
          function histogram(container, values) {
            if (!values.length) { return empty(container); }
            var min = values[0], max = values[values.length - 1];
            var bins = Math.max(1, Math.min(40, Math.ceil(Math.sqrt(values.length))));
            var width = (max - min) / bins || 1, counts = new Array(bins).fill(0);
            values.forEach(function (v) { counts[Math.min(bins - 1, Math.floor((v - min) / width))]++; });
            var f = frame(container, min, min + width * bins, 0, Math.max.apply(null, counts));
            counts.forEach(function (c, i) {
              var x0 = f.sx(min + i * width), x1 = f.sx(min + (i + 1) * width), y = f.sy(c);
              el('rect', { x: x0, y: y, width: Math.max(1, x1 - x0 - 1), height: Math.max(0, f.sy(0) - y), 'class': 'bar' }, f.svg)
                .appendChild(el('title', {})).textContent = c + ' in [' + fmt(min + i * width) + ', ' + fmt(min + (i + 1) * width) + ')';
            });
          }
          function line(f, points, cls) {
            var d = points.map(function (p, i) { return (i ? 'L' : 'M') + f.sx(p[0]).toFixed(1) + ' ' + f.sy(p[1]).toFixed(1); }).join(' ');
            el('path', { d: d, 'class': cls }, f.svg);
          }
          function cdf(container, values) {
            if (!values.length) { return empty(container); }
            var f = frame(container, values[0], values[values.length - 1], 0, 1);
            line(f, values.map(function (v, i) { return [v, (i + 1) / values.length]; }), 'line');
          }
          function series(container, points, columns) {
            if (!points.length) { return empty(container); }
            var width = points.length > 1 ? points[1][0] - points[0][0] : 1;
            var ymax = 0;
            points.forEach(function (p) { columns.forEach(function (c) { ymax = Math.max(ymax, p[c]); }); });
            var f = frame(container, 0, points[points.length - 1][0] + width, 0, ymax);
            columns.forEach(function (c, k) {
              line(f, points.map(function (p) { return [p[0] + width / 2, p[c]]; }), k ? 'line2' : 'line');
            });
          }
          try {
            var data = JSON.parse(document.getElementById('bench-data').textContent);
            var draw = {
              'ttft-hist': function (c) { histogram(c, data.ttft); }, 'ttft-cdf': function (c) { cdf(c, data.ttft); },
              'itl-hist': function (c) { histogram(c, data.itl); }, 'itl-cdf': function (c) { cdf(c, data.itl); },
              'e2e-hist': function (c) { histogram(c, data.e2e); }, 'e2e-cdf': function (c) { cdf(c, data.e2e); },
              'throughput': function (c) { series(c, data.series, [1]); },
              'requests': function (c) { series(c, data.series, [2, 3]); }
            };
            document.querySelectorAll('[data-chart]').forEach(function (c) {
              draw[c.getAttribute('data-chart')](c);
              c.setAttribute('data-drawn', 'true');
            });
            document.body.setAttribute('data-rendered', errors.textContent ? 'false' : 'true');
          } catch (e) {
            fail('error: ' + (e && e.stack ? e.stack : e));
            document.body.setAttribute('data-rendered', 'false');
          }
        })();

        """;
}
