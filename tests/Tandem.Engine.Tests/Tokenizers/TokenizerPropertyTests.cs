using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Tests.Tokenizers;

public sealed class TokenizerPropertyTests
{
    private static void AssertRoundTrips(Tokenizer tokenizer, int seed)
    {
        foreach (var text in TokenizerTestData.RandomStrings(seed, count: 300))
        {
            var ids = tokenizer.Encode(text, addBos: true);
            Assert.Equal(text, tokenizer.Decode(ids));

            var decoder = tokenizer.CreateIncrementalDecoder();
            var parts = ids.Select(decoder.Push).Append(decoder.Flush()).ToList();
            Assert.All(parts, part => Assert.True(TokenizerTestData.HasValidSurrogates(part)));
            Assert.Equal(text, string.Concat(parts));
        }
    }

    [Fact]
    public void DecodeEncode_RandomUnicodeBuiltinSentencePiece_ReturnsInput() => AssertRoundTrips(BuiltinVocabulary.Create(), seed: 1);

    [Fact]
    public void DecodeEncode_RandomUnicodeStories260K_ReturnsInput() => AssertRoundTrips(TokenizerTestData.Stories260K(), seed: 2);

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama-bpe")]
    [InlineData("qwen2")]
    public void DecodeEncode_RandomUnicodeByteLevel_ReturnsInput(string pre) =>
        AssertRoundTrips(TokenizerFactory.FromGgufMetadata(TokenizerTestData.TinyGpt2Metadata(pre), "tiny.gguf"), seed: 3);

    [Fact]
    public void DecodeEncode_RandomUnicodeWithoutSpacePrefix_ReturnsInput()
    {
        var metadata = TokenizerExport.ToGgufMetadata(BuiltinVocabulary.Create());
        metadata["tokenizer.ggml.add_space_prefix"] = false;

        AssertRoundTrips(TokenizerFactory.FromGgufMetadata(metadata, "model.gguf"), seed: 4);
    }
}
