using System.Collections.Concurrent;
using Tandem.Abstractions;

namespace Tandem.Routing;

/// <summary>
/// Picks the worker for each request: the decode-capable workers of the request's model in the current discovery
/// snapshot, ranked by the policy with the router's own prediction of each worker's load (it knows what it sent before
/// any load report could say so): requests in flight, their KV blocks (blocks shared by several requests in flight
/// counted once, as the worker's prefix cache shares them) and the blocks still waiting to be prefilled. Dispose the
/// returned <see cref="RoutedWorker"/> when the request ends and call <see cref="RoutedWorker.PrefillCompleted"/> when
/// its first token arrives.
/// </summary>
public sealed class WorkerRouter(IDiscovery discovery, IRoutingPolicy policy)
{
    private readonly ConcurrentDictionary<string, RoutedLoad> _load = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _kvUsage = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _waiting = new(StringComparer.Ordinal);

    public IRoutingPolicy Policy { get; } = policy;

    /// <summary>Requests in flight that this router sent to <paramref name="instanceId"/>.</summary>
    public int ActiveRequests(string instanceId) => LoadOf(instanceId).Requests;

    /// <summary>KV blocks of the requests in flight that this router sent to <paramref name="instanceId"/> (prompt blocks; shared blocks once).</summary>
    public long ActiveBlocks(string instanceId) => LoadOf(instanceId).Blocks;

    /// <summary>Prompt blocks sent to <paramref name="instanceId"/> that were not cached there and are not prefilled yet.</summary>
    public long PrefillBlocks(string instanceId) => LoadOf(instanceId).PendingPrefill;

    private (int Requests, long Blocks, long PendingPrefill) LoadOf(string instanceId) =>
        _load.TryGetValue(instanceId, out var load) ? load.Read() : default;

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
                var load = LoadOf(w.InstanceId);
                candidates.Add(new RoutingCandidate(w, load.Requests, _kvUsage.GetValueOrDefault(w.InstanceId))
                {
                    ActiveBlocks = load.Blocks,
                    PrefillBlocks = load.PendingPrefill,
                    Waiting = _waiting.GetValueOrDefault(w.InstanceId),
                });
            }
        }
        if (candidates.Count == 0)
        {
            return null;
        }
        var chosen = Policy.Choose(request, candidates);
        var blockSize = chosen.Instance.KvBlockSize > 0 ? chosen.Instance.KvBlockSize : Kv.KvRoutingPolicy.DefaultBlockSize;
        var blocks = (request.PromptTokens.Count + blockSize - 1) / blockSize;
        var share = RequestShare.Create(blocks, chosen.BlockHashes, chosen.CachedBlocks);
        var routed = _load.GetOrAdd(chosen.Instance.InstanceId, _ => new RoutedLoad());
        routed.Add(share);
        return new RoutedWorker(chosen.Instance, routed, share);
    }

    /// <summary>A worker chosen for one request; disposing it ends the request's share of the worker's load.</summary>
    public sealed class RoutedWorker : IDisposable
    {
        private RoutedLoad? _load;
        private readonly RequestShare _share;
        private int _prefilled;

        internal RoutedWorker(WorkerInstance instance, RoutedLoad load, RequestShare share)
        {
            Instance = instance;
            _load = load;
            _share = share;
        }

        public WorkerInstance Instance { get; }

        /// <summary>The request's prompt is prefilled (its first token arrived): its blocks leave the predicted prefill queue. Idempotent.</summary>
        public void PrefillCompleted()
        {
            // Read the load before claiming the flag: a concurrent Dispose then either sees the flag set (and leaves the
            // prefill blocks to this call) or claims it first (and removes them itself).
            if (Volatile.Read(ref _load) is { } load && Interlocked.Exchange(ref _prefilled, 1) == 0)
            {
                load.CompletePrefill(_share);
            }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _load, null) is { } load)
            {
                load.Remove(_share, prefillPending: Interlocked.Exchange(ref _prefilled, 1) == 0);
            }
        }
    }

    /// <summary>What one request adds to a worker's load: its block hashes (shared blocks are counted once), the blocks without a hash (the partial last block, or all of them when the policy did not hash), and its uncached blocks until prefilled.</summary>
    internal sealed record RequestShare(IReadOnlyList<ulong> Hashes, long UnhashedBlocks, long PrefillBlocks)
    {
        public static RequestShare Create(int blocks, IReadOnlyList<ulong>? hashes, int cachedBlocks)
        {
            var hashed = hashes ?? [];
            return new RequestShare(hashed, Math.Max(0, blocks - hashed.Count), Math.Max(0, blocks - cachedBlocks));
        }
    }

    /// <summary>The router's prediction of one worker's load; one lock per worker keeps the counts consistent.</summary>
    internal sealed class RoutedLoad
    {
        private readonly Lock _gate = new();
        private readonly Dictionary<ulong, int> _blockRefs = [];
        private long _unhashed;
        private long _pendingPrefill;
        private int _requests;

        /// <summary>Requests, blocks (shared ones once) and blocks still to prefill, read together under one lock.</summary>
        public (int Requests, long Blocks, long PendingPrefill) Read()
        {
            lock (_gate)
            {
                return (_requests, _blockRefs.Count + _unhashed, _pendingPrefill);
            }
        }

        public void Add(RequestShare share)
        {
            lock (_gate)
            {
                _requests++;
                _unhashed += share.UnhashedBlocks;
                _pendingPrefill += share.PrefillBlocks;
                foreach (var h in share.Hashes)
                {
                    _blockRefs[h] = _blockRefs.GetValueOrDefault(h) + 1;
                }
            }
        }

        public void CompletePrefill(RequestShare share)
        {
            lock (_gate)
            {
                _pendingPrefill -= share.PrefillBlocks;
            }
        }

        public void Remove(RequestShare share, bool prefillPending)
        {
            lock (_gate)
            {
                _requests--;
                _unhashed -= share.UnhashedBlocks;
                if (prefillPending)
                {
                    _pendingPrefill -= share.PrefillBlocks;
                }
                foreach (var h in share.Hashes)
                {
                    if (_blockRefs.TryGetValue(h, out var n))
                    {
                        if (n <= 1)
                        {
                            _blockRefs.Remove(h);
                        }
                        else
                        {
                            _blockRefs[h] = n - 1;
                        }
                    }
                }
            }
        }
    }
}
