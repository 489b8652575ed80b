using Tandem.ChatTemplates;
using Tandem.Engine.Models;
using Tandem.Engine.Tokenizers;
using Tandem.Frontend.Models;

namespace Tandem.Hosting;

/// <summary>Where served models come from: a user's path, or the built-in random-weight demo model.</summary>
public static class ModelSource
{
    /// <summary>The name of the demo model `tandem serve` uses when no --model is given.</summary>
    public const string DemoModelName = "tandem-demo";

    /// <summary>
    /// Writes (once) and returns the demo model: the `small` preset with random weights and the built-in vocabulary.
    /// It exists so that a first `tandem serve` answers at once; its text is meaningless.
    /// </summary>
    public static string EnsureDemoModel(string? cacheDirectory = null)
    {
        var dir = cacheDirectory ?? Path.Combine(
            Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
            "tandem");
        var path = Path.Combine(dir, "tandem-demo-small-v1.gguf");
        if (File.Exists(path))
        {
            return path;
        }
        Directory.CreateDirectory(dir);
        // Write beside and rename, so a concurrent start never maps a half-written file.
        var temp = path + "." + Environment.ProcessId + ".tmp";
        ModelInitializer.Write(temp, new ModelInitOptions { Preset = ModelPresets.Small, Seed = 1 });
        File.Move(temp, path, overwrite: true);
        return path;
    }

    /// <summary>
    /// What the frontend needs of a loaded model to serve it under <paramref name="name"/>. A chat template that does
    /// not parse is reported through <paramref name="warn"/> and replaced by the default one, so completions still work.
    /// </summary>
    public static ServedModel Describe(LoadedModel model, string name, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Describe(model.Artifact, model.Tokenizer, name, warn);
    }

    /// <summary>The same from the model's files and tokenizer alone (a frontend computes nothing, so it builds no kernels).</summary>
    public static ServedModel Describe(ModelArtifact artifact, Tokenizer tokenizer, string name, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(artifact);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var defaults = artifact.GenerationDefaults;
        var template = ChatTemplate.Default;
        if (artifact.ChatTemplate is { Length: > 0 } source)
        {
            try
            {
                template = ChatTemplate.Parse(source);
            }
            catch (ChatTemplateException e)
            {
                warn?.Invoke($"the chat template of {artifact.Path} does not parse ({e.Message}); using the default ChatML template");
            }
        }
        return new ServedModel
        {
            Name = name,
            Tokenizer = tokenizer,
            ContextLength = artifact.Config.ContextLength,
            ChatTemplate = template,
            EosTokenIds = defaults.EosTokenIds,
            DefaultTemperature = defaults.Temperature,
            DefaultTopP = defaults.TopP,
            DefaultTopK = defaults.TopK,
            DefaultRepetitionPenalty = defaults.RepetitionPenalty,
        };
    }

    /// <summary>Weights and KV layout identity: architecture, shapes and the weight file's size and name.</summary>
    public static string Fingerprint(LoadedModel model)
    {
        var c = model.Config;
        var text = $"{c.Architecture}|{c.NumLayers}|{c.HiddenSize}|{c.NumKvHeads}|{c.HeadDim}|{c.VocabSize}|{model.Artifact.Name}|{model.Artifact.Weights.TotalBytes}";
        return Convert.ToHexStringLower(System.IO.Hashing.XxHash3.Hash(System.Text.Encoding.UTF8.GetBytes(text)));
    }
}
