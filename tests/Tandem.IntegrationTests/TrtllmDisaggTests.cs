using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Tandem.Engine.Serving;
using Tandem.Hosting;

namespace Tandem.IntegrationTests;

/// <summary>
/// TensorRT-LLM's disaggregated workflow with Tandem processes: `tandem worker --http-port --server-role` context and
/// generation servers and `tandem disagg` with the configuration from TensorRT-LLM's documentation (static URLs) or a
/// metadata server (etcd). Requests are plain HTTP as curl sends them; greedy outputs equal the aggregated server's.
/// </summary>
public class TrtllmDisaggTests
{
    private const string Prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day";

    private static readonly string[] Requests =
    [
        $$"""{"model":"stories260K","prompt":"{{Prompt}}","max_tokens":40,"temperature":0}""",
        """{"model":"stories260K","prompt":"The cat sat","max_tokens":24,"temperature":0,"stream":true}""",
        """{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story about a dog"}],"max_tokens":32,"temperature":0}""",
        """{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":32,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}""",
    ];

    private static string PathOf(string request) => request.Contains("\"messages\"", StringComparison.Ordinal) ? "v1/chat/completions" : "v1/completions";

    /// <summary>Posts a request as curl would and returns the status and the generated text (SSE events joined).</summary>
    private static async Task<(int Status, string Text, string Body)> PostAsync(HttpClient http, string json)
    {
        using var response = await http.PostAsync(PathOf(json), new StringContent(json, Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            return ((int)response.StatusCode, "", body);
        }
        var text = new StringBuilder();
        if (body.StartsWith("data: ", StringComparison.Ordinal))
        {
            foreach (var line in body.Split('\n'))
            {
                if (!line.StartsWith("data: {", StringComparison.Ordinal))
                {
                    continue;
                }
                using var chunk = JsonDocument.Parse(line["data: ".Length..]);
                if (chunk.RootElement.TryGetProperty("error", out var error))
                {
                    return (500, "", error.ToString());
                }
                foreach (var choice in chunk.RootElement.GetProperty("choices").EnumerateArray())
                {
                    text.Append(choice.TryGetProperty("delta", out var delta)
                        ? delta.TryGetProperty("content", out var c) ? c.GetString() : ""
                        : choice.GetProperty("text").GetString());
                }
            }
            Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        }
        else
        {
            var choice = JsonDocument.Parse(body).RootElement.GetProperty("choices")[0];
            text.Append(choice.TryGetProperty("message", out var message) ? message.GetProperty("content").GetString() : choice.GetProperty("text").GetString());
        }
        return ((int)response.StatusCode, text.ToString(), body);
    }

    private static async Task<string[]> AggregatedReferenceAsync()
    {
        await using var server = await EmbeddedServer.StartAsync(new EmbeddedServerOptions
        {
            ModelPath = TestModels.Stories260K,
            Threads = 1,
            Serving = new ServingOptions { NumKvBlocks = 256 },
            Frontend = new Tandem.Frontend.FrontendOptions { Port = 0 },
        });
        using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromSeconds(60) };
        var texts = new string[Requests.Length];
        for (var i = 0; i < Requests.Length; i++)
        {
            var (status, text, body) = await PostAsync(http, Requests[i]);
            Assert.True(status == 200, body);
            texts[i] = text;
        }
        return texts;
    }

    /// <summary>Starts `tandem worker` serving the OpenAI API on a free port; returns the process and its base URL.</summary>
    private static async Task<(Process Process, int Port)> StartServerAsync(Cluster cluster, string id, string role, params string[] extra)
    {
        var (process, url) = await Cluster.StartHealthyAsync(port =>
        {
            var process = cluster.Start("dotnet", $"\"{Cluster.TandemDll}\" worker --model \"{TestModels.Stories260K}\" --instance-id {id} --threads 1 --num-kv-blocks 256 --http-port {port} --server-role {role} {string.Join(' ', extra)}");
            process.OutputDataReceived += (_, e) => { };
            process.BeginOutputReadLine();
            return process;
        }, TimeSpan.FromSeconds(60));
        return (process, url.Port);
    }

