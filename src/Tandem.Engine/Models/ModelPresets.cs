namespace Tandem.Engine.Models;

/// <summary>Shapes of the random-weight llama models `tandem model init` writes.</summary>
public sealed record ModelPreset(string Name, int HiddenSize, int NumLayers, int NumHeads, int NumKvHeads, int IntermediateSize, int ContextLength);

public static class ModelPresets
{
    /// <summary>About stories260K's size: fast enough for any test.</summary>
    public static ModelPreset Tiny { get; } = new("tiny", 64, 2, 4, 2, 172, 512);

    /// <summary>A few MB: batching and serving tests that need real compute per token.</summary>
    public static ModelPreset Small { get; } = new("small", 256, 4, 8, 4, 688, 1024);

    /// <summary>The llama2.c stories110M shape (dim 768, 12 layers, 12 heads, FFN 2048) with a 512-token vocabulary: benchmarks.</summary>
    public static ModelPreset M110 { get; } = new("110m", 768, 12, 12, 12, 2048, 1024);

    public static IReadOnlyList<ModelPreset> All { get; } = [Tiny, Small, M110];

    public static ModelPreset Get(string name) =>
        All.FirstOrDefault(p => p.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown preset '{name}'; choose one of: {string.Join(", ", All.Select(p => p.Name))}", nameof(name));
}
