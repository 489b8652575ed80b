using System.Text.Json;
using Tandem.Frontend.OpenAi;

namespace Tandem.Frontend.Tests;

public class RequestParserTests
{
    private static ParsedRequest Parse(string json, ApiEndpoint endpoint = ApiEndpoint.Completions) =>
        RequestParser.Parse(JsonDocument.Parse(json).RootElement, endpoint);

    private static OpenAiException Fails(string json, ApiEndpoint endpoint = ApiEndpoint.Completions) =>
        Assert.Throws<OpenAiException>(() => Parse(json, endpoint));

    [Fact]
    public void Parse_AllSamplingFields_AreRead()
    {
        var r = Parse("""{"model":"m","prompt":"hi","max_tokens":7,"min_tokens":2,"temperature":0.5,"top_p":0.9,"top_k":40,"min_p":0.05,"presence_penalty":0.1,"frequency_penalty":-0.2,"repetition_penalty":1.1,"seed":-1,"stop":["a","b"],"stop_token_ids":[3],"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true},"user":"u","logprobs":0,"echo":true}""");
        Assert.Equal(("m", "hi", 7, 2), (r.Model, r.PromptText, r.MaxTokens, r.MinTokens));
        Assert.Equal((0.5f, 0.9f, 40, 0.05f), (r.Temperature, r.TopP, r.TopK, r.MinP));
        Assert.Equal((0.1f, -0.2f, 1.1f), (r.PresencePenalty, r.FrequencyPenalty, r.RepetitionPenalty));
        Assert.Equal(ulong.MaxValue, r.Seed);
        Assert.Equal(["a", "b"], r.Stop);
        Assert.Equal([3], r.StopTokenIds);
        Assert.True(r.IgnoreEos && r.Stream && r.IncludeUsage && r.Logprobs && r.Echo);
        Assert.Equal("u", r.User);
    }

    [Fact]
    public void Parse_MaxCompletionTokens_WinsOverMaxTokens()
    {
        Assert.Equal(5, Parse("""{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":9,"max_completion_tokens":5}""", ApiEndpoint.ChatCompletions).MaxTokens);
    }

    [Fact]
    public void Parse_NullFields_CountAsAbsent()
    {
        var r = Parse("""{"model":"m","prompt":"x","temperature":null,"stop":null,"max_tokens":null}""");
        Assert.Null(r.Temperature);
        Assert.Empty(r.Stop);
        Assert.Null(r.MaxTokens);
    }

    [Theory]
    [InlineData("""{"prompt":"x"}""", "model")]
    [InlineData("""{"model":"m"}""", "prompt")]
    [InlineData("""{"model":"m","prompt":"x","max_tokens":0}""", "max_tokens")]
    [InlineData("""{"model":"m","prompt":"x","max_tokens":1.5}""", "max_tokens")]
    [InlineData("""{"model":"m","prompt":"x","max_tokens":"10"}""", "max_tokens")]
    [InlineData("""{"model":"m","prompt":"x","temperature":2.5}""", "temperature")]
    [InlineData("""{"model":"m","prompt":"x","temperature":-1}""", "temperature")]
    [InlineData("""{"model":"m","prompt":"x","top_p":0}""", "top_p")]
    [InlineData("""{"model":"m","prompt":"x","n":2}""", "n")]
    [InlineData("""{"model":"m","prompt":"x","stop":[1]}""", "stop")]
    [InlineData("""{"model":"m","prompt":"x","stop":""}""", "stop")]
    [InlineData("""{"model":"m","prompt":"x","stream_options":{"include_usage":true}}""", "stream_options")]
    [InlineData("""{"model":"m","prompt":"x","logprobs":3}""", "logprobs")]
    [InlineData("""{"model":"m","prompt":"x","logit_bias":{"1":5}}""", "logit_bias")]
    [InlineData("""{"model":"m","prompt":[1,"a"]}""", "prompt")]
    [InlineData("""{"model":"m","prompt":["a","b"]}""", "prompt")]
    [InlineData("""{"model":"m","prompt":"x","min_tokens":5,"max_tokens":2}""", "min_tokens")]
    [InlineData("""{"model":"m","prompt":{"a":1}}""", "prompt")]
    public void Parse_InvalidCompletionField_NamesTheField(string json, string param)
    {
        var e = Fails(json);
        Assert.Equal(400, e.Status);
        Assert.Equal(param, e.Param);
    }

    [Theory]
    [InlineData("""{"model":"m"}""")]
    [InlineData("""{"model":"m","messages":[]}""")]
    [InlineData("""{"model":"m","messages":"hi"}""")]
    [InlineData("""{"model":"m","messages":[{"role":"robot","content":"x"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":5}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2}""")]
    public void Parse_InvalidChat_IsBadRequest(string json)
    {
        Assert.Equal(400, Fails(json, ApiEndpoint.ChatCompletions).Status);
    }

    [Fact]
    public void Parse_ChatContentParts_AreJoinedAndDeveloperIsSystem()
    {
        var r = Parse("""{"model":"m","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"chat_template_kwargs":{"enable_thinking":false}}""", ApiEndpoint.ChatCompletions);
        Assert.Equal([new ParsedMessage("system", "be brief"), new ParsedMessage("user", "ab")], r.Messages.Select(m => new ParsedMessage(m.Role, m.Content)));
        Assert.Equal(false, r.TemplateVariables["enable_thinking"]);
        Assert.True(r.AddGenerationPrompt);
    }

    [Fact]
    public void Parse_TokenPrompt_KeptForVocabularyCheck()
    {
        var r = Parse("""{"model":"m","prompt":[1,2,3]}""");
        Assert.Equal(3, r.PromptTokenArray!.Value.GetArrayLength());
        Assert.Equal(2, Parse("""{"model":"m","prompt":[[4,5]]}""").PromptTokenArray!.Value.GetArrayLength());
    }
}
