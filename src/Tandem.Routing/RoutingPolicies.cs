using Tandem.Abstractions;
using Tandem.Routing.Kv;

namespace Tandem.Routing;

/// <summary>The routing policies selectable by name (`--router`).</summary>
public static class RoutingPolicies
{
    public const string RoundRobin = "round-robin";
    public const string Random = "random";
    public const string LeastLoaded = "least-loaded";
    public const string Kv = "kv";

    public static IReadOnlyList<string> Names { get; } = [RoundRobin, Random, LeastLoaded, Kv];

    /// <summary>
    /// Creates the policy called <paramref name="name"/>; <paramref name="seed"/> makes `random` (and `kv` tie-breaking,
    /// unless its options carry a seed) reproducible. `kv` ranks workers with <paramref name="indexer"/> (a new, empty one
    /// when null: then only the load term counts until events arrive).
    /// </summary>
    public static IRoutingPolicy Create(string name, int? seed = null, KvIndexer? indexer = null, KvRoutingOptions? kv = null) => name switch
    {
        RoundRobin => new RoundRobinPolicy(),
        Random => new RandomPolicy(seed),
        LeastLoaded => new LeastLoadedPolicy(),
        Kv => new KvRoutingPolicy(indexer ?? new KvIndexer(), (kv ?? new KvRoutingOptions()) is var o && o.Seed is null && seed is not null ? o with { Seed = seed } : o),
        _ => throw new ArgumentException($"unknown router '{name}'; choose one of: {string.Join(", ", Names)}", nameof(name)),
    };
}

/// <summary>
/// Each request to the next worker in turn (the order of the candidate list). Prefill workers (prefill-first) and
/// decode-capable workers keep separate turns: with one shared turn, a request's prefill pick would advance the decode
/// turn too, and with one prefill and two decode workers every request would land on the same decode worker.
/// </summary>
internal sealed class RoundRobinPolicy : IRoutingPolicy
{
    private long _nextDecode = -1;
    private long _nextPrefill = -1;

    public string Name => RoutingPolicies.RoundRobin;

    public RoutingCandidate Choose(RoutingRequest request, IReadOnlyList<RoutingCandidate> candidates)
    {
        var n = candidates[0].Instance.Role == WorkerRole.Prefill ? Interlocked.Increment(ref _nextPrefill) : Interlocked.Increment(ref _nextDecode);
        return candidates[(int)(n % candidates.Count)];
    }
}

/// <summary>A uniformly random worker.</summary>
internal sealed class RandomPolicy(int? seed) : IRoutingPolicy
{
    private readonly Random _random = seed is { } s ? new Random(s) : new Random();
    private readonly Lock _gate = new();

    public string Name => RoutingPolicies.Random;

    public RoutingCandidate Choose(RoutingRequest request, IReadOnlyList<RoutingCandidate> candidates)
    {
        lock (_gate)
        {
            return candidates[_random.Next(candidates.Count)];
        }
    }
}

/// <summary>The worker with the fewest active requests; ties go to the lower KV usage, then to the first listed.</summary>
internal sealed class LeastLoadedPolicy : IRoutingPolicy
{
    public string Name => RoutingPolicies.LeastLoaded;

    public RoutingCandidate Choose(RoutingRequest request, IReadOnlyList<RoutingCandidate> candidates)
    {
        var best = candidates[0];
        for (var i = 1; i < candidates.Count; i++)
        {
            var c = candidates[i];
            if (c.ActiveRequests < best.ActiveRequests || (c.ActiveRequests == best.ActiveRequests && c.KvUsage < best.KvUsage))
            {
                best = c;
            }
        }
        return best;
    }
}
