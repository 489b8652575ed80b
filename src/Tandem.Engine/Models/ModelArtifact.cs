namespace Tandem.Engine.Models;

/// <summary>An opened model (GGUF file or Hugging Face directory): configuration, mapped weights and side files.</summary>
public sealed class ModelArtifact : IDisposable
{
    public ModelArtifact(
        string path,
        string format,
        string name,
        ModelConfig config,
        ModelWeights weights,
        IReadOnlyDictionary<string, object> metadata,
        string? hfDirectory,
        GenerationDefaults generationDefaults,
        string? chatTemplate)
    {
        Path = path;
        Format = format;
        Name = name;
        Config = config;
        Weights = weights;
        Metadata = metadata;
        HfDirectory = hfDirectory;
        GenerationDefaults = generationDefaults;
        ChatTemplate = chatTemplate;
    }

    /// <summary>The path the model was opened from (the .gguf file or the Hugging Face directory).</summary>
    public string Path { get; }

    /// <summary>"gguf" or "safetensors".</summary>
    public string Format { get; }

    /// <summary>File name without .gguf, or the directory name.</summary>
    public string Name { get; }

    public ModelConfig Config { get; }

    /// <summary>Weights under canonical names; owns the file mappings.</summary>
    public ModelWeights Weights { get; }

    /// <summary>GGUF metadata (tokenizer.ggml.* etc.); empty for Hugging Face models.</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }

    /// <summary>The Hugging Face directory (tokenizer.json lives here), or null for GGUF.</summary>
    public string? HfDirectory { get; }

    public GenerationDefaults GenerationDefaults { get; }

    /// <summary>GGUF tokenizer.chat_template or tokenizer_config.json chat_template, when present.</summary>
    public string? ChatTemplate { get; }

    public void Dispose() => Weights.Dispose();
}
