using System.Text;
using System.Text.Json;
using Tandem.Engine.Models;
using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Tests.Tokenizers;

public sealed class HuggingFaceTokenizerTests
{
    private const string Llama3Regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The tiny byte-level vocabulary as a Llama 3 style tokenizer.json (merges half as strings, half as pairs).</summary>
    private static string ByteLevelJson()
    {
        var tokens = TokenizerTestData.TinyTokens();
        var vocab = string.Join(",\n", tokens.Take(TokenizerTestData.EndOfText).Select((t, i) => $"{JsonSerializer.Serialize(t)}: {i}"));
        var merges = string.Join(",\n", TokenizerTestData.TinyMerges.Select((m, i) =>
            i % 2 == 0 ? JsonSerializer.Serialize(m) : JsonSerializer.Serialize(m.Split(' '))));
        return $$"""
        {
          "version": "1.0",
          "added_tokens": [
            {"id": 269, "content": "<|endoftext|>", "special": true},
            {"id": 270, "content": "<|im_start|>", "special": true},
            {"id": 271, "content": "<|im_end|>", "special": true}
          ],
          "normalizer": null,
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": {{JsonSerializer.Serialize(Llama3Regex)}}}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
          ]},
          "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
          "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
          "model": {"type": "BPE", "dropout": null, "unk_token": null, "byte_fallback": false, "ignore_merges": true,
            "vocab": { {{vocab}} },
            "merges": [ {{merges}} ]
          }
        }
        """;
    }

    private const string SentencePieceConfig = """
        {"add_bos_token": true, "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "unk_token": "<unk>"}
        """;

    /// <summary>A Llama 2 style vocabulary: specials, 256 byte tokens, 8 characters and 10 merges (ids 267-276).</summary>
    private static string SentencePieceJson(bool metaspacePreTokenizer)
    {
        var vocab = new List<string> { "<unk>", "<s>", "</s>" };
        vocab.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        vocab.AddRange(["▁", "h", "e", "l", "o", "w", "r", "d", "ll", "▁h", "ell", "▁hell", "▁hello", "or", "▁w", "▁wor", "ld", "▁world"]);
        var vocabJson = string.Join(", ", vocab.Select((t, i) => $"\"{t}\": {i}"));
        const string Merges = """["l l", "▁ h", "e ll", "▁h ell", "▁hell o", "o r", "▁ w", "▁w or", "l d", "▁wor ld"]""";
        var normalizer = metaspacePreTokenizer
            ? "null"
            : """{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}""";
        var preTokenizer = metaspacePreTokenizer
            ? """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}"""
            : "null";
        return $$"""
        {
          "version": "1.0",
          "added_tokens": [
            {"id": 0, "content": "<unk>", "special": true},
            {"id": 1, "content": "<s>", "special": true},
            {"id": 2, "content": "</s>", "special": true}
          ],
          "normalizer": {{normalizer}},
          "pre_tokenizer": {{preTokenizer}},
          "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
            "vocab": { {{vocabJson}} },
            "merges": {{Merges}}
          }
        }
        """;
    }

