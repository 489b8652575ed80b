using Tandem.Engine.Inference;
using Tandem.Engine.Kernels;
using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Models;

/// <summary>A model ready to run: files mapped, tokenizer built, forward pass wired to a kernel set.</summary>
public sealed class LoadedModel : IDisposable
{
    private LoadedModel(ModelArtifact artifact, Tokenizer tokenizer, Transformer transformer)
    {
        Artifact = artifact;
        Tokenizer = tokenizer;
        Transformer = transformer;
    }

    public ModelArtifact Artifact { get; }
    public Tokenizer Tokenizer { get; }
    public Transformer Transformer { get; }
    public ModelConfig Config => Artifact.Config;

    /// <summary>Opens a GGUF file or Hugging Face directory. Every problem with the files is a <see cref="ModelFormatException"/>.</summary>
    /// <param name="path">A .gguf file, a Hugging Face model directory, or a .safetensors file inside one.</param>
    /// <param name="kernels">"optimized" (default) or "reference".</param>
    /// <param name="threads">Worker threads for the kernels; 0 = one per core.</param>
    public static LoadedModel Load(string path, string kernels = "optimized", int threads = 0)
    {
        var artifact = ModelFiles.Open(path);
        try
        {
            var tokenizer = TokenizerFactory.For(artifact);
            if (tokenizer.VocabSize > artifact.Config.VocabSize)
            {
                throw new ModelFormatException(artifact.Path, $"the tokenizer has {tokenizer.VocabSize} tokens but the model only {artifact.Config.VocabSize} embeddings");
            }
            var threadCount = threads > 0 ? threads : Environment.ProcessorCount;
            var transformer = new Transformer(artifact.Config, artifact.Weights, KernelSet.Create(kernels, threadCount), threadCount);
            return new LoadedModel(artifact, tokenizer, transformer);
        }
        catch
        {
            artifact.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        (Transformer.Kernels as IDisposable)?.Dispose();
        Artifact.Dispose();
    }
}
