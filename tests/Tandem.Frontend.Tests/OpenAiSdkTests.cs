using System.ClientModel;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using Tandem.Abstractions;
using Tandem.Engine.Inference;
using Tandem.Engine.Models;

namespace Tandem.Frontend.Tests;

/// <summary>End to end over real HTTP with the official OpenAI .NET SDK as the client.</summary>
public class OpenAiSdkTests(Stories260KServer fixture) : IClassFixture<Stories260KServer>
{
    private OpenAIClient Sdk() => new(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Url, "v1") });

    /// <summary>What `tandem generate --temperature 0` prints for the prompt (the engine's single-sequence generator).</summary>
    private static string GenerateReference(string prompt, int maxTokens)
    {
        using var loaded = LoadedModel.Load(TestModels.Stories260K, threads: 1);
        var ids = loaded.Tokenizer.Encode(prompt, loaded.Tokenizer.AddBos || prompt.Length == 0);
        var text = new System.Text.StringBuilder();
        new TextGenerator(loaded.Transformer, loaded.Tokenizer).Generate(ids, new GenerationOptions { MaxTokens = maxTokens, Sampling = SamplingParams.Greedy, StopTokenIds = loaded.Artifact.GenerationDefaults.EosTokenIds }, (_, piece) => text.Append(piece), CancellationToken.None);
        return text.ToString();
    }

    [Fact]
    public async Task Models_ListsTheServedModel()
    {
        var models = await Sdk().GetOpenAIModelClient().GetModelsAsync(TestContext.Current.CancellationToken);
        var model = Assert.Single(models.Value);
        Assert.Equal("stories260K", model.Id);
        Assert.Equal("tandem", model.OwnedBy);
    }

    [Fact]
    public async Task Completions_Greedy_EqualsTandemGenerate()
    {
        const string prompt = "Once upon a time";
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "v1/completions", $$"""{"model":"{{fixture.Model}}","prompt":"{{prompt}}","max_tokens":120,"temperature":0}""");
        Assert.Equal(200, status);
        var text = body.GetProperty("choices")[0].GetProperty("text").GetString();
        Assert.Equal(GenerateReference(prompt, 120), text);
        Assert.StartsWith(", there was a little girl named Lily.", text, StringComparison.Ordinal);
        var usage = body.GetProperty("usage");
        Assert.Equal(5, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Completions_StreamEqualsNonStream_WithUsageChunkAndDone()
    {
        var json = $$"""{"model":"{{fixture.Model}}","prompt":"Lily and Ben","max_tokens":40,"temperature":0}""";
        var (_, whole) = await HttpJson.PostAsync(fixture.Http, "v1/completions", json);
        var (status, events, done) = await HttpJson.StreamAsync(fixture.Http, "v1/completions", json[..^1] + ""","stream":true,"stream_options":{"include_usage":true}}""");
        Assert.Equal(200, status);
        Assert.True(done);
        var text = string.Concat(events.Where(e => e.GetProperty("choices").GetArrayLength() > 0).Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("text").GetString(), text);
        var last = events[^1];
        Assert.Equal(0, last.GetProperty("choices").GetArrayLength());
        Assert.Equal(whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), last.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal("length", events[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.All(events.SkipLast(1), e => Assert.Equal(JsonValueKind.Null, e.GetProperty("usage").ValueKind));
    }

    [Fact]
    public async Task Completions_TokenIdPrompt_EqualsTextPrompt()
    {
        using var loaded = LoadedModel.Load(TestModels.Stories260K, threads: 1);
        var ids = loaded.Tokenizer.Encode("Once upon a time", addBos: true);
        var (_, byText) = await HttpJson.PostAsync(fixture.Http, "v1/completions", $$"""{"model":"{{fixture.Model}}","prompt":"Once upon a time","max_tokens":20,"temperature":0}""");
        var (status, byIds) = await HttpJson.PostAsync(fixture.Http, "v1/completions", $$"""{"model":"{{fixture.Model}}","prompt":[{{string.Join(',', ids)}}],"max_tokens":20,"temperature":0}""");
        Assert.Equal(200, status);
        Assert.Equal(byText.GetProperty("choices")[0].GetProperty("text").GetString(), byIds.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Completions_StopString_EndsBeforeItInBothModes()
    {
        var reference = GenerateReference("Once upon a time", 60);
        var stopAt = reference.IndexOf("Lily", StringComparison.Ordinal);
        Assert.True(stopAt > 0);
        var json = $$"""{"model":"{{fixture.Model}}","prompt":"Once upon a time","max_tokens":60,"temperature":0,"stop":["Lily","zzz"]}""";
        var (_, whole) = await HttpJson.PostAsync(fixture.Http, "v1/completions", json);
        Assert.Equal(reference[..stopAt], whole.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("stop", whole.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        // "irl na" spans the tokens " g|ir|l| named": nothing of it may leak while streaming.
        var (_, events, _) = await HttpJson.StreamAsync(fixture.Http, "v1/completions", json.Replace("\"Lily\"", "\"irl na\"", StringComparison.Ordinal)[..^1] + ""","stream":true}""");
        var streamed = string.Concat(events.Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(reference[..reference.IndexOf("irl na", StringComparison.Ordinal)], streamed);
        Assert.Equal("stop", events[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Completions_SameSeed_SameSample_DifferentSeed_Differs()
    {
        async Task<string> Sample(int seed)
        {
            var (_, body) = await HttpJson.PostAsync(fixture.Http, "v1/completions", $$"""{"model":"{{fixture.Model}}","prompt":"Once","max_tokens":40,"temperature":1.0,"seed":{{seed}}}""");
            return body.GetProperty("choices")[0].GetProperty("text").GetString()!;
        }
        var a = await Sample(11);
        Assert.Equal(a, await Sample(11));
        var others = new[] { await Sample(12), await Sample(13), await Sample(14) };
        Assert.Contains(others, o => o != a);
    }

    [Fact]
    public async Task Completions_Logprobs_AreFiniteAndMatchTokenCount()
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "v1/completions", $$"""{"model":"{{fixture.Model}}","prompt":"Once","max_tokens":8,"temperature":0,"logprobs":0}""");
        Assert.Equal(200, status);
        var lp = body.GetProperty("choices")[0].GetProperty("logprobs");
        var values = lp.GetProperty("token_logprobs").EnumerateArray().Select(v => v.GetDouble()).ToList();
        Assert.Equal(8, values.Count);
        Assert.All(values, v => Assert.True(v <= 0 && double.IsFinite(v)));
        Assert.Equal(body.GetProperty("choices")[0].GetProperty("text").GetString(), string.Concat(lp.GetProperty("tokens").EnumerateArray().Select(t => t.GetString())));
    }

    [Fact]
    public async Task Chat_NonStreaming_ReturnsAssistantMessageWithUsage()
    {
        var chat = Sdk().GetChatClient(fixture.Model);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0 };
        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Tell me a story")], options, TestContext.Current.CancellationToken);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(16, completion.Usage.OutputTokenCount);
        Assert.True(completion.Usage.InputTokenCount > 3);
        Assert.False(string.IsNullOrEmpty(completion.Content[0].Text));
    }

    [Fact]
    public async Task Chat_Streaming_EqualsNonStreaming()
    {
        var chat = Sdk().GetChatClient(fixture.Model);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 24, Temperature = 0, Seed = 3 };
        ChatMessage[] messages = [new SystemChatMessage("You tell stories."), new UserChatMessage("A story about a cat")];
        ChatCompletion whole = await chat.CompleteChatAsync(messages, options, TestContext.Current.CancellationToken);
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, options, TestContext.Current.CancellationToken))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            finish ??= update.FinishReason;
        }
        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
    }

    [Fact]
    public async Task Chat_StopSequence_ViaSdk()
    {
        var chat = Sdk().GetChatClient(fixture.Model);
        var plain = (await chat.CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { MaxOutputTokenCount = 40, Temperature = 0 }, TestContext.Current.CancellationToken)).Value.Content[0].Text;
        var cut = plain.IndexOf(' ', 3);
        Assert.True(cut > 0, plain);
        var stop = plain.Substring(cut, 2);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 40, Temperature = 0 };
        options.StopSequences.Add(stop);
        ChatCompletion stopped = await chat.CompleteChatAsync([new UserChatMessage("Hi")], options, TestContext.Current.CancellationToken);
        Assert.Equal(plain[..plain.IndexOf(stop, StringComparison.Ordinal)], stopped.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
    }

    [Fact]
    public async Task Sdk_UnknownModel_ThrowsWith404()
    {
        var chat = Sdk().GetChatClient("no-such-model");
        var e = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("x")], cancellationToken: TestContext.Current.CancellationToken));
        Assert.Equal(404, e.Status);
        Assert.Contains("no-such-model", e.Message, StringComparison.Ordinal);
    }
}
