using System.Text.Json;
using Tandem.Engine.Models;

namespace Tandem.Engine.Tokenizers;

/// <summary>Builds tokenizers from GGUF metadata or Hugging Face tokenizer.json files.</summary>
public static class TokenizerFactory
{
    /// <summary>The tokenizer of a model: from its Hugging Face directory, else from its GGUF metadata.</summary>
    public static Tokenizer For(Models.ModelArtifact artifact)
    {
        ArgumentNullException.ThrowIfNull(artifact);
        return artifact.HfDirectory is { } dir ? FromHuggingFace(dir) : FromGgufMetadata(artifact.Metadata, artifact.Path);
    }

    /// <summary>
    /// A tokenizer from GGUF tokenizer.ggml.* metadata: model "llama" (SentencePiece) or "gpt2" (byte-level BPE).
    /// Missing or malformed entries throw <see cref="ModelFormatException"/> naming <paramref name="path"/> and the problem.
    /// </summary>
    public static Tokenizer FromGgufMetadata(IReadOnlyDictionary<string, object> metadata, string path)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var m = new GgufTokenizerMetadata(metadata, path ?? "");
        var model = m.String("tokenizer.ggml.model") ?? throw m.Error("tokenizer.ggml.model is missing");
        if (model is not ("llama" or "gpt2"))
        {
            throw m.Error($"unsupported tokenizer model '{model}' (supported: llama, gpt2)");
        }
        var tokens = m.StringArray("tokenizer.ggml.tokens") ?? throw m.Error("tokenizer.ggml.tokens is missing");
        var n = tokens.Length;
        if (n == 0)
        {
            throw m.Error("tokenizer.ggml.tokens is empty");
        }
        var rawTypes = m.IntegerArray("tokenizer.ggml.token_type", n);
        var bos = m.TokenId("tokenizer.ggml.bos_token_id", n);
        var eos = m.TokenId("tokenizer.ggml.eos_token_id", n);
        var unk = m.TokenId("tokenizer.ggml.unknown_token_id", n);
        var pad = m.TokenId("tokenizer.ggml.padding_token_id", n);
        var eot = m.TokenId("tokenizer.ggml.eot_token_id", n) ?? -1;
        var eom = m.TokenId("tokenizer.ggml.eom_token_id", n) ?? -1;
        var addBos = m.Bool("tokenizer.ggml.add_bos_token");

        TokenType[]? types = null;
        if (rawTypes is not null)
        {
            types = new TokenType[n];
            for (var i = 0; i < n; i++)
            {
                if (rawTypes[i] is < 0 or > 6)
                {
                    throw m.Error($"tokenizer.ggml.token_type[{i}] = {rawTypes[i]} is not a valid token type (0-6)");
                }
                types[i] = (TokenType)rawTypes[i];
            }
        }

        if (model == "llama")
        {
            var scores = m.FloatArray("tokenizer.ggml.scores", n) ?? new float[n];
            bos ??= n > 1 ? 1 : -1;
            eos ??= n > 2 ? 2 : -1;
            types ??= InferTypes(tokens, bos.Value, eos.Value, unk ?? (tokens[0] == "<unk>" ? 0 : -1), sentencePiece: true);
            unk ??= Array.IndexOf(types, TokenType.Unknown);
            var ids = new SpecialTokenIds(bos.Value, eos.Value, unk.Value, pad ?? -1, eot, eom);
            return new SentencePieceTokenizer(tokens, scores, types, ids, addBos ?? true, m.Bool("tokenizer.ggml.add_space_prefix") ?? true);
        }

        var merges = m.StringArray("tokenizer.ggml.merges") ?? throw m.Error("tokenizer.ggml.merges is missing (required for gpt2)");
        for (var i = 0; i < merges.Length; i++)
        {
            if (merges[i].IndexOf(' ', 1) < 0)
            {
                throw m.Error($"tokenizer.ggml.merges[{i}] = \"{merges[i]}\" is not of the form \"left right\"");
            }
        }
        var endOfText = Array.IndexOf(tokens, "<|endoftext|>");
        bos ??= endOfText;
        eos ??= endOfText;
        types ??= InferTypes(tokens, bos.Value, eos.Value, unk ?? -1, sentencePiece: false);
        var pre = m.String("tokenizer.ggml.pre") ?? "default";
        var warnings = new List<string>();
        var pattern = PatternForPre(pre);
        if (pattern is null)
        {
            warnings.Add($"unknown tokenizer.ggml.pre '{pre}': using the GPT-2 pre-tokenizer pattern");
            pattern = ByteLevelBpeTokenizer.Gpt2Pattern;
        }
        var bpeIds = new SpecialTokenIds(bos.Value, eos.Value, unk ?? -1, pad ?? -1, eot, eom);
        var result = new ByteLevelBpeTokenizer(tokens, types, merges, bpeIds, addBos ?? false, pre, pattern,
            ignoreMerges: pre is "llama-bpe" or "llama3");
        result.WarningList.AddRange(warnings);
        return result;
    }

    /// <summary>
    /// A tokenizer from a Hugging Face directory (or a tokenizer.json path): tokenizer.json with a BPE model, plus
    /// tokenizer_config.json when present for bos_token, eos_token and add_bos_token.
    /// </summary>
    public static Tokenizer FromHuggingFace(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string file;
        string dir;
        if (File.Exists(directory))
        {
            file = Path.GetFullPath(directory);
            dir = Path.GetDirectoryName(file) ?? ".";
        }
        else
        {
            dir = directory;
            file = Path.Combine(directory, "tokenizer.json");
        }
        if (!File.Exists(file))
        {
            throw new ModelFormatException(file, "tokenizer.json not found");
        }
        var configFile = Path.Combine(dir, "tokenizer_config.json");
        using var tokenizer = ParseJson(file);
        using var config = File.Exists(configFile) ? ParseJson(configFile) : null;
        try
        {
            return HuggingFaceTokenizerReader.Read(tokenizer.RootElement, config?.RootElement, file);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException or OverflowException)
        {
            throw new ModelFormatException(file, $"malformed tokenizer.json: {e.Message}", e);
        }
    }

    /// <summary>The pre-tokenizer pattern for a GGUF tokenizer.ggml.pre name, or null when unknown.</summary>
    internal static string? PatternForPre(string pre) => pre switch
    {
        "default" or "gpt2" or "gpt-2" => ByteLevelBpeTokenizer.Gpt2Pattern,
        "llama-bpe" or "llama3" or "llama-v3" => ByteLevelBpeTokenizer.Llama3Pattern,
        "qwen2" => ByteLevelBpeTokenizer.Qwen2Pattern,
        _ => null,
    };

    internal static TokenType[] InferTypes(string[] tokens, int bos, int eos, int unk, bool sentencePiece)
    {
        var types = new TokenType[tokens.Length];
        for (var i = 0; i < tokens.Length; i++)
        {
            types[i] = i == unk ? TokenType.Unknown
                : i == bos || i == eos ? TokenType.Control
                : sentencePiece && SentencePieceTokenizer.TryParseByteToken(tokens[i], out _) ? TokenType.Byte
                : TokenType.Normal;
        }
        return types;
    }

    private static JsonDocument ParseJson(string file)
    {
        try
        {
            using var stream = File.OpenRead(file);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(file, $"invalid JSON: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new ModelFormatException(file, $"cannot read: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ModelFormatException(file, $"cannot read: {e.Message}", e);
        }
    }
}
