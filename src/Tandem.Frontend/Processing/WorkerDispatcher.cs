using Tandem.Abstractions;
using Tandem.Frontend.OpenAi;
using Tandem.Routing;

namespace Tandem.Frontend.Processing;

/// <summary>
/// Sends a prepared request to a worker chosen by the router and waits for its first token. A worker that is
/// overloaded or unreachable before producing anything is skipped and the next one tried (up to
/// <see cref="FrontendOptions.MaxRouteAttempts"/>); once a token has been produced the request stays where it is.
/// </summary>
internal sealed partial class WorkerDispatcher(WorkerRouter router, IRequestPlane plane, FrontendOptions options)
{
    public async Task<ActiveGeneration> StartAsync(PreparedRequest request, CancellationToken cancellationToken)
    {
        var routing = new RoutingRequest(request.Generate.RequestId, request.Model.Name, request.Generate.PromptTokens, request.Generate.CacheSalt);
        if (request.Parsed.Disaggregated is { Type: DisaggregatedRequestType.GenerationOnly } handoff)
        {
            return await GenerationOnlyAsync(request, routing, handoff, cancellationToken).ConfigureAwait(false);
        }
        if (options.Strategy == DisaggregationStrategy.PrefillFirst && router.RoutePrefill(routing) is { } prefill)
        {
            return await PrefillFirstAsync(request, routing, prefill, cancellationToken).ConfigureAwait(false);
        }
        return await DecodeAsync(request, routing, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Prefill-first (TensorRT-LLM's context/generation flow): a prefill worker computes the prompt and keeps its KV;
    /// a decode worker pulls it and continues. A failed prefill costs only latency: the decode worker then prefills.
    /// The prefill worker's lease is released once the decode worker has started (or failed).
    /// </summary>
    private async Task<ActiveGeneration> PrefillFirstAsync(PreparedRequest request, RoutingRequest routing, WorkerRouter.RoutedWorker prefill, CancellationToken cancellationToken)
    {
        PrefillHandle? handle = null;
        IWorkerClient? prefillClient = null;
        using (prefill)
        {
            try
            {
                prefillClient = plane.GetClient(prefill.Instance);
                handle = await prefillClient.PrefillAsync(request.Generate, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is EngineOverloadedException or EngineUnavailableException or NotSupportedException or KvTransferException)
            {
                handle = null; // the decode worker prefills itself
            }
            catch (InvalidRequestException e)
            {
                throw OpenAiException.BadRequest(e.Message, e.ParamName);
            }
        }
        if (handle is { Kv: null } done)
        {
            // The request ended with its first token (one token asked for, or a stop token): no decode leg.
            var routed = router.Route(routing) ?? throw OpenAiException.Unavailable($"no worker serves model '{request.Model.Name}' right now");
            routed.PrefillCompleted();
            return new ActiveGeneration(routed, Single(done.FirstToken).GetAsyncEnumerator(cancellationToken), null);
        }
        try
        {
            return await DecodeAsync(request, routing, handle?.Kv, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (handle?.Kv is { } kv && prefillClient is not null)
            {
                try
                {
                    await prefillClient.ReleaseKvAsync(kv.Handle, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is EngineUnavailableException or KvTransferException or NotSupportedException)
                {
                    // The prefill worker died or is unreachable after the prefill: its lease expires there by itself,
                    // and the request, decoding on another worker, goes on.
                }
            }
        }
    }

    private static async IAsyncEnumerable<TokenOutput> Single(TokenOutput token)
    {
        await Task.CompletedTask.ConfigureAwait(false);
        yield return token;
    }

    private async Task<ActiveGeneration> DecodeAsync(PreparedRequest request, RoutingRequest routing, RemoteKv? remoteKv, CancellationToken cancellationToken)
    {
        var generate = remoteKv is null ? request.Generate : request.Generate with { RemoteKv = remoteKv };
        var tried = new List<string>();
        Exception? last = null;
        for (var attempt = 0; attempt < options.MaxRouteAttempts; attempt++)
        {
            var routed = router.Route(routing, tried);
            if (routed is null)
            {
                break;
            }
            IAsyncEnumerator<TokenOutput>? tokens = null;
            var started = false;
            try
            {
                tokens = plane.GetClient(routed.Instance).GenerateAsync(generate, cancellationToken).GetAsyncEnumerator(cancellationToken);
                var hasFirst = await tokens.MoveNextAsync().ConfigureAwait(false);
                started = true;
                routed.PrefillCompleted();
                return new ActiveGeneration(routed, tokens, hasFirst ? tokens.Current : null);
            }
            catch (Exception e) when (e is EngineOverloadedException or EngineUnavailableException)
            {
                last = e;
                tried.Add(routed.Instance.InstanceId);
            }
            catch (InvalidRequestException e)
            {
                throw OpenAiException.BadRequest(e.Message, e.ParamName);
            }
            finally
            {
                if (!started)
                {
                    if (tokens is not null)
                    {
                        await tokens.DisposeAsync().ConfigureAwait(false);
                    }
                    routed.Dispose();
                }
            }
        }
        throw last switch
        {
            EngineOverloadedException => OpenAiException.Overloaded($"the server is busy ({last.Message}); retry later"),
            EngineUnavailableException => OpenAiException.Unavailable($"no worker could take the request ({last.Message})"),
            _ => OpenAiException.Unavailable($"no worker serves model '{request.Model.Name}' right now"),
        };
    }
}

/// <summary>A request running on a worker: the token stream (first token already read) and the router's hold on the worker.</summary>
internal sealed class ActiveGeneration(WorkerRouter.RoutedWorker worker, IAsyncEnumerator<TokenOutput> tokens, TokenOutput? first) : IAsyncDisposable
{
    private TokenOutput? _pending = first;

    public WorkerInstance Worker => worker.Instance;

    /// <summary>The next token, or null when the stream ended.</summary>
    public async ValueTask<TokenOutput?> NextAsync()
    {
        if (_pending is { } p)
        {
            _pending = null;
            return p;
        }
        return await tokens.MoveNextAsync().ConfigureAwait(false) ? tokens.Current : null;
    }

    /// <summary>Ends the request on the worker if it is still running (stop string, disconnect) and releases the route.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await tokens.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            worker.Dispose();
        }
    }
}
