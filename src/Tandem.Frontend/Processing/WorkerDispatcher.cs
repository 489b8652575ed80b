using Tandem.Abstractions;
using Tandem.Frontend.OpenAi;
using Tandem.Routing;

namespace Tandem.Frontend.Processing;

/// <summary>
/// Sends a prepared request to a worker chosen by the router and waits for its first token. A worker that is
/// overloaded or unreachable before producing anything is skipped and the next one tried (up to
/// <see cref="FrontendOptions.MaxRouteAttempts"/>); once a token has been produced the request stays where it is.
/// </summary>
internal sealed class WorkerDispatcher(WorkerRouter router, IRequestPlane plane, FrontendOptions options)
{
    public async Task<ActiveGeneration> StartAsync(PreparedRequest request, CancellationToken cancellationToken)
    {
        var routing = new RoutingRequest(request.Generate.RequestId, request.Model.Name, request.Generate.PromptTokens, request.Generate.CacheSalt);
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
                tokens = plane.GetClient(routed.Instance).GenerateAsync(request.Generate, cancellationToken).GetAsyncEnumerator(cancellationToken);
                var hasFirst = await tokens.MoveNextAsync().ConfigureAwait(false);
                started = true;
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
