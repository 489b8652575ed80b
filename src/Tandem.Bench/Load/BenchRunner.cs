using Tandem.Bench.Http;
using Tandem.Bench.Metrics;
using Tandem.Bench.Workloads;

namespace Tandem.Bench.Load;

/// <summary>Receives progress while a run goes on (called concurrently from request completions).</summary>
public interface IBenchProgress
{
    /// <summary>The measured phase starts; <paramref name="total"/> is null when the run is bounded by duration only.</summary>
    void MeasurementStarted(int? total, TimeSpan? duration);

    void RequestCompleted(RequestRecord record, int completed, int failed);
}

/// <summary>The outcome of one run: its settings, the measured requests and how long the measured phase took.</summary>
public sealed record BenchResult(BenchOptions Options, IReadOnlyList<RequestRecord> Records, double DurationSeconds, int WarmupRequests, int WarmupFailures, bool Interrupted, DateTimeOffset StartedAt);

/// <summary>
/// Drives a run: warm-up requests (not measured), then the measured phase as a closed loop (C workers, each sending the
/// next request as soon as its previous one finished), an open loop (gamma-distributed arrivals at a mean rate, at most
/// C in flight when C is given) or a trace replay (send times from the trace). It stops issuing at the request count or
/// duration, lets in-flight requests finish (each bounded by the timeout), and on cancellation aborts in-flight requests
/// and returns what completed.
/// </summary>
public static class BenchRunner
{
    public static async Task<BenchResult> RunAsync(BenchOptions options, IBenchProgress? progress = null, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        time ??= TimeProvider.System;
        var prompts = new PromptFactory(options.PromptFormat, options.TokensPerWord, options.VocabSize);
        IWorkload workload = options.TracePath is { } trace
            ? new TraceWorkload(TraceWorkload.Load(trace), prompts, options.TraceBlockSize, options.Speedup, options.Seed)
            : new SyntheticWorkload(prompts, options.Seed, options.InputLength, options.InputLengthStddev, options.OutputLength, options.OutputLengthStddev, options.PrefixLength, options.NumPrefixes);
        var limit = options.Concurrency ?? (options.IsOpenLoop ? int.MaxValue : 1);
        using var client = new OpenAiClient(options, time, limit == int.MaxValue ? 1024 : limit);

        var warmupFailures = 0;
        if (options.WarmupRequests > 0 && !cancellationToken.IsCancellationRequested)
        {
            var warmup = new SyntheticWorkload(prompts, Seeds.Mix(options.Seed, Seeds.Warmup), options.InputLength, options.InputLengthStddev, options.OutputLength, options.OutputLengthStddev);
            var warmupRecords = await ClosedLoopAsync(client, warmup.Requests().Take(options.WarmupRequests), Math.Min(options.WarmupRequests, limit == int.MaxValue ? options.WarmupRequests : limit), null, time, time.GetTimestamp(), null, cancellationToken).ConfigureAwait(false);
            warmupFailures = warmupRecords.Count(r => !r.Success);
        }

        var startedAt = time.GetUtcNow();
        var origin = time.GetTimestamp();
        var total = options.EffectiveRequests;
        var requests = workload.Requests();
        if (total is { } n)
        {
            requests = requests.Take(n);
        }
        if (workload is TraceWorkload traceWorkload)
        {
            total = Math.Min(total ?? int.MaxValue, traceWorkload.Count);
        }
        progress?.MeasurementStarted(total, options.Duration);
        var tracker = new Tracker(progress);
        IReadOnlyList<RequestRecord> records;
        if (options.IsOpenLoop)
        {
            if (!workload.HasSchedule)
            {
                requests = Schedule(requests, new Random(Seeds.Mix(options.Seed, 0x52415445)), options.RequestRate!.Value, options.Burstiness);
            }
            records = await OpenLoopAsync(client, requests, options.Concurrency, options.Duration, time, origin, tracker, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            records = await ClosedLoopAsync(client, requests, limit, options.Duration, time, origin, tracker, cancellationToken).ConfigureAwait(false);
        }
        var end = records.Count == 0 ? 0 : records.Max(r => r.StartMs + r.E2eMs);
        var duration = Math.Max(end, time.GetElapsedTime(origin).TotalMilliseconds) / 1000.0;
        return new BenchResult(options, [.. records.OrderBy(r => r.Index)], duration, options.WarmupRequests, warmupFailures, cancellationToken.IsCancellationRequested, startedAt);
    }

    /// <summary>Gives requests send times with gamma-distributed gaps (mean 1/rate); the first request goes at time zero.</summary>
    internal static IEnumerable<BenchRequest> Schedule(IEnumerable<BenchRequest> requests, Random random, double rate, double burstiness)
    {
        var at = 0.0;
        var first = true;
        foreach (var request in requests)
        {
            if (!first)
            {
                at += Distributions.InterArrival(random, rate, burstiness);
            }
            first = false;
            yield return request with { ScheduledAt = TimeSpan.FromSeconds(at) };
        }
    }

    private static async Task<IReadOnlyList<RequestRecord>> ClosedLoopAsync(OpenAiClient client, IEnumerable<BenchRequest> requests, int concurrency, TimeSpan? duration, TimeProvider time, long origin, Tracker? tracker, CancellationToken cancellationToken)
    {
        using var enumerator = requests.GetEnumerator();
        var gate = new Lock();
        var records = new List<RequestRecord>();
        async Task Worker()
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                BenchRequest request;
                lock (gate)
                {
                    if ((duration is { } d && time.GetElapsedTime(origin) >= d) || !enumerator.MoveNext())
                    {
                        return;
                    }
                    request = enumerator.Current;
                }
                var record = await client.SendAsync(request, origin, cancellationToken).ConfigureAwait(false);
                lock (gate)
                {
                    records.Add(record);
                }
                tracker?.Completed(record);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, concurrency)).Select(_ => Task.Run(Worker, CancellationToken.None))).ConfigureAwait(false);
        return records;
    }

    private static async Task<IReadOnlyList<RequestRecord>> OpenLoopAsync(OpenAiClient client, IEnumerable<BenchRequest> requests, int? concurrency, TimeSpan? duration, TimeProvider time, long origin, Tracker tracker, CancellationToken cancellationToken)
    {
        using var slots = concurrency is { } c ? new SemaphoreSlim(c, c) : null;
        var inFlight = new List<Task<RequestRecord>>();
        try
        {
            foreach (var request in requests)
            {
                var at = request.ScheduledAt ?? TimeSpan.Zero;
                if (duration is { } d && at >= d)
                {
                    break;
                }
                var wait = at - time.GetElapsedTime(origin);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, time, cancellationToken).ConfigureAwait(false);
                }
                if (slots is not null)
                {
                    await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                inFlight.Add(SendAsync(request));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stop issuing; in-flight requests see the same token and finish as cancelled.
        }
        return await Task.WhenAll(inFlight).ConfigureAwait(false);

        async Task<RequestRecord> SendAsync(BenchRequest request)
        {
            try
            {
                var record = await client.SendAsync(request, origin, cancellationToken).ConfigureAwait(false);
                tracker.Completed(record);
                return record;
            }
            finally
            {
                slots?.Release();
            }
        }
    }

    private sealed class Tracker(IBenchProgress? progress)
    {
        private int _completed;
        private int _failed;

        public void Completed(RequestRecord record)
        {
            if (record.ErrorKind == "cancelled")
            {
                return;
            }
            var failed = record.Success ? Volatile.Read(ref _failed) : Interlocked.Increment(ref _failed);
            var completed = Interlocked.Increment(ref _completed);
            progress?.RequestCompleted(record, completed, failed);
        }
    }
}
