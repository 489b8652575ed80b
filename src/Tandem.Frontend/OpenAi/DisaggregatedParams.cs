using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tandem.Abstractions;

namespace Tandem.Frontend.OpenAi;

/// <summary>TensorRT-LLM's <c>disaggregated_params.request_type</c>.</summary>
internal enum DisaggregatedRequestType
{
    /// <summary>Prefill only: answer the first token and keep the KV for a generation server.</summary>
    ContextOnly,

    /// <summary>Continue a context-only request: pull its KV and generate from its first token.</summary>
    GenerationOnly,

    /// <summary>An ordinary request.</summary>
    ContextAndGeneration,
}

/// <summary>
/// TensorRT-LLM's <c>disaggregated_params</c> request field (<c>request_type</c>, <c>first_gen_tokens</c>,
/// <c>ctx_request_id</c>, <c>encoded_opaque_state</c>, <c>disagg_request_id</c>; other fields are accepted and ignored).
/// For Tandem the opaque state names the context worker's KV lease (see <see cref="KvHandoff"/>).
/// </summary>
internal sealed record DisaggregatedParams(DisaggregatedRequestType Type)
{
    public IReadOnlyList<int> FirstGenTokens { get; init; } = [];
    public long? CtxRequestId { get; init; }
    public string? EncodedOpaqueState { get; init; }
    public long? DisaggRequestId { get; init; }

    public static DisaggregatedParams? Read(JsonFields request)
    {
        if (request.Get("disaggregated_params") is not { } value)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw JsonFields.TypeError("disaggregated_params", "an object", value);
        }
        var f = new JsonFields(value);
        var type = f.String("request_type") switch
        {
            "context_only" => DisaggregatedRequestType.ContextOnly,
            "generation_only" => DisaggregatedRequestType.GenerationOnly,
            "context_and_generation" or null => DisaggregatedRequestType.ContextAndGeneration,
            var other => throw OpenAiException.BadRequest(
                $"'disaggregated_params.request_type' must be context_only, generation_only or context_and_generation, got '{other}'", "disaggregated_params"),
        };
        var result = new DisaggregatedParams(type)
        {
            FirstGenTokens = f.Ints("first_gen_tokens", int.MaxValue),
            CtxRequestId = f.Integer("ctx_request_id", long.MinValue, long.MaxValue),
            EncodedOpaqueState = f.String("encoded_opaque_state"),
            DisaggRequestId = f.Integer("disagg_request_id", long.MinValue, long.MaxValue),
        };
        if (type == DisaggregatedRequestType.GenerationOnly && result.EncodedOpaqueState is null)
        {
            throw OpenAiException.BadRequest("a generation_only request needs 'disaggregated_params.encoded_opaque_state' from its context_only answer", "disaggregated_params");
        }
        return result;
    }
}

/// <summary>
/// The opaque state a Tandem context worker hands out: base64 of
/// <c>{"v":1,"kv":address,"lease":handle,"blocks":n,"first":token,"worker":instance_id,"rpc":request_plane_url,"model":name}</c>.
/// A generation worker pulls the blocks from <c>kv</c> and releases the lease through <c>rpc</c>.
/// </summary>
internal static class KvHandoff
{
    public static string Encode(RemoteKv kv, string? rpc, string model)
    {
        ArgumentNullException.ThrowIfNull(kv);
        var json = new JsonObject
        {
            ["v"] = 1,
            ["kv"] = kv.Address,
            ["lease"] = kv.Handle,
            ["blocks"] = kv.Blocks,
            ["first"] = kv.FirstToken,
            ["worker"] = kv.InstanceId,
            ["rpc"] = rpc,
            ["model"] = model,
        };
        return Convert.ToBase64String(Encoding.UTF8.GetBytes(json.ToJsonString()));
    }

    /// <summary>The lease and the context worker's request-plane address; a 400 when the state is not one of ours.</summary>
    public static (RemoteKv Kv, string? Rpc, string? Model) Decode(DisaggregatedParams p)
    {
        ArgumentNullException.ThrowIfNull(p);
        try
        {
            var node = JsonNode.Parse(Convert.FromBase64String(p.EncodedOpaqueState ?? ""));
            if (node is JsonObject o && o["v"]?.GetValue<int>() == 1)
            {
                var first = p.FirstGenTokens.Count > 0 ? p.FirstGenTokens[0] : o["first"]!.GetValue<int>();
                var kv = new RemoteKv(o["kv"]!.GetValue<string>(), o["lease"]!.GetValue<long>(), o["blocks"]!.GetValue<int>(), first, float.NaN, o["worker"]!.GetValue<string>());
                return (kv, o["rpc"]?.GetValue<string>(), o["model"]?.GetValue<string>());
            }
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or NullReferenceException)
        {
            // Answered below.
        }
        throw OpenAiException.BadRequest("'disaggregated_params.encoded_opaque_state' is not a Tandem context worker's KV handle", "disaggregated_params");
    }
}
