using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Tandem.Abstractions;
using Tandem.Frontend.OpenAi;
using Tandem.Frontend.Processing;

namespace Tandem.Frontend.Endpoints;

/// <summary>
/// The context-only answer of TensorRT-LLM's protocol: one choice with the first token's text, finish reason
/// <c>length</c> while the request goes on (or its real one when it ended), <c>disaggregated_params</c> with
/// <c>request_type</c>, <c>first_gen_tokens</c>, <c>ctx_request_id</c>, <c>encoded_opaque_state</c> and
/// <c>disagg_request_id</c>, and the prompt's <c>prompt_token_ids</c> at the top level. Always one JSON answer (the
/// orchestrator asks with <c>stream: false</c>).
/// </summary>
internal sealed partial class CompletionsHandler
{
    private async Task<int> ServeContextOnlyAsync(HttpContext http, PreparedRequest request)
    {
        using var deadline = new CancellationTokenSource(options.RequestTimeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, deadline.Token);
        PrefillHandle handle;
        WorkerInstance worker;
        try
        {
            (handle, worker) = await dispatcher.ContextOnlyAsync(request, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            return ClientClosedRequest;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw OpenAiException.Timeout($"the context-only request did not finish within the limit of {options.RequestTimeout.TotalSeconds:0.###} s");
        }
        var output = new OutputProcessor(request.Model.Tokenizer, request.Parsed.Stop);
        var first = handle.FirstToken;
        var text = output.Push(first.TokenId);
        string finish;
        if (output.Stopped || first.Finish == FinishReason.Stop)
        {
            text += output.Stopped ? "" : output.Finish();
            finish = "stop";
        }
        else
        {
            if (handle.Kv is null)
            {
                text += output.Finish();
            }
            finish = "length";
        }
        var handoff = finish == "length" ? handle.Kv : null;
        if (handle.Kv is { } kept && handoff is null)
        {
            await dispatcher.ReleaseAsync(kept, worker.Endpoints.GetValueOrDefault("rpc"), worker.Model).ConfigureAwait(false);
        }
        var chat = request.Parsed.Endpoint == ApiEndpoint.ChatCompletions;
        var choice = new JsonObject { ["index"] = 0 };
        if (chat)
        {
            choice["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text };
        }
        else
        {
            choice["text"] = text;
        }
        choice["finish_reason"] = finish;
        if (handoff is not null)
        {
            choice["disaggregated_params"] = new JsonObject
            {
                ["request_type"] = "context_only",
                ["first_gen_tokens"] = new JsonArray(handoff.FirstToken),
                ["ctx_request_id"] = handoff.Handle,
                ["encoded_opaque_state"] = KvHandoff.Encode(handoff, worker.Endpoints.GetValueOrDefault("rpc"), worker.Model),
                ["disagg_request_id"] = request.Parsed.Disaggregated?.DisaggRequestId,
            };
        }
        var prompt = request.Generate.PromptTokens;
        var answer = new JsonObject
        {
            ["id"] = (chat ? "chatcmpl-" : "cmpl-") + request.Generate.RequestId,
            ["object"] = chat ? "chat.completion" : "text_completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = request.Model.Name,
            ["choices"] = new JsonArray(choice),
            ["usage"] = new JsonObject
            {
                ["prompt_tokens"] = prompt.Count,
                ["completion_tokens"] = 1,
                ["total_tokens"] = prompt.Count + 1,
                ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = first.CachedPromptTokens },
            },
            ["prompt_token_ids"] = new JsonArray([.. prompt.Select(t => (JsonNode)t)]),
        };
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(answer.ToJsonString(), http.RequestAborted).ConfigureAwait(false);
        return 200;
    }
}
