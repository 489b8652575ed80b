using System.Text.Json;
using System.Text.Json.Serialization;
using Tandem.Engine.Models;

namespace Tandem.Engine.Serving.Mocker;

/// <summary>
/// What the mocker engine simulates: a model's shape (vocabulary, context, KV bytes per token), the engine limits,
/// and a timing model. Read from a JSON data file (<c>profiles/mocker-h100-8b.json</c> ships with the assembly and is
/// the default), so a different machine or model is a different file, not different code.
/// <para>Timing (milliseconds, divided by <see cref="SpeedupRatio"/>): a step that computes <c>t</c> new (uncached)
/// prompt tokens takes <c>prefill(t) = a·t² + b·t + c</c>; a step that decodes takes <c>decode(u) = max(min, a·u² + b·u
/// + c)</c> with <c>u</c> = KV blocks in use ÷ total blocks; a step doing both takes the sum.</para>
/// </summary>
public sealed record MockerProfile
{
    public const string DefaultProfileName = "mocker-h100-8b";

    public string Name { get; init; } = "custom";
    public string Description { get; init; } = "";
    public ModelShape Model { get; init; } = new();
    public EngineLimits Engine { get; init; } = new();
    public TimingModel Timing { get; init; } = new();
    public TokenSettings Tokens { get; init; } = new();

    /// <summary>Simulated times are divided by this (10 = ten times faster than the modelled machine).</summary>
    [JsonIgnore]
    public double SpeedupRatio { get; init; } = 1.0;

    public IReadOnlyList<int> StopTokenIds => Tokens.StopTokenIds;

    public sealed record ModelShape
    {
        [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 128256;
        [JsonPropertyName("context_length")] public int ContextLength { get; init; } = 131072;
        [JsonPropertyName("num_layers")] public int NumLayers { get; init; } = 32;
        [JsonPropertyName("num_kv_heads")] public int NumKvHeads { get; init; } = 8;
        [JsonPropertyName("head_dim")] public int HeadDim { get; init; } = 128;
        [JsonPropertyName("kv_bytes_per_element")] public int KvBytesPerElement { get; init; } = 2;

        /// <summary>Keys and values of one token over all layers.</summary>
        public long KvBytesPerToken => 2L * NumLayers * NumKvHeads * HeadDim * KvBytesPerElement;
    }

    public sealed record EngineLimits
    {
        [JsonPropertyName("block_size")] public int BlockSize { get; init; } = 64;
        [JsonPropertyName("num_kv_blocks")] public int NumKvBlocks { get; init; } = 16384;
        [JsonPropertyName("max_num_seqs")] public int MaxNumSeqs { get; init; } = 256;
        [JsonPropertyName("max_num_batched_tokens")] public int MaxNumBatchedTokens { get; init; } = 8192;
        [JsonPropertyName("watermark")] public double Watermark { get; init; } = 0.01;
    }

    public sealed record Quadratic
    {
        [JsonPropertyName("a")] public double A { get; init; }
        [JsonPropertyName("b")] public double B { get; init; }
        [JsonPropertyName("c")] public double C { get; init; }
        [JsonPropertyName("min")] public double Min { get; init; }

        public double At(double x) => Math.Max(Min, (A * x * x) + (B * x) + C);
    }

    public sealed record TimingModel
    {
        [JsonPropertyName("prefill_ms")] public Quadratic PrefillMs { get; init; } = new() { A = 4.209989e-7, B = 1.518344e-2, C = 16.50142 };
        [JsonPropertyName("decode_ms")] public Quadratic DecodeMs { get; init; } = new() { A = -25.74, B = 54.01, C = 5.74, Min = 1.0 };
        [JsonPropertyName("kv_transfer_bandwidth_bytes_per_s")] public double KvTransferBandwidth { get; init; } = 64e9;
    }

    public sealed record TokenSettings
    {
        /// <summary>Generated tokens are drawn from [this, vocab_size) (259: the word pieces of the built-in vocabulary).</summary>
        [JsonPropertyName("first_output_token")] public int FirstOutputToken { get; init; } = 259;

        [JsonPropertyName("stop_token_ids")] public IReadOnlyList<int> StopTokenIds { get; init; } = [2];
    }