    private static async Task<(Process Process, Uri Url)> StartDisaggAsync(Cluster cluster, string directory, string config, string? metadata = null)
    {
        var port = Cluster.FreePort();
        var file = Path.Combine(directory, "disagg_config.yaml");
        await File.WriteAllTextAsync(file, config.Replace("{port}", port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        var args = $"\"{Cluster.TandemDll}\" disagg -c \"{file}\"";
        if (metadata is not null)
        {
            var m = Path.Combine(directory, "metadata_config.yml");
            await File.WriteAllTextAsync(m, metadata);
            args += $" -m \"{m}\"";
        }
        var process = cluster.Start("dotnet", args);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                cluster.Logs.Add(e.Data);
            }
        };
        process.BeginOutputReadLine();
        var url = new Uri($"http://localhost:{port}/");
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(120); // a loaded CI machine starts .NET processes slowly
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        while (DateTime.UtcNow < until && !process.HasExited)
        {
            try
            {
                using var response = await http.GetAsync(new Uri(url, "v1/models"));
                return (process, url);
            }
            catch (HttpRequestException)
            {
                await Task.Delay(200);
            }
        }
        Assert.Fail($"tandem disagg did not start listening (exited: {process.HasExited}):\n{string.Join('\n', cluster.Logs)}");
        return default;
    }

