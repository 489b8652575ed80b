using System.Text.Json;
using Tandem.Engine.Serving;
using Tandem.Hosting;
using Tandem.Worker;

namespace Tandem.Frontend.Tests;

/// <summary>
/// TensorRT-LLM's <c>disaggregated_params</c> on Tandem's OpenAI API, driven by hand as an orchestrator would: a
/// context-only request answers the first token and a KV handle; a generation-only request with that handle continues
/// to the same greedy text as an ordinary request.
/// </summary>
public class TrtllmProtocolTests
{
    private const string Prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day";

    private static Task<EmbeddedServer> StartAsync() =>
        Stories260KServer.StartAsync(new EmbeddedServerOptions
        {
            ModelPath = TestModels.Stories260K,
            Threads = 1,
            Mode = ServeMode.Disaggregated,
            Serving = new ServingOptions { NumKvBlocks = 256 },
            Disaggregation = new DisaggregationOptions { MaxLocalPrefillLength = 100_000 },
            Frontend = new FrontendOptions { Port = 0 },
        });

    [Theory]
    [InlineData("v1/completions")]
    [InlineData("v1/chat/completions")]
    public async Task ContextOnlyThenGenerationOnly_EqualsAnOrdinaryRequest(string path)
    {
        await using var server = await StartAsync();
        using var http = Stories260KServer.Client(server);
        var chat = path.Contains("chat", StringComparison.Ordinal);
        var input = chat ? $$"""{"messages":[{"role":"user","content":"{{Prompt}}"}]""" : $$"""{"prompt":"{{Prompt}}" """;
        var (status, ordinary) = await HttpJson.PostAsync(http, path, input + ""","model":"stories260K","max_tokens":24,"temperature":0}""");
        Assert.Equal(200, status);

        var (ctxStatus, ctx) = await HttpJson.PostAsync(http, path, input + ""","model":"stories260K","max_tokens":1,"temperature":0,"stream":false,"disaggregated_params":{"request_type":"context_only","disagg_request_id":77}}""");
        Assert.Equal(200, ctxStatus);
        var choice = ctx.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var p = choice.GetProperty("disaggregated_params");
        Assert.Equal("context_only", p.GetProperty("request_type").GetString());
        Assert.Equal(77, p.GetProperty("disagg_request_id").GetInt64());
        Assert.Equal(1, p.GetProperty("first_gen_tokens").GetArrayLength());
        Assert.True(p.GetProperty("ctx_request_id").GetInt64() != 0);
        Assert.False(string.IsNullOrEmpty(p.GetProperty("encoded_opaque_state").GetString()));
        var promptIds = ctx.GetProperty("prompt_token_ids");
        Assert.Equal(ctx.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), promptIds.GetArrayLength());

        var handoff = JsonSerializer.Serialize(new
        {
            request_type = "generation_only",
            first_gen_tokens = p.GetProperty("first_gen_tokens"),
            ctx_request_id = p.GetProperty("ctx_request_id").GetInt64(),
            encoded_opaque_state = p.GetProperty("encoded_opaque_state").GetString(),
            disagg_request_id = 77,
        });
        var genInput = chat ? input : $$"""{"prompt":{{promptIds.GetRawText()}}""";
        var (genStatus, gen) = await HttpJson.PostAsync(http, path, genInput + $$""","model":"stories260K","max_tokens":24,"temperature":0,"disaggregated_params":{{handoff}}}""");
        Assert.Equal(200, genStatus);
        Assert.Equal(Text(ordinary, chat), Text(gen, chat));
        Assert.StartsWith(Text(ctx, chat), Text(gen, chat), StringComparison.Ordinal);
        var decode = server.Workers.Single(w => w.Instance.Role == Abstractions.WorkerRole.Decode);
        Assert.True((await decode.GetStatsAsync()).RemotePrefills >= 1);
    }

    private static string Text(JsonElement body, bool chat)
    {
        var choice = body.GetProperty("choices")[0];
        return chat ? choice.GetProperty("message").GetProperty("content").GetString()! : choice.GetProperty("text").GetString()!;
    }

    [Theory]
    [InlineData("""{"request_type":"prefill"}""", "must be context_only, generation_only or context_and_generation")]
    [InlineData("""{"request_type":"generation_only"}""", "needs 'disaggregated_params.encoded_opaque_state'")]
    [InlineData("""{"request_type":"generation_only","encoded_opaque_state":"bm90IG91cnM="}""", "not a Tandem context worker's KV handle")]
    [InlineData("\"context_only\"", "'disaggregated_params' must be an object")]
    public async Task InvalidDisaggregatedParams_Get400(string value, string message)
    {
        await using var server = await StartAsync();
        using var http = Stories260KServer.Client(server);
        var (status, body) = await HttpJson.PostAsync(http, "v1/completions", $$"""{"model":"stories260K","prompt":"Hi","max_tokens":4,"disaggregated_params":{{value}}}""");
        Assert.Equal(400, status);
        Assert.Contains(message, body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GenerationOnly_WithAnExpiredLease_StillAnswersByPrefillingItself()
    {
        await using var server = await StartAsync();
        using var http = Stories260KServer.Client(server);
        var (_, ordinary) = await HttpJson.PostAsync(http, "v1/completions", $$"""{"model":"stories260K","prompt":"{{Prompt}}","max_tokens":16,"temperature":0}""");
        var (_, ctx) = await HttpJson.PostAsync(http, "v1/completions", $$"""{"model":"stories260K","prompt":"{{Prompt}}","max_tokens":1,"temperature":0,"disaggregated_params":{"request_type":"context_only"}""" + "}");
        var p = ctx.GetProperty("choices")[0].GetProperty("disaggregated_params");
        var json = $$"""{"model":"stories260K","prompt":"{{Prompt}}","max_tokens":16,"temperature":0,"disaggregated_params":{"request_type":"generation_only","encoded_opaque_state":"{{p.GetProperty("encoded_opaque_state").GetString()}}"}""" + "}";
        var (first, a) = await HttpJson.PostAsync(http, "v1/completions", json);
        // The first generation releases the lease: the same handle again cannot be pulled (once the release landed) and
        // the worker prefills locally; either way the text is the same.
        var (second, b) = await HttpJson.PostAsync(http, "v1/completions", json);
        Assert.Equal(200, first);
        Assert.Equal(200, second);
        var expected = ordinary.GetProperty("choices")[0].GetProperty("text").GetString();
        Assert.Equal(expected, a.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(expected, b.GetProperty("choices")[0].GetProperty("text").GetString());
    }
}
