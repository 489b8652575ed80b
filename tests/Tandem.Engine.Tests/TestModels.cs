namespace Tandem.Tests;

/// <summary>Locates the real test models (../shared/models beside the repository, or $TANDEM_TEST_MODELS).</summary>
internal static class TestModels
{
    public static string ModelsDirectory
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("TANDEM_TEST_MODELS");
            if (!string.IsNullOrEmpty(env))
            {
                return env;
            }
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Tandem.slnx")))
            {
                dir = dir.Parent;
            }
            return dir is null ? "../shared/models" : Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "models"));
        }
    }

    /// <summary>Path of stories260K.gguf; skips the test when absent locally, fails it in CI.</summary>
    public static string Stories260K
    {
        get
        {
            var path = Path.Combine(ModelsDirectory, "stories260K", "stories260K.gguf");
            if (!File.Exists(path))
            {
                var message = $"test model not found at {path} (set TANDEM_TEST_MODELS)";
                if (Environment.GetEnvironmentVariable("CI") == "true")
                {
                    Assert.Fail(message);
                }
                Assert.Skip(message);
            }
            return path;
        }
    }

    /// <summary>A fresh temporary directory removed when disposed.</summary>
    public static TempDirectory CreateTempDirectory() => new();

    internal sealed class TempDirectory : IDisposable
    {
        public TempDirectory()
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tandem-test-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Path);
        }

        public string Path { get; }

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
