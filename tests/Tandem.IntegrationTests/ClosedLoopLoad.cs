using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace Tandem.IntegrationTests;

/// <summary>
/// A small closed-loop load generator for the fault and scaling tests: <c>clients</c> loops each send a streamed
/// completion, read it to the end and send the next, until stopped. A request counts as failed when the status is
/// not 200, the stream carries an error event, it does not end with <c>[DONE]</c> after a finish reason, or it takes
/// longer than <see cref="RequestTimeout"/> (a hang). Failures keep their reason for the assertion message.
/// </summary>
public sealed class ClosedLoopLoad : IAsyncDisposable
{
    private readonly HttpClient _http;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly ConcurrentQueue<string> _failures = new();
    private readonly ConcurrentQueue<(DateTime At, TimeSpan Duration)> _completed = new();
    private long _succeeded;

    /// <param name="url">The frontend.</param>
    /// <param name="clients">Requests in flight at any time.</param>
    /// <param name="prompt">Function of the loop and its request number that gives the prompt.</param>
    /// <param name="maxTokens">Tokens generated per request.</param>
    public ClosedLoopLoad(Uri url, int clients, Func<int, long, string> prompt, int maxTokens = 24)
    {
        _http = new HttpClient { BaseAddress = url, Timeout = Timeout.InfiniteTimeSpan };
        for (var c = 0; c < clients; c++)
        {
            var client = c;
            _loops.Add(Task.Run(() => LoopAsync(client, prompt, maxTokens)));
        }
    }

    /// <summary>A request slower than this counts as failed (no hang goes unnoticed); generous for a loaded machine.</summary>
    public static TimeSpan RequestTimeout { get; } = TimeSpan.FromSeconds(60);

    public long Succeeded => Interlocked.Read(ref _succeeded);

    public int Failed => _failures.Count;

    public IReadOnlyCollection<string> Failures => _failures;

    /// <summary>Requests that succeeded, with when they ended and how long they took.</summary>
    public IReadOnlyCollection<(DateTime At, TimeSpan Duration)> Completed => _completed;

    /// <summary>Waits until <paramref name="count"/> more requests succeeded than when called (fails after the timeout).</summary>
    public async Task WaitForMoreAsync(int count, TimeSpan timeout)
    {
        var target = Succeeded + count;
        var stopwatch = Stopwatch.StartNew();
        while (Succeeded < target)
        {
            if (stopwatch.Elapsed > timeout)
            {
                Assert.Fail($"only {Succeeded - target + count} of {count} requests succeeded within {timeout}; failures: {Describe()}");
            }
            await Task.Delay(50);
        }
    }

    /// <summary>Stops the loops after their current request and returns when all ended.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops).WaitAsync(RequestTimeout + TimeSpan.FromSeconds(30));
    }

    public string Describe() => $"{Succeeded} succeeded, {Failed} failed: {string.Join(" | ", _failures.Take(5))}";

    private async Task LoopAsync(int client, Func<int, long, string> prompt, int maxTokens)
    {
        for (long n = 0; !_stop.IsCancellationRequested; n++)
        {
            var stopwatch = Stopwatch.StartNew();
            var failure = await OneAsync(prompt(client, n), maxTokens);
            if (failure is null)
            {
                Interlocked.Increment(ref _succeeded);
                _completed.Enqueue((DateTime.UtcNow, stopwatch.Elapsed));
            }
            else
            {
                _failures.Enqueue($"client {client} request {n} after {stopwatch.Elapsed.TotalSeconds:0.0} s: {failure}");
            }
        }
    }

    private async Task<string?> OneAsync(string prompt, int maxTokens)
    {
        using var timeout = new CancellationTokenSource(RequestTimeout);
        var body = $$"""{"model":"stories260K","prompt":"{{prompt}}","max_tokens":{{maxTokens}},"temperature":0,"ignore_eos":true,"stream":true}""";
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var text = await response.Content.ReadAsStringAsync(timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                return $"status {(int)response.StatusCode}: {Short(text)}";
            }
            if (text.Contains("\"error\"", StringComparison.Ordinal))
            {
                return "error event: " + Short(text);
            }
            if (!text.Contains("\"finish_reason\":\"length\"", StringComparison.Ordinal) || !text.TrimEnd().EndsWith("[DONE]", StringComparison.Ordinal))
            {
                return "incomplete stream: " + Short(text);
            }
            return null;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return $"no answer within {RequestTimeout.TotalSeconds:0} s";
        }
        catch (HttpRequestException e)
        {
            return "connection: " + e.Message;
        }
    }

    private static string Short(string text) => text.Length > 300 ? text[..150] + " ... " + text[^150..] : text;

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
            try
            {
                await Task.WhenAll(_loops).WaitAsync(RequestTimeout + TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                // Reported by the test's own assertions.
            }
        }
        _http.Dispose();
        _stop.Dispose();
    }
}
