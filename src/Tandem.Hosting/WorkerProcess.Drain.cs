using Microsoft.Extensions.Logging;
using Tandem.Abstractions;
using Tandem.Worker;

namespace Tandem.Hosting;

/// <summary>`tandem worker`: graceful drain and the KV event publisher.</summary>
public sealed partial class WorkerProcess
{
    private static readonly TimeSpan DrainPollInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>KV events and load reports of this worker on NATS (null without --nats, and for prefill workers).</summary>
    public KvEventPublisher? KvEvents { get; private set; }

    /// <summary>
    /// Graceful stop: leave discovery first (delete the keys and revoke the lease, so the frontend stops routing here),
    /// then refuse new requests and leave the prefill queue, and let the requests in flight (request-plane calls,
    /// sequences in the engine, remote prefills taken from the queue) finish up to <paramref name="deadline"/>.
    /// Returns true when everything finished in time. The worker is still running afterwards: dispose it to stop.
    /// </summary>
    public async Task<bool> DrainAsync(TimeSpan deadline, CancellationToken cancellationToken = default)
    {
        var until = DateTime.UtcNow + deadline;
        if (_registration is { } registration)
        {
            // Bounded by the registration's request timeout; a failure is logged and the lease then expires by itself.
            await registration.DeregisterAsync(cancellationToken).ConfigureAwait(false);
        }
        Worker.StopAccepting();
        _rpc?.Service.BeginDrain();
        // Leave the metadata server and let the OpenAI HTTP requests in flight (--http-port) finish.
        await DrainHttpAsync(until - DateTime.UtcNow is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero).ConfigureAwait(false);
        while (true)
        {
            var stats = await Worker.GetStatsAsync(cancellationToken).ConfigureAwait(false);
            var rpcInFlight = _rpc?.Service.InFlight ?? 0;
            if (rpcInFlight == 0 && stats.Running == 0 && stats.Waiting == 0 && Worker.ServingRemotePrefills == 0)
            {
                DrainLog.Drained(_logger, Instance.InstanceId);
                return true;
            }
            if (DateTime.UtcNow >= until)
            {
                DrainLog.DeadlineMissed(_logger, Instance.InstanceId, deadline.TotalSeconds, rpcInFlight, stats.Running, stats.Waiting, Worker.ServingRemotePrefills);
                return false;
            }
            await Task.Delay(DrainPollInterval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Workers that generate publish their KV events and load on NATS, for the frontend's `kv` router.</summary>
    private async Task StartKvEventsAsync(WorkerProcessOptions options, IEventBus bus, ILoggerFactory loggerFactory)
    {
        if (options.Nats is null || options.Role == WorkerRole.Prefill)
        {
            return;
        }
        var publisher = new KvEventPublisher(Worker.Engine, Worker.Instance.InstanceId, bus, options.Namespace)
        {
            Logger = loggerFactory.CreateLogger("Tandem.KvEvents"),
        };
        _owned.Add(publisher);
        await publisher.StartAsync().ConfigureAwait(false);
        KvEvents = publisher;
    }

    private static partial class DrainLog
    {
        [LoggerMessage(10, LogLevel.Information, "worker {Id} drained: every request in flight finished")]
        public static partial void Drained(ILogger logger, string id);

        [LoggerMessage(11, LogLevel.Warning, "worker {Id} drain deadline of {Seconds} s missed: {Rpc} request-plane calls, {Running} running and {Waiting} waiting sequences, {Prefills} remote prefills still in flight")]
        public static partial void DeadlineMissed(ILogger logger, string id, double seconds, int rpc, int running, int waiting, int prefills);
    }
}
