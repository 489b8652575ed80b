using System.CommandLine;
using Tandem.Cli.Commands;

namespace Tandem.Cli;

internal static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    /// <summary>The whole command tree (tests invoke it in-process).</summary>
    internal static RootCommand BuildRoot()
    {
        return new RootCommand("Tandem: a disaggregated LLM inference server. Run 'tandem <command> --help' for details.")
        {
            GenerateCommand.Create(),
            ModelCommands.Create(),
            EngineBenchCommand.Create(),
            ServeCommand.Create(),
            FrontendCommand.Create(),
            DisaggCommand.Create(),
            WorkerCommand.Create(),
            BenchCommand.Create(),
            TraceCommand.Create(),
        };
    }
}
