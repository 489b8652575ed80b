using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Tests.Tokenizers;

public sealed class SentencePieceTokenizerTests
{
    private const string StorySentence = "Once upon a time, there was a little girl named Lily.";

    [Fact]
    public void FromGgufMetadata_Stories260K_ReadsVocabularyAndSpecialIds()
    {
        var tokenizer = TokenizerTestData.Stories260K();

        Assert.Equal(TokenizerKind.SentencePiece, tokenizer.Kind);
        Assert.Equal(512, tokenizer.VocabSize);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
        Assert.True(tokenizer.AddBos);
        Assert.Equal([2], tokenizer.StopTokenIds);
        Assert.True(tokenizer.IsSpecial(1));
        Assert.False(tokenizer.IsSpecial(100));
        Assert.Equal("<0x41>", tokenizer.TokenText(3 + 0x41));
        Assert.Equal([(byte)0x41], tokenizer.TokenBytes(3 + 0x41).ToArray());
    }

    [Fact]
    public void Encode_Stories260KStorySentence_MatchesBruteForceReference()
    {
        var metadata = TokenizerTestData.Stories260KMetadata();
        var tokenizer = TokenizerFactory.FromGgufMetadata(metadata, TestModels.Stories260K);

        var ids = tokenizer.Encode(StorySentence, addBos: true);

        var expected = TokenizerTestData.ReferenceSentencePiece(StorySentence, (string[])metadata["tokenizer.ggml.tokens"],
            (float[])metadata["tokenizer.ggml.scores"], (int[])metadata["tokenizer.ggml.token_type"], addSpacePrefix: true);
        expected.Insert(0, 1);
        Assert.Equal(expected, ids);
        var pieces = ids.Skip(1).Select(tokenizer.TokenText).ToArray();
        Assert.Equal("▁Once▁upon▁a▁time,▁there▁was▁a▁little▁girl▁named▁Lily.", string.Concat(pieces));
        Assert.True(pieces.Length < StorySentence.Length / 2, $"merges should give multi-character pieces: {string.Join('|', pieces)}");
        Assert.Equal(StorySentence, tokenizer.Decode(ids));
    }

    [Fact]
    public void Encode_Stories260KOrdinaryTexts_MatchesBruteForceReference()
    {
        var metadata = TokenizerTestData.Stories260KMetadata();
        var tokenizer = TokenizerFactory.FromGgufMetadata(metadata, TestModels.Stories260K);

        foreach (var text in TokenizerTestData.OrdinaryTexts.Where(t => t.Length > 0))
        {
            var expected = TokenizerTestData.ReferenceSentencePiece(text, (string[])metadata["tokenizer.ggml.tokens"],
                (float[])metadata["tokenizer.ggml.scores"], (int[])metadata["tokenizer.ggml.token_type"], addSpacePrefix: true);
            Assert.Equal(expected, tokenizer.Encode(text, addBos: false));
        }
    }

