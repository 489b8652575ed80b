using Tandem.Engine.Models;
using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Tests.Tokenizers;

public sealed class TokenizerFactoryTests
{
    private static Dictionary<string, object> SentencePieceMetadata() =>
        TokenizerExport.ToGgufMetadata(BuiltinVocabulary.Create());

    [Theory]
    [InlineData("model missing", "tokenizer.ggml.model is missing")]
    [InlineData("model bert", "unsupported tokenizer model 'bert'")]
    [InlineData("model not string", "tokenizer.ggml.model must be a string")]
    [InlineData("tokens missing", "tokenizer.ggml.tokens is missing")]
    [InlineData("tokens empty", "tokenizer.ggml.tokens is empty")]
    [InlineData("tokens wrong type", "tokenizer.ggml.tokens must be an array of strings")]
    [InlineData("scores short", "tokenizer.ggml.scores has 3 entries but tokenizer.ggml.tokens has 512")]
    [InlineData("scores wrong type", "tokenizer.ggml.scores must be an array of float32")]
    [InlineData("types long", "tokenizer.ggml.token_type has 513 entries")]
    [InlineData("type value", "tokenizer.ggml.token_type[5] = 9 is not a valid token type")]
    [InlineData("bos out of range", "tokenizer.ggml.bos_token_id = 512 is outside the vocabulary")]
    [InlineData("eos wrong type", "tokenizer.ggml.eos_token_id must be an integer token id")]
    [InlineData("add_bos wrong type", "tokenizer.ggml.add_bos_token must be a bool")]
    [InlineData("space prefix wrong type", "tokenizer.ggml.add_space_prefix must be a bool")]
    public void FromGgufMetadata_MalformedSentencePiece_ThrowsModelFormatException(string mutation, string problem)
    {
        var metadata = SentencePieceMetadata();
        switch (mutation)
        {
            case "model missing": metadata.Remove("tokenizer.ggml.model"); break;
            case "model bert": metadata["tokenizer.ggml.model"] = "bert"; break;
            case "model not string": metadata["tokenizer.ggml.model"] = 7u; break;
            case "tokens missing": metadata.Remove("tokenizer.ggml.tokens"); break;
            case "tokens empty": metadata["tokenizer.ggml.tokens"] = Array.Empty<string>(); break;
            case "tokens wrong type": metadata["tokenizer.ggml.tokens"] = new[] { 1, 2 }; break;
            case "scores short": metadata["tokenizer.ggml.scores"] = new float[3]; break;
            case "scores wrong type": metadata["tokenizer.ggml.scores"] = "0.5"; break;
            case "types long": metadata["tokenizer.ggml.token_type"] = new int[513]; break;
            case "type value": ((int[])metadata["tokenizer.ggml.token_type"])[5] = 9; break;
            case "bos out of range": metadata["tokenizer.ggml.bos_token_id"] = 512u; break;
            case "eos wrong type": metadata["tokenizer.ggml.eos_token_id"] = "2"; break;
            case "add_bos wrong type": metadata["tokenizer.ggml.add_bos_token"] = 1u; break;
            case "space prefix wrong type": metadata["tokenizer.ggml.add_space_prefix"] = "yes"; break;
            default: throw new ArgumentOutOfRangeException(nameof(mutation));
        }

        var e = Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGgufMetadata(metadata, "model.gguf"));

        Assert.Contains(problem, e.Problem, StringComparison.Ordinal);
        Assert.Equal("model.gguf", e.FilePath);
    }

    [Theory]
    [InlineData("merges wrong type")]
    [InlineData("merge without space")]
    [InlineData("merge null")]
    public void FromGgufMetadata_MalformedMerges_ThrowsModelFormatException(string mutation)
    {
        var metadata = TokenizerTestData.TinyGpt2Metadata();
        metadata["tokenizer.ggml.merges"] = mutation switch
        {
            "merges wrong type" => new float[] { 1 },
            "merge without space" => new[] { "Ġ t", "ab" },
            _ => new[] { "Ġ t", null! },
        };

        var e = Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGgufMetadata(metadata, "model.gguf"));

        Assert.Contains("tokenizer.ggml.merges", e.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void FromGgufMetadata_IdsAsIntAndAllOnesUint_AreAccepted()
    {
        var metadata = SentencePieceMetadata();
        metadata["tokenizer.ggml.bos_token_id"] = 1;
        metadata["tokenizer.ggml.eos_token_id"] = 2L;
        metadata["tokenizer.ggml.padding_token_id"] = uint.MaxValue;
        metadata["tokenizer.ggml.eot_token_id"] = -1;

        var tokenizer = TokenizerFactory.FromGgufMetadata(metadata, "model.gguf");

        Assert.Equal((1, 2), (tokenizer.BosId, tokenizer.EosId));
        Assert.Equal([2], tokenizer.StopTokenIds);
    }

    [Fact]
    public void FromGgufMetadata_NoTokenTypesOrScores_InfersTypesAndDefaults()
    {
        var metadata = SentencePieceMetadata();
        metadata.Remove("tokenizer.ggml.token_type");
        metadata.Remove("tokenizer.ggml.bos_token_id");
        metadata.Remove("tokenizer.ggml.eos_token_id");
        metadata.Remove("tokenizer.ggml.add_bos_token");

        var tokenizer = TokenizerFactory.FromGgufMetadata(metadata, "model.gguf");

        Assert.Equal((1, 2, true), (tokenizer.BosId, tokenizer.EosId, tokenizer.AddBos));
        Assert.True(tokenizer.IsSpecial(1));
        Assert.Equal("😀 ok", tokenizer.Decode(tokenizer.Encode("😀 ok", addBos: true)));
    }

    [Fact]
    public void FromGgufMetadata_EotAndEomIds_AreStopTokens()
    {
        var metadata = TokenizerTestData.TinyGpt2Metadata();
        metadata["tokenizer.ggml.eot_token_id"] = (uint)TokenizerTestData.ImStart;
        metadata["tokenizer.ggml.eom_token_id"] = 65u;

        var tokenizer = TokenizerFactory.FromGgufMetadata(metadata, "model.gguf");

        Assert.Equal([TokenizerTestData.EndOfText, TokenizerTestData.ImEnd, TokenizerTestData.ImStart, 65], tokenizer.StopTokenIds);
    }
}
