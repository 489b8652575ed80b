using System.Collections.Concurrent;
using Tandem.Abstractions;

namespace Tandem.Routing;

/// <summary>
/// Picks the worker for each request: the decode-capable workers of the request's model in the current discovery
/// snapshot, ranked by the policy with the router's own count of requests in flight per worker (it knows what it sent
/// before any load report could say so). Dispose the returned <see cref="RoutedWorker"/> when the request ends.
/// </summary>
public sealed class WorkerRouter(IDiscovery discovery, IRoutingPolicy policy)
{
    private readonly ConcurrentDictionary<string, StrongBox> _active = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _kvUsage = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _waiting = new(StringComparer.Ordinal);

    public IRoutingPolicy Policy { get; } = policy;

    /// <summary>Requests in flight that this router sent to <paramref name="instanceId"/>.</summary>
    public int ActiveRequests(string instanceId) => _active.TryGetValue(instanceId, out var box) ? Volatile.Read(ref box.Value) : 0;

    /// <summary>KV blocks of the requests in flight that this router sent to <paramref name="instanceId"/> (prompt blocks).</summary>
    public long ActiveBlocks(string instanceId) => _active.TryGetValue(instanceId, out var box) ? Interlocked.Read(ref box.Blocks) : 0;

    /// <summary>Records a worker's last reported KV usage (0..1) for policies that weigh it.</summary>
    public void ReportKvUsage(string instanceId, double usage) => _kvUsage[instanceId] = usage;

    /// <summary>Records a worker's load report (KV usage and queue depth).</summary>
    public void ReportLoad(string instanceId, WorkerLoad load)
    {
        ArgumentNullException.ThrowIfNull(load);
        _kvUsage[instanceId] = load.KvUsage;
        _waiting[instanceId] = load.Waiting;
    }

    /// <summary>Forgets what was reported for a worker that left.</summary>
    public void ForgetWorker(string instanceId)
    {
        _kvUsage.TryRemove(instanceId, out _);
        _waiting.TryRemove(instanceId, out _);
    }

    /// <summary>
    /// Chooses a worker for <paramref name="request"/>, skipping <paramref name="exclude"/> (workers that already
    /// failed this request). Null when no worker serves the model.
    /// </summary>
    public RoutedWorker? Route(RoutingRequest request, IReadOnlyCollection<string>? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        return RouteAmong(discovery.Current.DecodeWorkers(request.Model), request, exclude);
    }

    /// <summary>Chooses a prefill worker for a context-only prefill (prefill-first); null when none serves the model.</summary>
    public RoutedWorker? RoutePrefill(RoutingRequest request, IReadOnlyCollection<string>? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        return RouteAmong([.. discovery.Current.Instances.Where(i => i.Role == WorkerRole.Prefill && i.Model == request.Model)], request, exclude);
    }

    private RoutedWorker? RouteAmong(IReadOnlyList<WorkerInstance> workers, RoutingRequest request, IReadOnlyCollection<string>? exclude)
    {
        var candidates = new List<RoutingCandidate>(workers.Count);
        foreach (var w in workers)
        {
            if (exclude is null || !exclude.Contains(w.InstanceId))
            {
                candidates.Add(new RoutingCandidate(w, ActiveRequests(w.InstanceId), _kvUsage.GetValueOrDefault(w.InstanceId))
                {
                    ActiveBlocks = ActiveBlocks(w.InstanceId),
                    Waiting = _waiting.GetValueOrDefault(w.InstanceId),
                });
            }
        }
        if (candidates.Count == 0)
        {
            return null;
        }
        var chosen = Policy.Choose(request, candidates);
        var box = _active.GetOrAdd(chosen.Instance.InstanceId, _ => new StrongBox());
        var blockSize = chosen.Instance.KvBlockSize > 0 ? chosen.Instance.KvBlockSize : Kv.KvRoutingPolicy.DefaultBlockSize;
        var blocks = (request.PromptTokens.Count + blockSize - 1) / blockSize;
        Interlocked.Increment(ref box.Value);
        Interlocked.Add(ref box.Blocks, blocks);
        return new RoutedWorker(chosen.Instance, box, blocks);
    }

    /// <summary>A worker chosen for one request; disposing it ends the request's share of the worker's load.</summary>
    public sealed class RoutedWorker : IDisposable
    {
        private StrongBox? _box;
        private readonly long _blocks;

        internal RoutedWorker(WorkerInstance instance, StrongBox box, long blocks)
        {
            Instance = instance;
            _box = box;
            _blocks = blocks;
        }

        public WorkerInstance Instance { get; }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _box, null) is { } box)
            {
                Interlocked.Decrement(ref box.Value);
                Interlocked.Add(ref box.Blocks, -_blocks);
            }
        }
    }

    internal sealed class StrongBox
    {
        public int Value;
        public long Blocks;
    }
}
