using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Tandem.Nats.Tests;

/// <summary>
/// A real <c>nats-server</c> on a loopback port. Tests that need one call <see cref="RequireInstalled"/>: they are
/// skipped when the binary is missing, except with CI=true where that is a failure.
/// </summary>
public sealed class NatsServerProcess : IAsyncDisposable
{
    private readonly string[] _arguments;
    private Process? _process;

    private NatsServerProcess(int port, string[] arguments)
    {
        Port = port;
        _arguments = arguments;
    }

    public int Port { get; }

    public string Url => $"nats://127.0.0.1:{Port}";

    public static string? Executable { get; } = Find();

    public static void RequireInstalled()
    {
        if (Executable is not null)
        {
            return;
        }
        const string Message = "nats-server is not installed (apt-get install -y nats-server, or run ./test.sh)";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail(Message);
        }
        Assert.Skip(Message);
    }

    /// <summary>Starts a server (on a free port unless given) with extra arguments such as <c>--user u --pass p</c>.</summary>
    public static async Task<NatsServerProcess> StartAsync(int? port = null, params string[] arguments)
    {
        RequireInstalled();
        var server = new NatsServerProcess(port ?? FreePort(), arguments);
        await server.StartAsync();
        return server;
    }

    public async Task StartAsync()
    {
        var info = new ProcessStartInfo(Executable!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in (string[])["-a", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), .. _arguments])
        {
            info.ArgumentList.Add(a);
        }
        _process = Process.Start(info) ?? throw new InvalidOperationException("nats-server did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !_process.HasExited)
            {
                await Task.Delay(20);
            }
        }
    }

    /// <summary>Kills the server (like a crash) and waits for it to exit.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? Find()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(Path.PathSeparator).Concat(["/usr/sbin", "/usr/local/bin", "/usr/bin"]))
        {
            var candidate = Path.Combine(dir, "nats-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }
}

/// <summary>One plain server shared by a test collection.</summary>
public class NatsServerFixture : IAsyncLifetime
{
    private NatsServerProcess? _server;

    protected virtual string[] Arguments => [];

    public string Url
    {
        get
        {
            NatsServerProcess.RequireInstalled();
            return _server!.Url;
        }
    }

    public int Port => _server!.Port;

    public async ValueTask InitializeAsync()
    {
        if (NatsServerProcess.Executable is not null)
        {
            _server = await NatsServerProcess.StartAsync(null, Arguments);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        GC.SuppressFinalize(this);
    }
}

public sealed class UserPasswordNatsServerFixture : NatsServerFixture
{
    protected override string[] Arguments => ["--user", "u", "--pass", "p"];
}

public sealed class TokenNatsServerFixture : NatsServerFixture
{
    protected override string[] Arguments => ["--auth", "s3cret"];
}

/// <summary>A server whose user 'limited' may only use subjects under 'allowed.' (and inboxes).</summary>
public sealed class PermissionsNatsServerFixture : NatsServerFixture
{
    private static readonly string ConfigPath = WriteConfig();

    protected override string[] Arguments => ["-c", ConfigPath];

    private static string WriteConfig()
    {
        var path = Path.Combine(Path.GetTempPath(), $"tandem-nats-permissions-{Environment.ProcessId}.conf");
        File.WriteAllText(path, """
            authorization {
              users = [
                { user: "limited", password: "p", permissions: { publish: ["allowed.>", "_INBOX.>"], subscribe: ["allowed.>", "_INBOX.>"] } }
              ]
            }
            """);
        return path;
    }
}

[CollectionDefinition("nats-server")]
public sealed class NatsServerGroup : ICollectionFixture<NatsServerFixture>;
