namespace Tandem.Abstractions;

/// <summary>
/// The request plane to one worker: the frontend (and, later, other workers) call it the same way whether the worker
/// lives in this process or behind the network.
/// </summary>
public interface IWorkerClient
{
    WorkerInstance Instance { get; }

    /// <summary>
    /// Generates for an already tokenized request. Errors surface as <see cref="InvalidRequestException"/> (the request
    /// cannot be served), <see cref="EngineOverloadedException"/> (try later or elsewhere) or
    /// <see cref="EngineUnavailableException"/> (the worker is gone), either from this call or from the first
    /// <c>MoveNextAsync</c>. Cancelling the token, or abandoning the enumeration, ends the request on the worker.
    /// </summary>
    IAsyncEnumerable<TokenOutput> GenerateAsync(GenerateRequest request, CancellationToken cancellationToken = default);

    /// <summary>The worker's current load.</summary>
    ValueTask<EngineStats> GetStatsAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Context only (prefill-first disaggregation): computes the prompt's KV, samples the first token and keeps the KV
    /// pinned under a lease for a decode worker to pull (released by <see cref="ReleaseKvAsync"/> or after a timeout).
    /// </summary>
    Task<PrefillHandle> PrefillAsync(GenerateRequest request, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"worker {Instance.InstanceId} does not serve context-only prefills");

    /// <summary>Releases a lease returned by <see cref="PrefillAsync"/> early; unknown handles are ignored.</summary>
    ValueTask ReleaseKvAsync(long handle, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
}

/// <summary>The result of a context-only prefill: the first token and where its KV waits (null when the request already ended).</summary>
public sealed record PrefillHandle(TokenOutput FirstToken, RemoteKv? Kv);

/// <summary>Finds the client for a discovered worker (in-process registry now; gRPC channels for remote workers).</summary>
public interface IRequestPlane
{
    /// <summary>The client for <paramref name="instance"/>; throws <see cref="EngineUnavailableException"/> when it cannot be reached.</summary>
    IWorkerClient GetClient(WorkerInstance instance);
}
