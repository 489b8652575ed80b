using System.CommandLine;
using Tandem.Cli.Commands;

namespace Tandem.Cli;

internal static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Tandem: a disaggregated LLM inference server. Run 'tandem <command> --help' for details.")
        {
            GenerateCommand.Create(),
            ModelCommands.Create(),
        };
        return root.Parse(args).Invoke();
    }
}
