namespace Tandem.Abstractions;

/// <summary>What a routing policy knows about a request.</summary>
public sealed record RoutingRequest(string RequestId, string Model, IReadOnlyList<int> PromptTokens, string? CacheSalt = null);

/// <summary>A worker a policy may choose, with the load the router sees for it.</summary>
/// <param name="Instance">The worker.</param>
/// <param name="ActiveRequests">Requests the router sent there that have not finished (its own prediction between metric updates).</param>
/// <param name="KvUsage">Last reported fraction of KV blocks in use, 0 when unknown.</param>
public sealed record RoutingCandidate(WorkerInstance Instance, int ActiveRequests, double KvUsage)
{
    /// <summary>KV blocks of the requests the router sent there that have not finished (prompt blocks; its own prediction of the worker's decode load).</summary>
    public long ActiveBlocks { get; init; }

    /// <summary>Requests waiting in the worker's queue, as last reported (0 when unknown).</summary>
    public int Waiting { get; init; }

    /// <summary>
    /// Prompt blocks the router sent there that the worker has not prefilled yet (uncached blocks of requests still
    /// waiting for their first token): the router's prediction of the worker's prefill queue.
    /// </summary>
    public long PrefillBlocks { get; init; }

    /// <summary>Set by a policy on the candidate it returns: how many leading blocks of the request the worker already caches.</summary>
    public int CachedBlocks { get; init; }

    /// <summary>
    /// Set by a policy that hashed the prompt on the candidate it returns: the request's chained block hashes for that
    /// worker's block size, so the router counts blocks shared by requests in flight once.
    /// </summary>
    public IReadOnlyList<ulong>? BlockHashes { get; init; }
}

/// <summary>Chooses a worker for a request; policies are selected by name (`--router`).</summary>
public interface IRoutingPolicy
{
    string Name { get; }

    /// <summary>Picks one of <paramref name="candidates"/> (never empty).</summary>
    RoutingCandidate Choose(RoutingRequest request, IReadOnlyList<RoutingCandidate> candidates);
}