    /// <summary>Unscaled milliseconds of a step computing <paramref name="newPromptTokens"/> uncached prompt tokens.</summary>
    public double PrefillMilliseconds(int newPromptTokens) => newPromptTokens <= 0 ? 0 : Timing.PrefillMs.At(newPromptTokens);

    /// <summary>Unscaled milliseconds of a decode step at KV usage <paramref name="usage"/> (0..1).</summary>
    public double DecodeMilliseconds(double usage) => Timing.DecodeMs.At(Math.Clamp(usage, 0, 1));

    /// <summary>Unscaled seconds to move the KV of <paramref name="tokens"/> tokens between workers.</summary>
    public double KvTransferSeconds(int tokens) => tokens * (double)Model.KvBytesPerToken / Timing.KvTransferBandwidth;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        Check(Model.VocabSize is >= 4 and <= 1 << 22, $"vocab_size must be in [4, 2^22], got {Model.VocabSize}");
        Check(Model.ContextLength >= 2, $"context_length must be ≥ 2, got {Model.ContextLength}");
        Check(Model.NumLayers >= 1 && Model.NumKvHeads >= 1 && Model.HeadDim >= 1 && Model.KvBytesPerElement >= 1, "the model shape needs positive num_layers, num_kv_heads, head_dim and kv_bytes_per_element");
        Check(Tokens.FirstOutputToken >= 0 && Tokens.FirstOutputToken < Model.VocabSize - 1, $"first_output_token must be below vocab_size − 1, got {Tokens.FirstOutputToken}");
        Check(SpeedupRatio > 0 && double.IsFinite(SpeedupRatio), $"the speedup ratio must be a positive number, got {SpeedupRatio}");
        Check(Timing.KvTransferBandwidth > 0, "kv_transfer_bandwidth_bytes_per_s must be positive");
        foreach (var t in Tokens.StopTokenIds)
        {
            Check((uint)t < (uint)Model.VocabSize, $"stop token {t} is outside the vocabulary");
        }
    }

    /// <summary>The shape the scheduler validates requests against.</summary>
    public ModelConfig ToModelConfig() => new()
    {
        Architecture = "mocker",
        HiddenSize = Model.NumKvHeads * Model.HeadDim,
        IntermediateSize = Model.NumKvHeads * Model.HeadDim,
        NumLayers = Model.NumLayers,
        NumHeads = Model.NumKvHeads,
        NumKvHeads = Model.NumKvHeads,
        HeadDim = Model.HeadDim,
        VocabSize = Model.VocabSize,
        ContextLength = Model.ContextLength,
    };

    /// <summary>The profile's engine limits as serving options.</summary>
    public ServingOptions ToServingOptions() => new()
    {
        BlockSize = Engine.BlockSize,
        NumKvBlocks = Engine.NumKvBlocks,
        MaxNumSeqs = Engine.MaxNumSeqs,
        MaxNumBatchedTokens = Engine.MaxNumBatchedTokens,
        Watermark = Engine.Watermark,
    };

    private static void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new ArgumentException(message);
        }
    }

    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = true, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    public static MockerProfile Parse(string json, string source = "profile")
    {
        try
        {
            var profile = JsonSerializer.Deserialize<MockerProfile>(json, Json) ?? throw new ArgumentException($"{source}: empty mocker profile");
            profile.Validate();
            return profile;
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{source}: not a valid mocker profile: {e.Message}", e);
        }
    }

    /// <summary>A profile file, or the name of a shipped one (e.g. <c>mocker-h100-8b</c>).</summary>
    public static MockerProfile Load(string pathOrName)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrName);
        if (File.Exists(pathOrName))
        {
            return Parse(File.ReadAllText(pathOrName), pathOrName);
        }
        var shipped = Path.Combine(AppContext.BaseDirectory, "profiles", pathOrName.EndsWith(".json", StringComparison.Ordinal) ? pathOrName : pathOrName + ".json");
        if (File.Exists(shipped))
        {
            return Parse(File.ReadAllText(shipped), shipped);
        }
        using var stream = typeof(MockerProfile).Assembly.GetManifestResourceStream("Tandem.Engine.Serving.profiles." + Path.GetFileName(shipped))
            ?? throw new FileNotFoundException($"no mocker profile file or shipped profile named '{pathOrName}'");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd(), pathOrName);
    }

    /// <summary>The shipped default profile (<see cref="DefaultProfileName"/>).</summary>
    public static MockerProfile Default => Load(DefaultProfileName);
}
