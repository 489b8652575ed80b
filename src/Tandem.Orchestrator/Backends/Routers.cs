using Tandem.Orchestrator.Config;

namespace Tandem.Orchestrator.Backends;

/// <summary>What a router may look at when it picks a server for a request.</summary>
/// <param name="PromptTokens">The prompt's length in tokens (exact for token-id prompts, estimated for text).</param>
/// <param name="PrefixHashes">Chained hashes of the prompt's leading blocks (kv_cache_aware).</param>
public sealed record RouteHint(int PromptTokens, IReadOnlyList<ulong> PrefixHashes)
{
    public static RouteHint None { get; } = new(0, []);
}

/// <summary>Picks one of the candidate servers (never empty) for a request.</summary>
public interface IServerRouter
{
    string Name { get; }

    BackendServer Pick(IReadOnlyList<BackendServer> candidates, RouteHint hint);

    /// <summary>A server left the pool: forget what is known about it.</summary>
    void Forget(BackendServer server)
    {
    }
}

/// <summary>Routers by the name of TensorRT-LLM's <c>router.type</c>.</summary>
public static class ServerRouters
{
    public static IServerRouter Create(RouterConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Type switch
        {
            RouterType.RoundRobin => new RoundRobinRouter(),
            RouterType.LoadBalancing => new LoadBalancingRouter(config.UseTokens),
            RouterType.KvCacheAware => new KvCacheAwareRouter(),
            _ => throw new ArgumentOutOfRangeException(nameof(config)),
        };
    }
}

/// <summary>Each server in turn.</summary>
internal sealed class RoundRobinRouter : IServerRouter
{
    private uint _next;

    public string Name => "round_robin";

    public BackendServer Pick(IReadOnlyList<BackendServer> candidates, RouteHint hint) =>
        candidates[(int)((Interlocked.Increment(ref _next) - 1) % (uint)candidates.Count)];
}

/// <summary>The server with the fewest requests (or prompt tokens, with <c>use_tokens</c>) in flight; ties in turn.</summary>
internal sealed class LoadBalancingRouter(bool useTokens) : IServerRouter
{
    private uint _next;

    public string Name => "load_balancing";

    public BackendServer Pick(IReadOnlyList<BackendServer> candidates, RouteHint hint)
    {
        var start = (int)(Interlocked.Increment(ref _next) % (uint)candidates.Count);
        BackendServer? best = null;
        var bestLoad = long.MaxValue;
        for (var i = 0; i < candidates.Count; i++)
        {
            var s = candidates[(start + i) % candidates.Count];
            var load = useTokens ? s.InflightTokens : s.Inflight;
            if (load < bestLoad)
            {
                best = s;
                bestLoad = load;
            }
        }
        return best!;
    }
}

/// <summary>
/// Sends a prompt where its prefix went before, so the server's prefix cache hits: each server remembers the prefix-block
/// hashes of the prompts routed to it (bounded, oldest forgotten first); the score is matched blocks minus requests in
/// flight, so a busy server with a short match loses to an idle one. Learned from routing decisions, not from the
/// servers' KV events.
/// </summary>
internal sealed class KvCacheAwareRouter(int maxBlocksPerServer = 100_000) : IServerRouter
{
    private readonly Dictionary<BackendServer, Memory> _memory = [];
    private readonly Lock _lock = new();

    public string Name => "kv_cache_aware";

    public BackendServer Pick(IReadOnlyList<BackendServer> candidates, RouteHint hint)
    {
        lock (_lock)
        {
            BackendServer? best = null;
            var bestScore = long.MinValue;
            foreach (var s in candidates)
            {
                var matched = _memory.TryGetValue(s, out var m) ? m.Match(hint.PrefixHashes) : 0;
                var score = (long)matched * 4 - s.Inflight;
                if (score > bestScore || (score == bestScore && best is not null && s.Inflight < best.Inflight))
                {
                    best = s;
                    bestScore = score;
                }
            }
            if (!_memory.TryGetValue(best!, out var memory))
            {
                memory = new Memory(maxBlocksPerServer);
                _memory[best!] = memory;
            }
            memory.Add(hint.PrefixHashes);
            return best!;
        }
    }

    public void Forget(BackendServer server)
    {
        lock (_lock)
        {
            _memory.Remove(server);
        }
    }

    private sealed class Memory(int capacity)
    {
        private readonly HashSet<ulong> _set = [];
        private readonly Queue<ulong> _order = new();

        public int Match(IReadOnlyList<ulong> hashes)
        {
            var n = 0;
            while (n < hashes.Count && _set.Contains(hashes[n]))
            {
                n++;
            }
            return n;
        }

        public void Add(IReadOnlyList<ulong> hashes)
        {
            foreach (var h in hashes)
            {
                if (_set.Add(h))
                {
                    _order.Enqueue(h);
                }
            }
            while (_order.Count > capacity)
            {
                _set.Remove(_order.Dequeue());
            }
        }
    }
}
