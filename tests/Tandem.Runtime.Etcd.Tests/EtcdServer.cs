using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Tandem.Runtime.Etcd.Tests;

/// <summary>
/// A real single-member etcd on free loopback ports with a temporary data directory; killed and deleted on dispose.
/// Can be killed and started again on the same ports, with or without its data.
/// </summary>
internal sealed class EtcdServer : IAsyncDisposable
{
    private readonly string _binary;
    private readonly string _root;
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _process;

    private EtcdServer(string binary)
    {
        _binary = binary;
        _root = Path.Combine(Path.GetTempPath(), "tandem-etcd-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_root);
        ClientPort = FreePort();
        PeerPort = FreePort();
    }

    public int ClientPort { get; }

    public int PeerPort { get; }

    public string ClientUrl => $"http://127.0.0.1:{ClientPort}";

    private string DataDir => Path.Combine(_root, "data");

    /// <summary>The etcd binary on PATH (or $ETCD_BINARY); null when absent.</summary>
    public static string? FindBinary()
    {
        var configured = Environment.GetEnvironmentVariable("ETCD_BINARY");
        if (!string.IsNullOrEmpty(configured))
        {
            return File.Exists(configured) ? configured : null;
        }
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "etcd"))
            .FirstOrDefault(File.Exists);
    }

    /// <summary>Skips the calling test when etcd is not installed, or fails it when running in CI (CI=true).</summary>
    public static string RequireBinary()
    {
        if (FindBinary() is { } binary)
        {
            return binary;
        }
        const string message = "the etcd binary is not installed (Debian package etcd-server; test.sh installs it)";
        if (Environment.GetEnvironmentVariable("CI") == "true")
        {
            Assert.Fail(message);
        }
        Assert.Skip(message);
        return "";
    }

    public static async Task<EtcdServer> StartAsync(string binary)
    {
        var server = new EtcdServer(binary);
        try
        {
            await server.StartAgainAsync().ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts the process (again) on the same ports and waits until it reports healthy.</summary>
    public async Task StartAgainAsync(bool wipeData = false)
    {
        if (_process is { HasExited: false })
        {
            throw new InvalidOperationException("etcd is already running");
        }
        if (wipeData && Directory.Exists(DataDir))
        {
            Directory.Delete(DataDir, recursive: true);
        }
        var peer = $"http://127.0.0.1:{PeerPort}";
        var info = new ProcessStartInfo(_binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "--name", "default", "--data-dir", DataDir,
            "--listen-client-urls", ClientUrl, "--advertise-client-urls", ClientUrl,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default=" + peer,
            "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
        })
        {
            info.ArgumentList.Add(arg);
        }
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        await WaitHealthyAsync(TimeSpan.FromSeconds(20)).ConfigureAwait(false);
    }

    /// <summary>Kills the process (no graceful shutdown) and waits for it to exit.</summary>
    public async Task KillAsync()
    {
        if (_process is { } process)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
            await process.WaitForExitAsync().ConfigureAwait(false);
            process.Dispose();
            _process = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync().ConfigureAwait(false);
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task WaitHealthyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process is null || _process.HasExited)
            {
                throw new InvalidOperationException($"etcd exited at start:\n{string.Join('\n', _output)}");
            }
            try
            {
                var body = await http.GetStringAsync(new Uri(ClientUrl + "/health")).ConfigureAwait(false);
                if (body.Contains("\"true\"", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
        throw new TimeoutException($"etcd did not become healthy within {timeout}:\n{string.Join('\n', _output)}");
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        _output.Enqueue(line);
        while (_output.Count > 200)
        {
            _output.TryDequeue(out _);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>One etcd shared by a test collection; each test uses its own namespace so tests never see each other.</summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    private EtcdServer? _server;

    internal EtcdServer Server => _server ?? throw new InvalidOperationException("etcd is not running");

    public async ValueTask InitializeAsync()
    {
        if (EtcdServer.FindBinary() is { } binary)
        {
            _server = await EtcdServer.StartAsync(binary);
        }
    }

    /// <summary>The running server, or skip (fail in CI) when etcd is not installed.</summary>
    internal EtcdServer Require()
    {
        EtcdServer.RequireBinary();
        return Server;
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

[CollectionDefinition("etcd")]
public sealed class EtcdTestGroup : ICollectionFixture<EtcdFixture>;
