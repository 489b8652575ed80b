using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Tandem.Engine.Tokenizers;

/// <summary>Writes a tokenizer as GGUF tokenizer.ggml.* metadata or as Hugging Face tokenizer.json / tokenizer_config.json.</summary>
public static class TokenizerExport
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>tokenizer.ggml.* keys (GGUF value types: strings, uint ids, bools, typed arrays).</summary>
    public static Dictionary<string, object> ToGgufMetadata(Tokenizer tokenizer)
    {
        var t = Vocabulary(tokenizer);
        var metadata = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["tokenizer.ggml.tokens"] = t.Tokens.ToArray(),
            ["tokenizer.ggml.token_type"] = Array.ConvertAll(t.Types, x => (int)x),
            ["tokenizer.ggml.add_bos_token"] = t.AddBos,
        };
        switch (t)
        {
            case SentencePieceTokenizer spm:
                metadata["tokenizer.ggml.model"] = "llama";
                metadata["tokenizer.ggml.pre"] = "default";
                metadata["tokenizer.ggml.scores"] = spm.Scores.ToArray();
                metadata["tokenizer.ggml.add_space_prefix"] = spm.AddSpacePrefix;
                break;
            case ByteLevelBpeTokenizer bpe:
                metadata["tokenizer.ggml.model"] = "gpt2";
                metadata["tokenizer.ggml.pre"] = bpe.PreName;
                metadata["tokenizer.ggml.merges"] = bpe.Merges.ToArray();
                metadata["tokenizer.ggml.add_space_prefix"] = false;
                break;
        }
        void Id(string key, int id)
        {
            if (id >= 0)
            {
                metadata[key] = (uint)id;
            }
        }
        Id("tokenizer.ggml.bos_token_id", t.Ids.Bos);
        Id("tokenizer.ggml.eos_token_id", t.Ids.Eos);
        Id("tokenizer.ggml.unknown_token_id", t.Ids.Unknown);
        Id("tokenizer.ggml.padding_token_id", t.Ids.Padding);
        Id("tokenizer.ggml.eot_token_id", t.Ids.Eot);
        Id("tokenizer.ggml.eom_token_id", t.Ids.Eom);
        return metadata;
    }

    /// <summary>The tokenizer.json text (BPE model; SentencePiece-style with byte fallback, or byte-level with a Split regex).</summary>
    public static string ToHuggingFaceJson(Tokenizer tokenizer)
    {
        var t = Vocabulary(tokenizer);
        var spm = t as SentencePieceTokenizer;
        var bpe = t as ByteLevelBpeTokenizer;
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");

            w.WriteStartArray("added_tokens");
            for (var i = 0; i < t.Tokens.Length; i++)
            {
                if (t.Types[i] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown)
                {
                    w.WriteStartObject();
                    w.WriteNumber("id", i);
                    w.WriteString("content", t.Tokens[i]);
                    w.WriteBoolean("single_word", false);
                    w.WriteBoolean("lstrip", false);
                    w.WriteBoolean("rstrip", false);
                    w.WriteBoolean("normalized", false);
                    w.WriteBoolean("special", t.Types[i] != TokenType.UserDefined);
                    w.WriteEndObject();
                }
            }
            w.WriteEndArray();

            if (spm is not null)
            {
                w.WriteStartObject("normalizer");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("normalizers");
                if (spm.AddSpacePrefix)
                {
                    w.WriteStartObject();
                    w.WriteString("type", "Prepend");
                    w.WriteString("prepend", "\u2581");
                    w.WriteEndObject();
                }
                WriteReplace(w, " ", "\u2581");
                w.WriteEndArray();
                w.WriteEndObject();
                w.WriteNull("pre_tokenizer");
            }
            else
            {
                w.WriteNull("normalizer");
                w.WriteStartObject("pre_tokenizer");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("pretokenizers");
                w.WriteStartObject();
                w.WriteString("type", "Split");
                w.WriteStartObject("pattern");
                w.WriteString("Regex", bpe!.Pattern);
                w.WriteEndObject();
                w.WriteString("behavior", "Isolated");
                w.WriteBoolean("invert", false);
                w.WriteEndObject();
                WriteByteLevel(w);
                w.WriteEndArray();
                w.WriteEndObject();
            }

            if (t.AddBos && t.Ids.Bos >= 0)
            {
                var bos = t.Tokens[t.Ids.Bos];
                w.WriteStartObject("post_processor");
                w.WriteString("type", "TemplateProcessing");
                w.WriteStartArray("single");
                WriteTemplateItem(w, "SpecialToken", bos);
                WriteTemplateItem(w, "Sequence", "A");
                w.WriteEndArray();
                w.WriteStartArray("pair");
                WriteTemplateItem(w, "SpecialToken", bos);
                WriteTemplateItem(w, "Sequence", "A");
                WriteTemplateItem(w, "SpecialToken", bos);
                WriteTemplateItem(w, "Sequence", "B");
                w.WriteEndArray();
                w.WriteStartObject("special_tokens");
                w.WriteStartObject(bos);
                w.WriteString("id", bos);
                w.WriteStartArray("ids");
                w.WriteNumberValue(t.Ids.Bos);
                w.WriteEndArray();
                w.WriteStartArray("tokens");
                w.WriteStringValue(bos);
                w.WriteEndArray();
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteEndObject();
            }
            else
            {
                w.WriteNull("post_processor");
            }

            if (spm is not null)
            {
                w.WriteStartObject("decoder");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("decoders");
                WriteReplace(w, "\u2581", " ");
                w.WriteStartObject();
                w.WriteString("type", "ByteFallback");
                w.WriteEndObject();
                w.WriteStartObject();
                w.WriteString("type", "Fuse");
                w.WriteEndObject();
                if (spm.AddSpacePrefix)
                {
                    w.WriteStartObject();
                    w.WriteString("type", "Strip");
                    w.WriteString("content", " ");
                    w.WriteNumber("start", 1);
                    w.WriteNumber("stop", 0);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            else
            {
                w.WritePropertyName("decoder");
                WriteByteLevel(w);
            }

            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            if (t.Ids.Unknown >= 0)
            {
                w.WriteString("unk_token", t.Tokens[t.Ids.Unknown]);
            }
            else
            {
                w.WriteNull("unk_token");
            }
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", spm is not null);
            w.WriteBoolean("byte_fallback", spm is not null);
            w.WriteBoolean("ignore_merges", bpe?.IgnoreMerges ?? false);
            w.WriteStartObject("vocab");
            for (var i = 0; i < t.Tokens.Length; i++)
            {
                w.WriteNumber(t.Tokens[i], i);
            }
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (left, right) in spm is not null ? SentencePieceMerges(spm) : bpe!.Merges.Select(SplitMerge))
            {
                w.WriteStartArray();
                w.WriteStringValue(left);
                w.WriteStringValue(right);
                w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();

            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>The tokenizer_config.json text: bos/eos/unk/pad tokens and add_bos_token.</summary>
    public static string ToHuggingFaceConfigJson(Tokenizer tokenizer)
    {
        var t = Vocabulary(tokenizer);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteBoolean("add_bos_token", t.AddBos);
            w.WriteBoolean("add_eos_token", false);
            void Token(string key, int id)
            {
                if (id >= 0)
                {
                    w.WriteString(key, t.Tokens[id]);
                }
                else
                {
                    w.WriteNull(key);
                }
            }
            Token("bos_token", t.Ids.Bos);
            Token("eos_token", t.Ids.Eos);
            Token("unk_token", t.Ids.Unknown);
            Token("pad_token", t.Ids.Padding);
            w.WriteBoolean("clean_up_tokenization_spaces", false);
            w.WriteString("tokenizer_class", t is SentencePieceTokenizer ? "LlamaTokenizerFast" : "PreTrainedTokenizerFast");
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Writes tokenizer.json and tokenizer_config.json into <paramref name="directory"/>.</summary>
    public static void WriteHuggingFaceFiles(Tokenizer tokenizer, string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), ToHuggingFaceJson(tokenizer));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), ToHuggingFaceConfigJson(tokenizer));
    }

    private static VocabularyTokenizer Vocabulary(Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer as VocabularyTokenizer
            ?? throw new ArgumentException($"cannot export a {tokenizer.GetType().Name}", nameof(tokenizer));
    }

    private static (string Left, string Right) SplitMerge(string merge)
    {
        var space = merge.IndexOf(' ', 1);
        return (merge[..space], merge[(space + 1)..]);
    }

    /// <summary>
    /// Every split of every mergeable multi-character piece into two mergeable pieces, pieces ordered by score (highest first,
    /// then id), as Hugging Face's Llama converter does; reading them back gives each piece the score minus its first rank.
    /// </summary>
    private static IEnumerable<(string Left, string Right)> SentencePieceMerges(SentencePieceTokenizer spm)
    {
        var order = Enumerable.Range(0, spm.Tokens.Length)
            .Where(i => SentencePieceTokenizer.IsMergeable(spm.Types[i]) && spm.Tokens[i].Length > 1)
            .OrderByDescending(i => spm.Scores[i])
            .ThenBy(i => i);
        foreach (var i in order)
        {
            var piece = spm.Tokens[i];
            if (!spm.TryGetPiece(piece, out var first) || first != i)
            {
                continue; // a duplicate entry: the first occurrence is the one text maps to
            }
            for (var k = 1; k < piece.Length; k++)
            {
                if (char.IsLowSurrogate(piece[k]) && char.IsHighSurrogate(piece[k - 1]))
                {
                    continue;
                }
                if (spm.TryGetPiece(piece.AsSpan(0, k), out _) && spm.TryGetPiece(piece.AsSpan(k), out _))
                {
                    yield return (piece[..k], piece[k..]);
                }
            }
        }
    }

    private static void WriteReplace(Utf8JsonWriter w, string from, string to)
    {
        w.WriteStartObject();
        w.WriteString("type", "Replace");
        w.WriteStartObject("pattern");
        w.WriteString("String", from);
        w.WriteEndObject();
        w.WriteString("content", to);
        w.WriteEndObject();
    }

    private static void WriteByteLevel(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", false);
        w.WriteEndObject();
    }

    private static void WriteTemplateItem(Utf8JsonWriter w, string kind, string id)
    {
        w.WriteStartObject();
        w.WriteStartObject(kind);
        w.WriteString("id", id);
        w.WriteNumber("type_id", 0);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
