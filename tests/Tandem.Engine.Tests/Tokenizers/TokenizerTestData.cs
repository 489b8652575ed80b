using System.Text;
using Tandem.Engine.Formats.Gguf;
using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Tests.Tokenizers;

/// <summary>Hand-made vocabularies and an independent brute-force SentencePiece reference for the tokenizer tests.</summary>
internal static class TokenizerTestData
{
    public static readonly string[] OrdinaryTexts =
    [
        "Hello world",
        "Once upon a time, there was a little girl named Lily.",
        "  two leading spaces",
        "multiple     spaces   inside",
        "trailing space ",
        "line one\nline two\n\nline four\n",
        "tab\tseparated\tvalues",
        "Windows\r\nline ends",
        "café naïve résumé Ünïcödé",
        "日本語のテキストと中文",
        "emoji 😀 and 🎉🎉 and 👍🏽 mixed",
        " ",
        "a",
        "!?",
        "",
    ];

    /// <summary>GPT-2's bytes_to_unicode, written out independently of the engine.</summary>
    public static char[] Gpt2ByteChars()
    {
        var printable = new List<int>();
        for (var b = '!'; b <= '~'; b++)
        {
            printable.Add(b);
        }
        for (var b = 0xA1; b <= 0xAC; b++)
        {
            printable.Add(b);
        }
        for (var b = 0xAE; b <= 0xFF; b++)
        {
            printable.Add(b);
        }
        var map = new char[256];
        var extra = 0;
        for (var b = 0; b < 256; b++)
        {
            map[b] = printable.Contains(b) ? (char)b : (char)(256 + extra++);
        }
        return map;
    }

    /// <summary>Merges of the tiny GPT-2 vocabulary; merged tokens get ids 256.. in this order.</summary>
    public static readonly string[] TinyMerges =
    [
        "Ġ t",     // 256 Ġt
        "h e",     // 257 he
        "Ġt he",   // 258 Ġthe
        "i n",     // 259 in
        "in g",    // 260 ing
        "Ġ a",     // 261 Ġa
        "1 2",     // 262 12
        "12 3",    // 263 123
        "' m",     // 264 'm
        "o k",     // 265 ok
        "Ġ ok",    // 266 Ġok
        "4 5",     // 267 45
        "123 45",  // 268 12345
    ];

    public const int EndOfText = 269;
    public const int ImStart = 270;
    public const int ImEnd = 271;

    public static string[] TinyTokens()
    {
        var tokens = Gpt2ByteChars().Select(c => c.ToString()).ToList();
        tokens.AddRange(TinyMerges.Select(m => m.Replace(" ", "", StringComparison.Ordinal)));
        tokens.AddRange(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
        return [.. tokens];
    }

    /// <summary>GGUF metadata of the tiny byte-level vocabulary (256 bytes, 13 merges, 3 control tokens).</summary>
    public static Dictionary<string, object> TinyGpt2Metadata(string pre = "gpt2")
    {
        var tokens = TinyTokens();
        var types = tokens.Select((_, i) => i >= EndOfText ? 3 : 1).ToArray();
        return new Dictionary<string, object>
        {
            ["tokenizer.ggml.model"] = "gpt2",
            ["tokenizer.ggml.pre"] = pre,
            ["tokenizer.ggml.tokens"] = tokens,
            ["tokenizer.ggml.token_type"] = types,
            ["tokenizer.ggml.merges"] = TinyMerges.ToArray(),
            ["tokenizer.ggml.bos_token_id"] = (uint)EndOfText,
            ["tokenizer.ggml.eos_token_id"] = (uint)EndOfText,
        };
    }

    public static Dictionary<string, object> Stories260KMetadata()
    {
        using var gguf = GgufFile.Open(TestModels.Stories260K);
        return new Dictionary<string, object>(gguf.Metadata);
    }

    public static Tokenizer Stories260K() => TokenizerFactory.FromGgufMetadata(Stories260KMetadata(), TestModels.Stories260K);

    /// <summary>
    /// Brute-force SentencePiece BPE: repeatedly merges the adjacent pair with the highest-scoring normal piece (leftmost on
    /// ties) by rescanning everything, then maps leftovers to &lt;0xXX&gt; byte tokens.
    /// </summary>
    public static List<int> ReferenceSentencePiece(string text, string[] tokens, float[] scores, int[] types, bool addSpacePrefix)
    {
        var vocab = new Dictionary<string, int>();
        for (var i = 0; i < tokens.Length; i++)
        {
            if (types[i] == 1)
            {
                vocab.TryAdd(tokens[i], i);
            }
        }
        var s = (addSpacePrefix ? " " : "") + text;
        s = s.Replace(' ', '\u2581');
        var symbols = new List<string>();
        for (var i = 0; i < s.Length; i++)
        {
            symbols.Add(char.IsHighSurrogate(s[i]) && i + 1 < s.Length ? s.Substring(i++, 2) : s[i].ToString());
        }
        while (true)
        {
            var best = -1;
            var bestScore = float.NegativeInfinity;
            for (var i = 0; i + 1 < symbols.Count; i++)
            {
                if (vocab.TryGetValue(symbols[i] + symbols[i + 1], out var id) && scores[id] > bestScore)
                {
                    best = i;
                    bestScore = scores[id];
                }
            }
            if (best < 0)
            {
                break;
            }
            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
        var result = new List<int>();
        foreach (var symbol in symbols)
        {
            if (vocab.TryGetValue(symbol, out var id))
            {
                result.Add(id);
            }
            else
            {
                foreach (var b in Encoding.UTF8.GetBytes(symbol))
                {
                    result.Add(Array.IndexOf(tokens, $"<0x{b:X2}>"));
                }
            }
        }
        return result;
    }

    /// <summary>Seeded random strings: ASCII, whitespace, accents, CJK, random BMP and astral characters (surrogate pairs).</summary>
    public static IEnumerable<string> RandomStrings(int seed, int count)
    {
        var random = new Random(seed);
        for (var n = 0; n < count; n++)
        {
            var builder = new StringBuilder();
            var length = random.Next(0, 40);
            for (var i = 0; i < length; i++)
            {
                switch (random.Next(8))
                {
                    case 0:
                    case 1:
                        builder.Append((char)random.Next('a', 'z' + 1));
                        break;
                    case 2:
                        builder.Append(" \n\t  \r"[random.Next(6)]);
                        break;
                    case 3:
                        builder.Append((char)random.Next(0x20, 0x7F));
                        break;
                    case 4:
                        builder.Append("éüñçßøÅ"[random.Next(7)]);
                        break;
                    case 5:
                        builder.Append((char)random.Next(0x4E00, 0x9FFF));
                        break;
                    case 6:
                        var c = random.Next(0x80, 0xD800);
                        builder.Append(c == 0x2581 ? 'x' : (char)c);
                        break;
                    default:
                        builder.Append(char.ConvertFromUtf32(random.Next(0x10000, 0x10FFFF)));
                        break;
                }
            }
            yield return builder.ToString();
        }
    }

    /// <summary>True when every surrogate in <paramref name="text"/> is part of a valid pair.</summary>
    public static bool HasValidSurrogates(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]))
            {
                if (i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
                {
                    return false;
                }
                i++;
            }
            else if (char.IsLowSurrogate(text[i]))
            {
                return false;
            }
        }
        return true;
    }
}
