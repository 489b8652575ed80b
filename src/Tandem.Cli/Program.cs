using System.CommandLine;

namespace Tandem.Cli;

internal static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Tandem: disaggregated LLM inference server");
        return root.Parse(args).Invoke();
    }
}
