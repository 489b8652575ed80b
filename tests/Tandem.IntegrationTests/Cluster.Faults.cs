using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Tandem.IntegrationTests;

/// <summary>Fault injection and process control for the scaling and outage tests.</summary>
public sealed partial class Cluster
{
    /// <summary>Shared-memory KV staging segments a worker process created as a transfer client (kept mapped for reuse).</summary>
    public static string[] StagingSegmentsOf(Process worker) =>
        Directory.Exists("/dev/shm") ? Directory.GetFiles("/dev/shm", $"tandem-kv-{worker.Id}-*") : [];

    /// <summary>The shared-memory file holding a worker process's KV pool (none when its pool is private memory).</summary>
    public static string[] KvPoolOf(Process worker) =>
        Directory.Exists("/dev/shm") ? Directory.GetFiles("/dev/shm", $"tandem-kvpool-{worker.Id}-*") : [];

    /// <summary>True when <paramref name="peer"/> has <paramref name="owner"/>'s KV pool mapped: it copied KV into or out of it directly.</summary>
    public static async Task<bool> MapsKvPoolOfAsync(Process peer, Process owner) =>
        KvPoolOf(owner) is [var pool] && (await File.ReadAllTextAsync($"/proc/{peer.Id}/maps")).Contains(pool, StringComparison.Ordinal);

    /// <summary>Sends SIGTERM (a graceful stop) to a process started by this cluster.</summary>
    public static void Terminate(Process process)
    {
        ArgumentNullException.ThrowIfNull(process);
        using var kill = Process.Start(new ProcessStartInfo("kill", $"-TERM {process.Id}") { UseShellExecute = false })
            ?? throw new InvalidOperationException("could not run kill");
        kill.WaitForExit(10_000);
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>Waits for a process to exit and returns its exit code (fails after the timeout).</summary>
    public static async Task<int> WaitExitAsync(Process process, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(process);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"process {process.Id} did not exit within {timeout}");
        }
        return process.ExitCode;
    }

    /// <summary>The etcd process of <see cref="StartInfrastructureAsync"/>.</summary>
    public Process EtcdProcess => Infrastructure("etcd");

    /// <summary>The nats-server process of <see cref="StartInfrastructureAsync"/>.</summary>
    public Process NatsProcess => Infrastructure("nats-server");

    /// <summary>kill -9 of etcd or nats-server (its data directory stays).</summary>
    public static async Task KillAsync(Process process)
    {
        ArgumentNullException.ThrowIfNull(process);
        process.Kill();
        await WaitExitAsync(process, TimeSpan.FromSeconds(30));
    }

    /// <summary>Starts etcd or nats-server again with the same command line (same ports, same data directory).</summary>
    public async Task<Process> RestartAsync(Process stopped)
    {
        ArgumentNullException.ThrowIfNull(stopped);
        var process = Start(stopped.StartInfo.FileName, stopped.StartInfo.Arguments);
        await WaitPortAsync(stopped.StartInfo.FileName.EndsWith("etcd", StringComparison.Ordinal) ? EtcdPort : NatsPort);
        return process;
    }

    /// <summary>Reads one value of the frontend's /metrics (a series with these labels), or null when absent.</summary>
    public static async Task<double?> MetricAsync(HttpClient http, string name, string labels = "")
    {
        ArgumentNullException.ThrowIfNull(http);
        var text = await http.GetStringAsync(new Uri("metrics", UriKind.Relative));
        var pattern = labels.Length == 0 ? $"^{Regex.Escape(name)} (\\S+)$" : $"^{Regex.Escape(name)}\\{{[^}}]*{Regex.Escape(labels)}[^}}]*\\}} (\\S+)$";
        var match = Regex.Match(text, pattern, RegexOptions.Multiline);
        return match.Success ? double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
    }

    /// <summary>
    /// Keeps reading a process's standard output into <see cref="Logs"/> (the console logger writes there): an unread
    /// pipe fills up and then blocks the process's logging, and with it the requests that log.
    /// </summary>
    private void PumpOutput(Process process) => _ = Task.Run(async () =>
    {
        try
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                Logs.Add(line);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The process is gone.
        }
    });

    private Process Infrastructure(string tool)
    {
        var matches = _processes.Where(p => Path.GetFileName(p.StartInfo.FileName) == tool).ToList();
        return matches.Count > 0 ? matches[^1] : throw new InvalidOperationException($"{tool} was not started");
    }
}