    internal static Tokenizer Load(string tokenizerJson, string? configJson = null)
    {
        using var dir = TestModels.CreateTempDirectory();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), tokenizerJson, Encoding.UTF8);
        if (configJson is not null)
        {
            File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), configJson, Encoding.UTF8);
        }
        return TokenizerFactory.FromHuggingFace(dir.Path);
    }

    [Fact]
    public void FromHuggingFace_ByteLevelSplitRegex_GivesExactIds()
    {
        var tokenizer = Load(ByteLevelJson(), """{"bos_token": "<|endoftext|>", "eos_token": {"content": "<|im_end|>"}, "add_bos_token": true}""");

        Assert.Equal(TokenizerKind.ByteLevelBpe, tokenizer.Kind);
        Assert.Equal(272, tokenizer.VocabSize);
        Assert.Equal(TokenizerTestData.EndOfText, tokenizer.BosId);
        Assert.Equal(TokenizerTestData.ImEnd, tokenizer.EosId);
        Assert.True(tokenizer.AddBos);
        Assert.Equal([269, 73, 264, 32, 263, 267, 266], tokenizer.Encode("I'm 12345 ok", addBos: true));
        Assert.Equal([116, 257, 256, 104, 260], tokenizer.Encode("the thing", addBos: false));
        Assert.Equal([270, 258, 271], tokenizer.Encode("<|im_start|> the<|im_end|>", addBos: false, parseSpecial: true));
        Assert.Equal([TokenizerTestData.ImEnd, TokenizerTestData.EndOfText], tokenizer.StopTokenIds);
        Assert.Empty(tokenizer.Warnings);
    }

    [Fact]
    public void FromHuggingFace_ByteLevelWithoutSplit_UsesGpt2Pattern()
    {
        var json = ByteLevelJson().Replace(
            $$"""{"type": "Split", "pattern": {"Regex": {{JsonSerializer.Serialize(Llama3Regex)}}}, "behavior": "Isolated", "invert": false},""",
            "", StringComparison.Ordinal);

        var tokenizer = Load(json);

        Assert.False(tokenizer.AddBos);
        Assert.Equal([73, 264, 32, 268, 266], tokenizer.Encode("I'm 12345 ok", addBos: false));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FromHuggingFace_SentencePieceStyle_GivesExactIds(bool metaspacePreTokenizer)
    {
        var tokenizer = Load(SentencePieceJson(metaspacePreTokenizer), SentencePieceConfig);

        Assert.Equal(TokenizerKind.SentencePiece, tokenizer.Kind);
        Assert.Equal(277, tokenizer.VocabSize);
        Assert.Equal((1, 2, true), (tokenizer.BosId, tokenizer.EosId, tokenizer.AddBos));
        Assert.Equal([1, 271, 276], tokenizer.Encode("hello world", addBos: true));
        // x, y, z and ! are not pieces: byte fallback (byte b is id 3 + b).
        Assert.Equal([1, 271, 273, 123, 124, 125, 36], tokenizer.Encode("hello wxyz!", addBos: true));
        Assert.Equal("hello wxyz!", tokenizer.Decode([1, 271, 273, 123, 124, 125, 36]));
        Assert.Equal([259, 271], tokenizer.Encode(" hello", addBos: false));
    }

    [Fact]
    public void FromHuggingFace_TokenizerJsonPath_IsAccepted()
    {
        using var dir = TestModels.CreateTempDirectory();
        var file = Path.Combine(dir.Path, "tokenizer.json");
        File.WriteAllText(file, SentencePieceJson(false));

        var tokenizer = TokenizerFactory.FromHuggingFace(file);

        Assert.Equal([271], tokenizer.Encode("hello", addBos: false));
    }

    [Fact]
    public void FromHuggingFace_MissingFile_ThrowsModelFormatException()
    {
        using var dir = TestModels.CreateTempDirectory();

        var e = Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromHuggingFace(dir.Path));
        Assert.Contains("not found", e.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ not json", "invalid JSON")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("""{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}""", "Unigram")]
    [InlineData("""{"model": {"type": "WordPiece", "vocab": {"a": 0}}}""", "WordPiece")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}, "decoder": {"type": "ByteLevel"}}""", "not a valid token id")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["ab"]}, "decoder": {"type": "ByteLevel"}}""", "merges")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [[1, 2]]}, "decoder": {"type": "ByteLevel"}}""", "merges")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""", "unsupported BPE configuration")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": -4}, "merges": []}, "decoder": {"type": "ByteLevel"}}""", "not a valid token id")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {}, "merges": []}, "decoder": {"type": "ByteLevel"}}""", "empty")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"id": "x"}], "decoder": {"type": "ByteLevel"}}""", "added_tokens")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a++"}}, "decoder": {"type": "ByteLevel"}}""", "regex")]
    public void FromHuggingFace_MalformedTokenizerJson_ThrowsModelFormatException(string json, string problem)
    {
        var e = Assert.Throws<ModelFormatException>(() => Load(json));

        Assert.Contains(problem, e.Problem, StringComparison.Ordinal);
        Assert.EndsWith("tokenizer.json", e.FilePath, StringComparison.Ordinal);
    }
}
