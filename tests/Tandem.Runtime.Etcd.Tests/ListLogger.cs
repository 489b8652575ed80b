using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Tandem.Runtime.Etcd.Tests;

/// <summary>Keeps every log entry so tests can assert on warnings; also echoes them to the test output.</summary>
internal sealed class ListLogger : ILogger
{
    public ConcurrentQueue<(LogLevel Level, int EventId, string Message)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var message = formatter(state, exception);
        Entries.Enqueue((logLevel, eventId.Id, message));
        try
        {
            TestContext.Current.TestOutputHelper?.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel} [{eventId.Id}] {message}");
        }
        catch (InvalidOperationException)
        {
            // The test already finished; background loops may still log.
        }
    }
}