    private static async Task<double> MetricAsync(int port, string name)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"));
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal) && !l.StartsWith('#'));
        return line is null ? 0 : double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task DocumentedConfig_TwoContextServersOneGenerationServer_OutputsEqualAggregated()
    {
        var expected = await AggregatedReferenceAsync();
        await using var cluster = new Cluster();
        var dir = Directory.CreateTempSubdirectory("tandem-trtllm-").FullName;
        var ctx0 = await StartServerAsync(cluster, "ctx-0", "CONTEXT");
        var ctx1 = await StartServerAsync(cluster, "ctx-1", "CONTEXT");
        var gen = await StartServerAsync(cluster, "gen-0", "GENERATION");
        // The file of TensorRT-LLM's examples/disaggregated README, ports changed to free ones.
        var (_, url) = await StartDisaggAsync(cluster, dir, $$"""
            hostname: localhost
            port: {port}
            backend: pytorch
            context_servers:
              num_instances: 2
              urls:
                  - "localhost:{{ctx0.Port}}"
                  - "localhost:{{ctx1.Port}}"
            generation_servers:
              num_instances: 1
              urls:
                  - "localhost:{{gen.Port}}"
            """);
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };

        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < Requests.Length; i++)
            {
                var (status, text, body) = await PostAsync(http, Requests[i]);
                Assert.True(status == 200, body + string.Join('\n', cluster.Logs));
                Assert.Equal(expected[i], text);
            }
        }
        // Every request's KV came from a context server (pulled, not recomputed), and both context servers took turns.
        Assert.Equal(2 * Requests.Length, await MetricAsync(gen.Port, "tandem_worker_remote_prefills_total"));
        Assert.Equal(0, await MetricAsync(gen.Port, "tandem_worker_local_prefills_total"));
        Assert.Equal(Requests.Length, await MetricAsync(ctx0.Port, "tandem_frontend_requests_total{model=\"stories260K\",endpoint=\"completions\",status=\"200\"}")
            + await MetricAsync(ctx0.Port, "tandem_frontend_requests_total{model=\"stories260K\",endpoint=\"chat_completions\",status=\"200\"}"));

        var models = await http.GetStringAsync("v1/models");
        Assert.Contains("\"id\":\"stories260K\"", models, StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
        var (badStatus, _, badBody) = await PostAsync(http, """{"model":"stories260K","prompt":"x","max_tokens":-1}""");
        Assert.Equal(400, badStatus);
        Assert.Contains("\"error\"", badBody, StringComparison.Ordinal);

        // kill -9 of a context server: requests keep succeeding with the same output.
        ctx0.Process.Kill();
        await ctx0.Process.WaitForExitAsync();
        for (var i = 0; i < 3; i++)
        {
            var (status, text, body) = await PostAsync(http, Requests[0]);
            Assert.True(status == 200, body);
            Assert.Equal(expected[0], text);
        }
    }

    [Fact]
    public async Task MetadataServer_ServersJoinAndLeaveUnderLoad_WithoutFailedRequests()
    {
        var expected = await AggregatedReferenceAsync();
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        var dir = Directory.CreateTempSubdirectory("tandem-trtllm-").FullName;
        var metadataFile = Path.Combine(dir, "metadata_config.yml");
        var metadata = $"server_type: etcd\nhostname: 127.0.0.1\nport: {cluster.EtcdPort}\nhealth_check_timeout: 2.0\nrefresh_interval: 0.5\n";
        await File.WriteAllTextAsync(metadataFile, metadata);
        var (_, url) = await StartDisaggAsync(cluster, dir, "hostname: localhost\nport: {port}\nbackend: pytorch\ncontext_servers:\n  num_instances: 0\ngeneration_servers:\n  num_instances: 0\n", metadata);
        var flags = new[] { "--metadata-server-config-file", $"\"{metadataFile}\"" };
        await StartServerAsync(cluster, "ctx-0", "CONTEXT", flags);
        var gen0 = await StartServerAsync(cluster, "gen-0", "GENERATION", flags);
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
        await WaitForAsync(http, body => body.Contains($":{gen0.Port}\"", StringComparison.Ordinal), "the first generation server to be added");

        // Load: two clients sending the four requests in turn until told to stop; every answer must be right.
        using var stop = new CancellationTokenSource();
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var done = 0;
        var load = Enumerable.Range(0, 2).Select(c => Task.Run(async () =>
        {
            for (var i = c; !stop.IsCancellationRequested; i++)
            {
                var k = i % Requests.Length;
                var (status, text, body) = await PostAsync(http, Requests[k]);
                if (status != 200 || text != expected[k])
                {
                    failures.Add($"{status}: {body}");
                }
                Interlocked.Increment(ref done);
            }
        })).ToArray();

        // Join: a second context and generation server are added without a restart.
        var ctx1 = await StartServerAsync(cluster, "ctx-1", "CONTEXT", flags);
        var gen1 = await StartServerAsync(cluster, "gen-1", "GENERATION", flags);
        await WaitForAsync(http, body => body.Contains($":{gen1.Port}\"", StringComparison.Ordinal), "the second generation server to be added");
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (await MetricAsync(gen1.Port, "tandem_worker_remote_prefills_total") == 0 && DateTime.UtcNow < until)
        {
            await Task.Delay(200);
        }
        Assert.True(await MetricAsync(gen1.Port, "tandem_worker_remote_prefills_total") > 0, "the added generation server took no request");

        // Graceful leave: SIGTERM deletes the key and drains; the orchestrator removes the server, nothing fails.
        using (var term = Process.Start("kill", $"-TERM {gen0.Process.Id}"))
        {
            await term.WaitForExitAsync();
        }
        await WaitForAsync(http, body => !body.Contains($":{gen0.Port}\"", StringComparison.Ordinal), "the stopped generation server to be removed");
        var before = Volatile.Read(ref done);
        until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (Volatile.Read(ref done) < before + 8 && DateTime.UtcNow < until)
        {
            await Task.Delay(100);
        }
        await stop.CancelAsync();
        await Task.WhenAll(load).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(failures.IsEmpty, string.Join('\n', failures));
        Assert.True(done >= 16, $"only {done} requests ran");
        Assert.Contains(cluster.Logs, l => l.Contains($"Server http://127.0.0.1:{gen0.Port} is removed", StringComparison.Ordinal));

        // kill -9: the key stays until its lease expires, but two failed health checks remove the server sooner.
        ctx1.Process.Kill();
        await ctx1.Process.WaitForExitAsync();
        var killed = Stopwatch.StartNew();
        await WaitForAsync(http, body => !body.Contains($":{ctx1.Port}\"", StringComparison.Ordinal), "the killed context server to be removed");
        Assert.True(killed.Elapsed < TimeSpan.FromSeconds(8), $"removal took {killed.Elapsed} (the lease TTL is 10 s: health checks should be faster)");
        var (status, text, body) = await PostAsync(http, Requests[0]);
        Assert.True(status == 200, body);
        Assert.Equal(expected[0], text);
    }

    private static async Task WaitForAsync(HttpClient http, Func<string, bool> condition, string what)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < until)
        {
            var body = await (await http.GetAsync("health")).Content.ReadAsStringAsync();
            if (condition(body))
            {
                return;
            }
            await Task.Delay(100);
        }
        Assert.Fail($"timed out waiting for {what}");
    }
}