    [Fact]
    public void Decode_Stories260KEncodedOrdinaryTexts_ReturnsOriginalText()
    {
        var tokenizer = TokenizerTestData.Stories260K();

        foreach (var text in TokenizerTestData.OrdinaryTexts)
        {
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, addBos: true)));
        }
    }

    [Fact]
    public void Encode_Stories260KEmoji_UsesFourByteFallbackTokens()
    {
        var tokenizer = TokenizerTestData.Stories260K();

        var ids = tokenizer.Encode("😀", addBos: false);

        // "▁" then F0 9F 98 80 as byte tokens (byte b has id 3 + b).
        Assert.Equal(["▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"], ids.Select(tokenizer.TokenText).ToArray());
        Assert.Equal("😀", tokenizer.Decode(ids));
    }

    [Fact]
    public void Encode_EmptyText_GivesOnlyBos()
    {
        var tokenizer = BuiltinVocabulary.Create();

        Assert.Equal([1], tokenizer.Encode("", addBos: true));
        Assert.Empty(tokenizer.Encode("", addBos: false));
        Assert.Equal("", tokenizer.Decode([1]));
    }

    [Fact]
    public void IncrementalDecoder_Stories260KEmojiTokenByToken_NeverYieldsBrokenTextAndEqualsDecode()
    {
        var tokenizer = TokenizerTestData.Stories260K();
        var ids = tokenizer.Encode("I love 😀 and 🎉 pizza, naïve 日本", addBos: true);
        var decoder = tokenizer.CreateIncrementalDecoder();

        var parts = ids.Select(decoder.Push).Append(decoder.Flush()).ToList();

        Assert.All(parts, part => Assert.DoesNotContain('\uFFFD', part));
        Assert.All(parts, part => Assert.True(TokenizerTestData.HasValidSurrogates(part), $"broken surrogate in '{part}'"));
        Assert.Contains("😀", parts);
        Assert.Equal(tokenizer.Decode(ids), string.Concat(parts));
        Assert.Equal("I love 😀 and 🎉 pizza, naïve 日本", string.Concat(parts));
    }

    [Fact]
    public void IncrementalDecoder_IncompleteEmojiThenFlush_HoldsBytesThenGivesReplacement()
    {
        var tokenizer = BuiltinVocabulary.Create();
        var decoder = tokenizer.CreateIncrementalDecoder();

        Assert.Equal("", decoder.Push(3 + 0xF0));
        Assert.Equal("", decoder.Push(3 + 0x9F));
        Assert.Equal("\uFFFD", decoder.Flush());
        Assert.Equal("\uFFFD", tokenizer.Decode([3 + 0xF0, 3 + 0x9F]));
    }

    [Fact]
    public void Decode_SkipSpecialFalse_IncludesControlTokenText()
    {
        var tokenizer = BuiltinVocabulary.Create();
        var ids = tokenizer.Encode("hello", addBos: true).Append(2).ToArray();

        Assert.Equal("hello", tokenizer.Decode(ids));
        Assert.Equal("<s>hello</s>", tokenizer.Decode(ids, skipSpecial: false));
    }

    [Fact]
    public void Encode_ParseSpecial_MapsControlTextToIdAndPrefixesSpaceAfterIt()
    {
        var tokenizer = BuiltinVocabulary.Create();

        var parsed = tokenizer.Encode("<s>the</s>", addBos: false, parseSpecial: true);
        var plain = tokenizer.Encode("<s>the</s>", addBos: false, parseSpecial: false);

        Assert.Equal(1, parsed[0]);
        Assert.Equal("▁the", tokenizer.TokenText(parsed[1]));
        Assert.Equal(2, parsed[^1]);
        Assert.Equal(3, parsed.Length);
        Assert.DoesNotContain(1, plain);
        Assert.Equal("<s>the</s>", tokenizer.Decode(parsed, skipSpecial: false));
        Assert.Equal("<s>the</s>", tokenizer.Decode(plain));
    }

    [Fact]
    public void Encode_HundredKilobytes_IsNotQuadratic()
    {
        var tokenizer = BuiltinVocabulary.Create();
        var text = string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog 😀 ", 2200));

        var ids = tokenizer.Encode(text, addBos: false);

        Assert.True(text.Length > 100_000);
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void BuiltinVocabulary_Create_HasLayoutAndReachablePieces()
    {
        var tokenizer = BuiltinVocabulary.Create();

        Assert.Equal(512, tokenizer.VocabSize);
        Assert.Equal(("<unk>", "<s>", "</s>"), (tokenizer.TokenText(0), tokenizer.TokenText(1), tokenizer.TokenText(2)));
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
        for (var b = 0; b < 256; b++)
        {
            Assert.Equal($"<0x{b:X2}>", tokenizer.TokenText(3 + b));
        }
        var pieces = Enumerable.Range(259, 253).Select(tokenizer.TokenText).ToHashSet();
        Assert.Equal(253, pieces.Count);
        Assert.Contains("▁the", pieces);
        foreach (var piece in pieces.Where(p => p.Length > 1))
        {
            Assert.True(Enumerable.Range(1, piece.Length - 1).Any(k => pieces.Contains(piece[..k]) && pieces.Contains(piece[k..])),
                $"piece '{piece}' cannot be built by a merge");
        }
        var text = "Once upon a time, the little dog said hello";
        var ids = tokenizer.Encode(text, addBos: false);
        Assert.Contains("▁the", ids.Select(tokenizer.TokenText));
        Assert.True(ids.Length < text.Length / 2);
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.Equal(ids, BuiltinVocabulary.Create().Encode(text, addBos: false));
    }
}
