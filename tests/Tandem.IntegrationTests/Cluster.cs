using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Tandem.IntegrationTests;

/// <summary>Real processes for a test: etcd, nats-server and tandem workers/frontends, killed at the end.</summary>
public sealed partial class Cluster : IAsyncDisposable
{
    private readonly List<Process> _processes = [];
    private readonly string _data = Directory.CreateTempSubdirectory("tandem-it-").FullName;

    /// <summary>The model every worker and frontend of this cluster serves.</summary>
    public string ModelPath { get; init; } = TestModels.Stories260K;

    public int EtcdPort { get; private set; }
    public int NatsPort { get; private set; }
    public string Etcd => $"etcd://127.0.0.1:{EtcdPort}";
    public string Nats => $"nats://127.0.0.1:{NatsPort}";

    public static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Tandem.slnx")))
            {
                dir = dir.Parent;
            }
            return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
        }
    }

    /// <summary>The CLI built next to these tests (same configuration).</summary>
    public static string TandemDll
    {
        get
        {
            var configuration = AppContext.BaseDirectory.Contains("/Debug/", StringComparison.Ordinal) ? "Debug" : "Release";
            var path = Path.Combine(RepositoryRoot, "src", "Tandem.Cli", "bin", configuration, "net10.0", "tandem.dll");
            return File.Exists(path) ? path : throw new InvalidOperationException($"build the CLI first: {path} is missing");
        }
    }

    /// <summary>Skips (locally) or fails (CI) when a system tool is missing.</summary>
    public static string Require(string tool)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            var path = Path.Combine(dir, tool);
            if (File.Exists(path))
            {
                return path;
            }
        }
        var message = $"{tool} is not installed (apt-get install {(tool == "etcd" ? "etcd-server" : tool)})";
        if (Environment.GetEnvironmentVariable("CI") == "true")
        {
            Assert.Fail(message);
        }
        Assert.Skip(message);
        return "";
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async Task StartInfrastructureAsync()
    {
        var etcd = Require("etcd");
        var nats = Require("nats-server");
        EtcdPort = FreePort();
        var peer = FreePort();
        Start(etcd, $"--name it --data-dir {_data}/etcd --listen-client-urls http://127.0.0.1:{EtcdPort} --advertise-client-urls http://127.0.0.1:{EtcdPort} --listen-peer-urls http://127.0.0.1:{peer} --initial-advertise-peer-urls http://127.0.0.1:{peer} --initial-cluster it=http://127.0.0.1:{peer}");
        NatsPort = FreePort();
        Start(nats, $"-a 127.0.0.1 -p {NatsPort}");
        await WaitPortAsync(EtcdPort);
        await WaitPortAsync(NatsPort);
    }

    /// <summary>Starts `tandem worker` and returns it once it printed where it listens.</summary>
    public async Task<Process> StartWorkerAsync(string id, string role, params string[] extra)
    {
        var args = $"\"{TandemDll}\" worker --model \"{ModelPath}\" --role {role} --instance-id {id} --threads 1 --discovery {Etcd} --nats {Nats} --num-kv-blocks 256 {string.Join(' ', extra)}";
        var process = Start("dotnet", args);
        var line = await ReadLineMatchingAsync(process, "tandem-worker ", TimeSpan.FromSeconds(60));
        Assert.Contains($"id={id}", line, StringComparison.Ordinal);
        PumpOutput(process);
        return process;
    }

    /// <summary>Starts `tandem frontend` on a free port and returns its base URL once /health is 200.</summary>
    public async Task<(Process Process, Uri Url)> StartFrontendAsync(params string[] extra)
    {
        return await StartHealthyAsync(port =>
        {
            var process = Start("dotnet", $"\"{TandemDll}\" frontend --model \"{ModelPath}\" --http-port {port} --discovery {Etcd} {string.Join(' ', extra)}");
            PumpOutput(process);
            return process;
        }, TimeSpan.FromSeconds(60));
    }

    /// <summary>
    /// Starts a process that serves HTTP on a port of its own (<paramref name="start"/> gets a free port) and waits for
    /// its /health. A port from <see cref="FreePort"/> can be taken by someone else before the process binds it (tests
    /// run in parallel and outgoing connections take ephemeral ports too); a process that exits before it is healthy is
    /// started again on another port, up to three times.
    /// </summary>
    public static async Task<(Process Process, Uri Url)> StartHealthyAsync(Func<int, Process> start, TimeSpan timeout)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort();
            var process = start(port);
            var url = new Uri($"http://127.0.0.1:{port}/");
            if (await WaitHealthyAsync(url, timeout, process) || attempt == 3)
            {
                Assert.False(process.HasExited, $"{url}: the process exited with {(process.HasExited ? process.ExitCode : 0)} before it was healthy, three times");
                return (process, url);
            }
        }
    }

    /// <summary>Waits for /health to answer 200; false at once when <paramref name="process"/> exits first, a failed assertion after <paramref name="timeout"/>.</summary>
    public static async Task<bool> WaitHealthyAsync(Uri url, TimeSpan timeout, Process? process = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            if (process is { HasExited: true })
            {
                return false;
            }
            try
            {
                if ((await http.GetAsync(new Uri(url, "health"))).IsSuccessStatusCode)
                {
                    return true;
                }
            }
            catch (HttpRequestException)
            {
                // not up yet
            }
            await Task.Delay(200);
        }
        Assert.Fail($"{url} did not become healthy within {timeout}");
        return false;
    }

    public Process Start(string file, string args)
    {
        var info = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        _processes.Add(process);
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Logs.Add(e.Data); } };
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Everything the processes wrote to stderr (for failure messages).</summary>
    public System.Collections.Concurrent.ConcurrentBag<string> Logs { get; } = [];

    private static async Task<string> ReadLineMatchingAsync(Process process, string prefix, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (await process.StandardOutput.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }
        }
        throw new InvalidOperationException($"the process exited before printing '{prefix}'");
    }

    private static async Task WaitPortAsync(int port)
    {
        for (var i = 0; i < 150; i++)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }
        Assert.Fail($"nothing listens on port {port}");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _processes)
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                    await p.WaitForExitAsync();
                }
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
            p.Dispose();
        }
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
            // a process may still hold a file; the temp folder is cleaned by the OS
        }
    }

    [GeneratedRegex("\"text\":\"((?:[^\"\\\\]|\\\\.)*)\"")]
    public static partial Regex TextField();
}
