namespace Tandem.Engine.Models;

/// <summary>A model file or directory that cannot be used: the message names the file and the problem.</summary>
public sealed class ModelFormatException : Exception
{
    public ModelFormatException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        FilePath = path;
        Problem = problem;
    }

    public ModelFormatException()
        : this("", "invalid model")
    {
    }

    public ModelFormatException(string message)
        : this("", message)
    {
    }

    public ModelFormatException(string message, Exception inner)
        : this("", message, inner)
    {
    }

    public string FilePath { get; }
    public string Problem { get; }
}
