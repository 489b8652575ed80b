using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Tests.Tokenizers;

public sealed class TokenizerExportTests
{
    private static readonly string[] SpecialTexts = ["<s>the</s> end", "<|im_start|>user\nhi<|im_end|>", "</s>"];

    private static void AssertSameBehaviour(Tokenizer expected, Tokenizer actual)
    {
        Assert.Equal(expected.Kind, actual.Kind);
        Assert.Equal(expected.VocabSize, actual.VocabSize);
        Assert.Equal((expected.BosId, expected.EosId, expected.AddBos), (actual.BosId, actual.EosId, actual.AddBos));
        Assert.Equal(expected.StopTokenIds.Order(), actual.StopTokenIds.Order());
        foreach (var text in TokenizerTestData.OrdinaryTexts.Concat(TokenizerTestData.RandomStrings(seed: 7, count: 60)))
        {
            var ids = expected.Encode(text, addBos: true);
            Assert.Equal(ids, actual.Encode(text, addBos: true));
            Assert.Equal(expected.Decode(ids), actual.Decode(ids));
        }
        foreach (var text in SpecialTexts)
        {
            Assert.Equal(expected.Encode(text, addBos: false, parseSpecial: true), actual.Encode(text, addBos: false, parseSpecial: true));
        }
    }

    private static Tokenizer ViaGguf(Tokenizer tokenizer) =>
        TokenizerFactory.FromGgufMetadata(TokenizerExport.ToGgufMetadata(tokenizer), "exported.gguf");

    private static Tokenizer ViaHuggingFace(Tokenizer tokenizer)
    {
        using var dir = TestModels.CreateTempDirectory();
        TokenizerExport.WriteHuggingFaceFiles(tokenizer, dir.Path);
        return TokenizerFactory.FromHuggingFace(dir.Path);
    }

    [Fact]
    public void ToGgufMetadata_BuiltinVocabulary_WritesGgufTypedKeys()
    {
        var metadata = TokenizerExport.ToGgufMetadata(BuiltinVocabulary.Create());

        Assert.Equal("llama", metadata["tokenizer.ggml.model"]);
        Assert.Equal(512, ((string[])metadata["tokenizer.ggml.tokens"]).Length);
        Assert.Equal(512, ((float[])metadata["tokenizer.ggml.scores"]).Length);
        Assert.Equal([2, 3, 3, 6], ((int[])metadata["tokenizer.ggml.token_type"])[..4]);
        Assert.Equal(1u, metadata["tokenizer.ggml.bos_token_id"]);
        Assert.Equal(2u, metadata["tokenizer.ggml.eos_token_id"]);
        Assert.Equal(0u, metadata["tokenizer.ggml.unknown_token_id"]);
        Assert.Equal(true, metadata["tokenizer.ggml.add_bos_token"]);
        Assert.Equal(true, metadata["tokenizer.ggml.add_space_prefix"]);
        Assert.False(metadata.ContainsKey("tokenizer.ggml.merges"));
    }

    [Fact]
    public void ToGgufMetadata_ByteLevel_WritesMergesAndPre()
    {
        var metadata = TokenizerExport.ToGgufMetadata(
            TokenizerFactory.FromGgufMetadata(TokenizerTestData.TinyGpt2Metadata("llama-bpe"), "tiny.gguf"));

        Assert.Equal("gpt2", metadata["tokenizer.ggml.model"]);
        Assert.Equal("llama-bpe", metadata["tokenizer.ggml.pre"]);
        Assert.Equal(TokenizerTestData.TinyMerges, (string[])metadata["tokenizer.ggml.merges"]);
        Assert.Equal((uint)TokenizerTestData.EndOfText, metadata["tokenizer.ggml.eos_token_id"]);
    }

    [Fact]
    public void ExportRoundTrip_BuiltinVocabulary_EncodesIdentically()
    {
        var tokenizer = BuiltinVocabulary.Create();

        AssertSameBehaviour(tokenizer, ViaGguf(tokenizer));
        AssertSameBehaviour(tokenizer, ViaHuggingFace(tokenizer));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama-bpe")]
    [InlineData("qwen2")]
    public void ExportRoundTrip_TinyByteLevel_EncodesIdentically(string pre)
    {
        var tokenizer = TokenizerFactory.FromGgufMetadata(TokenizerTestData.TinyGpt2Metadata(pre), "tiny.gguf");

        AssertSameBehaviour(tokenizer, ViaGguf(tokenizer));
        AssertSameBehaviour(tokenizer, ViaHuggingFace(tokenizer));
    }

    [Fact]
    public void ExportRoundTrip_Stories260K_EncodesIdentically()
    {
        var tokenizer = TokenizerTestData.Stories260K();

        AssertSameBehaviour(tokenizer, ViaGguf(tokenizer));
        AssertSameBehaviour(tokenizer, ViaHuggingFace(tokenizer));
    }

    [Fact]
    public void ExportRoundTrip_HuggingFaceLoadedThenGguf_EncodesIdentically()
    {
        var original = ViaHuggingFace(BuiltinVocabulary.Create());

        AssertSameBehaviour(original, ViaGguf(original));
        AssertSameBehaviour(original, ViaHuggingFace(original));
    }

    [Fact]
    public void ToHuggingFaceConfigJson_Builtin_NamesSpecialTokens()
    {
        var json = TokenizerExport.ToHuggingFaceConfigJson(BuiltinVocabulary.Create());

        Assert.Contains("\"bos_token\": \"<s>\"", json, StringComparison.Ordinal);
        Assert.Contains("\"eos_token\": \"</s>\"", json, StringComparison.Ordinal);
        Assert.Contains("\"add_bos_token\": true", json, StringComparison.Ordinal);
    }
}
