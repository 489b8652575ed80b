using System.Text.Json;

namespace Tandem.Frontend.Tests;

/// <summary>Chat completions render the model's template; stories260K has none, so the default ChatML template applies.</summary>
public class ChatTests(Stories260KServer fixture) : IClassFixture<Stories260KServer>
{
    [Fact]
    public async Task Chat_Greedy_EqualsCompletionOfTheRenderedTemplate()
    {
        var (status, chat) = await HttpJson.PostAsync(fixture.Http, "v1/chat/completions",
            $$"""{"model":"{{fixture.Model}}","messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"Tell me a story"}],"max_tokens":30,"temperature":0}""");
        Assert.Equal(200, status);
        const string rendered = "<|im_start|>system\\nBe kind.<|im_end|>\\n<|im_start|>user\\nTell me a story<|im_end|>\\n<|im_start|>assistant\\n";
        var (_, completion) = await HttpJson.PostAsync(fixture.Http, "v1/completions", $$"""{"model":"{{fixture.Model}}","prompt":"{{rendered}}","max_tokens":30,"temperature":0}""");
        Assert.Equal(completion.GetProperty("choices")[0].GetProperty("text").GetString(), chat.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(completion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal("chat.completion", chat.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", chat.GetProperty("id").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_Stream_FirstChunkCarriesRoleAndLastTheFinishReason()
    {
        var (status, events, done) = await HttpJson.StreamAsync(fixture.Http, "v1/chat/completions",
            $$"""{"model":"{{fixture.Model}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":12,"temperature":0,"stream":true,"logprobs":true}""");
        Assert.Equal(200, status);
        Assert.True(done);
        Assert.Equal("assistant", events[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.All(events, e => Assert.Equal("chat.completion.chunk", e.GetProperty("object").GetString()));
        Assert.Equal("length", events[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var logprobs = events.Skip(1).SelectMany(e => e.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("content").EnumerateArray()).ToList();
        Assert.Equal(12, logprobs.Count);
        Assert.All(logprobs, l => Assert.True(l.GetProperty("logprob").GetDouble() <= 0));
    }

    [Fact]
    public async Task Chat_ContinueFinalMessage_RendersWithoutGenerationPrompt()
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "v1/chat/completions",
            $$"""{"model":"{{fixture.Model}}","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Once upon"}],"add_generation_prompt":false,"max_tokens":5,"temperature":0}""");
        Assert.Equal(200, status);
        Assert.Equal(JsonValueKind.String, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").ValueKind);
    }
}
