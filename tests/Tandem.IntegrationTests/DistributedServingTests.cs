using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Tandem.Engine.Serving;
using Tandem.Hosting;

namespace Tandem.IntegrationTests;

/// <summary>
/// Separate processes on loopback: real etcd and nats-server, `tandem worker` prefill and decode processes and a
/// `tandem frontend`. Greedy output equals the in-process aggregated server; killing workers never hangs or loses
/// requests that had not started; new workers take traffic.
/// </summary>
public class DistributedServingTests
{
    private const string LongPrompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day";

    private static async Task<(int Status, string Text, string Body)> CompleteAsync(HttpClient http, string prompt, int maxTokens = 40)
    {
        using var response = await http.PostAsync("v1/completions", new StringContent($$"""{"model":"stories260K","prompt":"{{prompt}}","max_tokens":{{maxTokens}},"temperature":0}""", Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        var text = response.IsSuccessStatusCode ? JsonDocument.Parse(body).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()! : "";
        return ((int)response.StatusCode, text, body);
    }

    private static async Task<string> AggregatedReferenceAsync(string prompt)
    {
        await using var server = await EmbeddedServer.StartAsync(new EmbeddedServerOptions
        {
            ModelPath = TestModels.Stories260K,
            Threads = 1,
            Serving = new ServingOptions { NumKvBlocks = 256 },
            Frontend = new Tandem.Frontend.FrontendOptions { Port = 0 },
        });
        using var http = new HttpClient { BaseAddress = server.Url };
        return (await CompleteAsync(http, prompt)).Text;
    }

    private static async Task<string> MetricsAsync(HttpClient http) => await http.GetStringAsync("metrics");

    [Fact]
    public async Task DecodeFirst_AcrossProcesses_EqualsAggregated_SurvivesPrefillKill_AndScalesUp()
    {
        var expected = await AggregatedReferenceAsync(LongPrompt);
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        var prefill = await cluster.StartWorkerAsync("prefill-0", "prefill");
        var decode = await cluster.StartWorkerAsync("decode-0", "decode", "--max-local-prefill-length", "8");
        var (_, url) = await cluster.StartFrontendAsync();
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };

        var (status, text, body) = await CompleteAsync(http, LongPrompt);
        Assert.True(status == 200, body + string.Join('\n', cluster.Logs));
        Assert.Equal(expected, text);
        Assert.Contains("tandem_worker_remote_prefills_total{worker=\"decode-0\",model=\"stories260K\"} 1", await MetricsAsync(http), StringComparison.Ordinal);
        // Both workers see the same /dev/shm, so the push went through shared memory, in one copy: the prefill process
        // mapped the decode worker's KV pool and wrote into it, with no staging segment.
        Assert.Single(Cluster.KvPoolOf(decode));
        Assert.True(await Cluster.MapsKvPoolOfAsync(prefill, decode));
        Assert.Empty(Cluster.StagingSegmentsOf(prefill));

        // kill -9 of the prefill worker costs nothing but latency: the decode worker prefills locally.
        prefill.Kill();
        await prefill.WaitForExitAsync();
        for (var i = 0; i < 3; i++)
        {
            (status, text, body) = await CompleteAsync(http, LongPrompt.Replace("Lily", $"Lily{i}", StringComparison.Ordinal));
            Assert.True(status == 200, body);
        }
        Assert.Contains("tandem_worker_prefill_fallbacks_total{worker=\"decode-0\"", await MetricsAsync(http), StringComparison.Ordinal);

        // Scale up: a new decode worker registers and takes requests within seconds.
        await cluster.StartWorkerAsync("decode-1", "decode");
        var stopwatch = Stopwatch.StartNew();
        string metrics;
        do
        {
            Assert.Equal(200, (await CompleteAsync(http, "Hi", 4)).Status);
            metrics = await MetricsAsync(http);
        }
        while (!metrics.Contains("tandem_worker_local_prefills_total{worker=\"decode-1\",model=\"stories260K\"} 1", StringComparison.Ordinal) && stopwatch.Elapsed < TimeSpan.FromSeconds(20));
        Assert.Contains("worker=\"decode-1\"", metrics, StringComparison.Ordinal);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(20), "the new decode worker took no request within 20 s");
    }

    [Fact]
    public async Task PrefillFirst_AcrossProcesses_EqualsAggregated_AndDecodeKillFailsOnlyItsRequests()
    {
        var expected = await AggregatedReferenceAsync(LongPrompt);
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        // KV over TCP here (the decode-first test covers shared memory between processes).
        await cluster.StartWorkerAsync("prefill-0", "prefill", "--kv-transport", "tcp");
        var decode0 = await cluster.StartWorkerAsync("decode-0", "decode", "--kv-transport", "tcp");
        var decode1 = await cluster.StartWorkerAsync("decode-1", "decode", "--kv-transport", "tcp");
        var (_, url) = await cluster.StartFrontendAsync("--strategy", "prefill-first");
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
        for (var i = 0; i < 2; i++)
        {
            var (status, text, body) = await CompleteAsync(http, LongPrompt);
            Assert.True(status == 200, body + string.Join('\n', cluster.Logs));
            Assert.Equal(expected, text);
        }
        Assert.Empty(Cluster.StagingSegmentsOf(decode0));
        Assert.Empty(Cluster.StagingSegmentsOf(decode1));
        // With --kv-transport tcp the KV pools stay private memory.
        Assert.Empty(Cluster.KvPoolOf(decode0));

        // A long stream on each decode worker (round-robin); once both are streaming, kill -9 one worker.
        var started = Enumerable.Range(0, 2).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var streams = Enumerable.Range(0, 2).Select(i => Task.Run(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
            {
                Content = new StringContent("""{"model":"stories260K","prompt":"Once","max_tokens":1900,"ignore_eos":true,"stream":true}""", Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var all = new StringBuilder();
            while (await reader.ReadLineAsync() is { } line)
            {
                all.AppendLine(line);
                started[i].TrySetResult();
            }
            started[i].TrySetResult();
            return all.ToString();
        })).ToList();
        await Task.WhenAll(started.Select(s => s.Task));
        decode0.Kill();
        var results = await Task.WhenAll(streams).WaitAsync(TimeSpan.FromSeconds(60));
        // The stream on the killed worker ends with an error event (no hang); the other finishes normally.
        Assert.True(results.Any(r => r.Contains("\"error\"", StringComparison.Ordinal) && r.TrimEnd().EndsWith("[DONE]", StringComparison.Ordinal)), string.Join("\n---\n", results.Select(r => r.Length > 600 ? r[..300] + " ... " + r[^300..] : r)));
        Assert.Contains(results, r => r.Contains("\"finish_reason\":\"length\"", StringComparison.Ordinal));
        // Requests not yet started go to the live worker, even before the dead one's lease expires.
        for (var i = 0; i < 4; i++)
        {
            var (status, text, body) = await CompleteAsync(http, LongPrompt);
            Assert.True(status == 200, body);
            Assert.Equal(expected, text);
        }
    }
}
