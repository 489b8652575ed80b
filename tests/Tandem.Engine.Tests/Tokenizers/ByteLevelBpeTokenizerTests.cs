using Tandem.Engine.Models;
using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Tests.Tokenizers;

public sealed class ByteLevelBpeTokenizerTests
{
    private static Tokenizer Tiny(string pre = "gpt2") =>
        TokenizerFactory.FromGgufMetadata(TokenizerTestData.TinyGpt2Metadata(pre), "tiny.gguf");

    [Fact]
    public void FromGgufMetadata_TinyGpt2_ReadsIdsAndDefaults()
    {
        var tokenizer = Tiny();

        Assert.Equal(TokenizerKind.ByteLevelBpe, tokenizer.Kind);
        Assert.Equal(272, tokenizer.VocabSize);
        Assert.False(tokenizer.AddBos);
        Assert.Equal(TokenizerTestData.EndOfText, tokenizer.EosId);
        Assert.Equal([TokenizerTestData.EndOfText, TokenizerTestData.ImEnd], tokenizer.StopTokenIds);
        Assert.Equal("Ġthe", tokenizer.TokenText(258));
        Assert.Equal(" the"u8.ToArray(), tokenizer.TokenBytes(258).ToArray());
        Assert.Empty(tokenizer.Warnings);
    }

    [Theory]
    [InlineData("the thing", new[] { 116, 257, 256, 104, 260 })]
    [InlineData(" the", new[] { 258 })]
    [InlineData("a the", new[] { 97, 258 })]
    [InlineData("I'm 12345 ok", new[] { 73, 264, 32, 268, 266 })]
    [InlineData("ok\n", new[] { 265, 10 })]
    [InlineData("é", new[] { 0xC3, 0xA9 })]
    public void Encode_TinyGpt2_GivesExpectedIds(string text, int[] expected)
    {
        var tokenizer = Tiny();

        Assert.Equal(expected, tokenizer.Encode(text, addBos: false));
        Assert.Equal(text, tokenizer.Decode(expected));
    }

    [Fact]
    public void Encode_Llama3Pattern_SplitsDigitsInGroupsOfThree()
    {
        var gpt2 = Tiny("gpt2");
        var llama3 = Tiny("llama-bpe");

        // GPT-2 keeps " 12345" together (merged up to "12345"); Llama 3 splits "I", "'m", " ", "123", "45", " ok".
        Assert.Equal([73, 264, 32, 268, 266], gpt2.Encode("I'm 12345 ok", addBos: false));
        Assert.Equal([73, 264, 32, 263, 267, 266], llama3.Encode("I'm 12345 ok", addBos: false));
        Assert.Equal([263, 263, 49], llama3.Encode("1231231", addBos: false));
    }

    [Fact]
    public void Encode_Qwen2Pattern_SplitsSingleDigits()
    {
        var qwen2 = Tiny("qwen2");

        Assert.Equal([49, 50, 51, 52, 53], qwen2.Encode("12345", addBos: false));
    }

    [Fact]
    public void FromGgufMetadata_UnknownPre_FallsBackToGpt2PatternWithWarning()
    {
        var tokenizer = Tiny("some-future-model");

        Assert.Equal([73, 264, 32, 268, 266], tokenizer.Encode("I'm 12345 ok", addBos: false));
        Assert.Contains(tokenizer.Warnings, w => w.Contains("some-future-model", StringComparison.Ordinal));
    }

    [Fact]
    public void Encode_ParseSpecial_RecognisesControlTokensOnlyWhenAsked()
    {
        var tokenizer = Tiny();
        const string Text = "<|im_start|>the<|im_end|>";

        var parsed = tokenizer.Encode(Text, addBos: false, parseSpecial: true);
        var plain = tokenizer.Encode(Text, addBos: false, parseSpecial: false);

        Assert.Equal([TokenizerTestData.ImStart, 116, 257, TokenizerTestData.ImEnd], parsed);
        Assert.DoesNotContain(TokenizerTestData.ImStart, plain);
        Assert.Equal(Text, tokenizer.Decode(plain));
        Assert.Equal(Text, tokenizer.Decode(parsed, skipSpecial: false));
        Assert.Equal("the", tokenizer.Decode(parsed));
    }

    [Fact]
    public void Encode_AddBosRequested_PrependsBos()
    {
        var tokenizer = Tiny();

        Assert.Equal([TokenizerTestData.EndOfText, 258], tokenizer.Encode(" the", addBos: true));
    }

    [Fact]
    public void IncrementalDecoder_EmojiByteTokens_HoldsPartialBytesAndEqualsDecode()
    {
        var tokenizer = Tiny();
        var ids = tokenizer.Encode("ok 😀!", addBos: false);
        var decoder = tokenizer.CreateIncrementalDecoder();

        var parts = ids.Select(decoder.Push).Append(decoder.Flush()).ToList();

        Assert.Equal(["ok", " ", "", "", "", "😀", "!", ""], parts);
        Assert.Equal(tokenizer.Decode(ids), string.Concat(parts));
    }

    [Fact]
    public void Encode_SurrogatePairsAcrossRegexPieces_StayWhole()
    {
        var tokenizer = Tiny("llama-bpe");
        const string Text = "a😀b𝐀c 🎉1";

        Assert.Equal(Text, tokenizer.Decode(tokenizer.Encode(Text, addBos: false)));
    }

    [Fact]
    public void Encode_HundredKilobyteSingleWord_IsNotQuadratic()
    {
        var tokenizer = Tiny();
        var text = string.Concat(Enumerable.Repeat("thing", 20_000)) + " " + string.Concat(Enumerable.Repeat("12345", 20_000));

        var ids = tokenizer.Encode(text, addBos: false);

        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.Equal(20_000, ids.Count(id => id == 268));
    }

    [Fact]
    public void TokenId_OutsideVocabulary_Throws()
    {
        var tokenizer = Tiny();

        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([100_000]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.TokenText(-1));
    }

    [Fact]
    public void FromGgufMetadata_MissingMerges_ThrowsModelFormatException()
    {
        var metadata = TokenizerTestData.TinyGpt2Metadata();
        metadata.Remove("tokenizer.ggml.merges");

        var e = Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGgufMetadata(metadata, "tiny.gguf"));
        Assert.Contains("merges", e.Problem, StringComparison.Ordinal);
        Assert.Equal("tiny.gguf", e.FilePath);
    }
}
