using Tandem.Abstractions;
using Tandem.Frontend.OpenAi;

namespace Tandem.Frontend.Processing;

/// <summary>TensorRT-LLM's context-only and generation-only requests (an external orchestrator drives the two legs).</summary>
internal sealed partial class WorkerDispatcher
{
    private static readonly TimeSpan ReleaseTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Context only: a worker computes the prompt's KV, samples the first token and keeps the KV under a lease for a
    /// generation worker to pull. Workers that are busy or gone before answering are skipped.
    /// </summary>
    public async Task<(PrefillHandle Handle, WorkerInstance Worker)> ContextOnlyAsync(PreparedRequest request, CancellationToken cancellationToken)
    {
        var routing = new RoutingRequest(request.Generate.RequestId, request.Model.Name, request.Generate.PromptTokens, request.Generate.CacheSalt);
        // The orchestrator asks for one token; the KV is kept only when the request may go on, so ask the worker for two
        // (the generation leg carries the real limit).
        var generate = request.Generate.MaxTokens < 2 && request.Generate.PromptTokens.Count + 2 <= request.Model.ContextLength
            ? request.Generate with { MaxTokens = 2 }
            : request.Generate;
        var tried = new List<string>();
        Exception? last = null;
        for (var attempt = 0; attempt < options.MaxRouteAttempts; attempt++)
        {
            using var routed = router.RoutePrefill(routing, tried) ?? router.Route(routing, tried);
            if (routed is null)
            {
                break;
            }
            try
            {
                var handle = await plane.GetClient(routed.Instance).PrefillAsync(generate, cancellationToken).ConfigureAwait(false);
                return (handle, routed.Instance);
            }
            catch (Exception e) when (e is EngineOverloadedException or EngineUnavailableException or NotSupportedException)
            {
                last = e;
                tried.Add(routed.Instance.InstanceId);
            }
            catch (InvalidRequestException e)
            {
                throw OpenAiException.BadRequest(e.Message, e.ParamName);
            }
        }
        throw last switch
        {
            EngineOverloadedException => OpenAiException.Overloaded($"the server is busy ({last.Message}); retry later"),
            null => OpenAiException.Unavailable($"no worker serves model '{request.Model.Name}' right now"),
            _ => OpenAiException.Unavailable($"no worker could take the context-only request ({last.Message})"),
        };
    }

    /// <summary>
    /// Generation only: a decode-capable worker pulls the KV named in the opaque state from the context worker and
    /// continues from the first token (a failed pull means it prefills itself). The context worker's lease is released
    /// once the generation has started or failed.
    /// </summary>
    private async Task<ActiveGeneration> GenerationOnlyAsync(PreparedRequest request, RoutingRequest routing, DisaggregatedParams handoff, CancellationToken cancellationToken)
    {
        var (kv, rpc, model) = KvHandoff.Decode(handoff);
        try
        {
            return await DecodeAsync(request, routing, kv, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // Off the request's path: the first token does not wait for the context worker's answer.
            _ = Task.Run(() => ReleaseAsync(kv, rpc, model ?? request.Model.Name), CancellationToken.None);
        }
    }

    /// <summary>Gives the context worker's lease back; on any failure the lease expires by itself.</summary>
    public async Task ReleaseAsync(RemoteKv kv, string? rpc, string model)
    {
        ArgumentNullException.ThrowIfNull(kv);
        var owner = new WorkerInstance
        {
            InstanceId = kv.InstanceId,
            Role = WorkerRole.Prefill,
            Model = model,
            Endpoints = rpc is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["rpc"] = rpc },
        };
        try
        {
            using var timeout = new CancellationTokenSource(ReleaseTimeout);
            await plane.GetClient(owner).ReleaseKvAsync(kv.Handle, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is EngineUnavailableException or OperationCanceledException or KvTransferException or InvalidOperationException)
        {
            // The lease times out on the context worker.
        }
    }
}
