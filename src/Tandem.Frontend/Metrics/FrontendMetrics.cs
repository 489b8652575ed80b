using Prometheus;
using Tandem.Abstractions;

namespace Tandem.Frontend.Metrics;

/// <summary>
/// The frontend's Prometheus metrics (names follow Dynamo's catalog with the <c>tandem_</c> prefix, blueprint §5) in a
/// registry of their own, so that several servers in one process (tests) do not share counters.
/// </summary>
public sealed class FrontendMetrics
{
    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 300];
    private static readonly double[] TokenBuckets = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];

    private readonly Dictionary<string, (WorkerInstance Worker, EngineStats Stats)> _latest = new(StringComparer.Ordinal);

    public FrontendMetrics()
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var f = Prometheus.Metrics.WithCustomRegistry(Registry);
        Requests = f.CreateCounter("tandem_frontend_requests_total", "Requests answered, by model, endpoint and HTTP status", ["model", "endpoint", "status"]);
        Inflight = f.CreateGauge("tandem_frontend_inflight_requests", "Requests being served now (admitted, not finished)", ["model"]);
        Queued = f.CreateGauge("tandem_frontend_queued_requests", "Admitted requests that have not received their first token yet", ["model"]);
        Disconnected = f.CreateCounter("tandem_frontend_disconnected_clients_total", "Requests whose client went away before the answer was complete", ["model"]);
        Rejected = f.CreateCounter("tandem_frontend_rejected_requests_total", "Requests turned away by admission control (429)", ["model"]);
        TimeToFirstToken = f.CreateHistogram("tandem_frontend_time_to_first_token_seconds", "Time from request arrival to the first generated token", new HistogramConfiguration { LabelNames = ["model"], Buckets = LatencyBuckets });
        InterTokenLatency = f.CreateHistogram("tandem_frontend_inter_token_latency_seconds", "Time between consecutive generated tokens of a request", new HistogramConfiguration { LabelNames = ["model"], Buckets = LatencyBuckets });
        RequestDuration = f.CreateHistogram("tandem_frontend_request_duration_seconds", "Time from request arrival to the end of the answer", new HistogramConfiguration { LabelNames = ["model"], Buckets = LatencyBuckets });
        InputSequenceTokens = f.CreateHistogram("tandem_frontend_input_sequence_tokens", "Prompt length in tokens", new HistogramConfiguration { LabelNames = ["model"], Buckets = TokenBuckets });
        OutputSequenceTokens = f.CreateHistogram("tandem_frontend_output_sequence_tokens", "Generated tokens per request", new HistogramConfiguration { LabelNames = ["model"], Buckets = TokenBuckets });
        InputTokens = f.CreateCounter("tandem_frontend_input_tokens_total", "Prompt tokens of served requests", ["model"]);
        OutputTokens = f.CreateCounter("tandem_frontend_output_tokens_total", "Generated tokens of served requests", ["model"]);
        WorkerKvUsage = f.CreateGauge("tandem_worker_kv_cache_usage_ratio", "Fraction of the worker's KV blocks in use", ["worker", "model"]);
        WorkerKvHitRatio = f.CreateGauge("tandem_worker_kv_cache_hit_ratio", "Prompt tokens served from the worker's prefix cache ÷ prompt tokens looked up", ["worker", "model"]);
        WorkerRunning = f.CreateGauge("tandem_worker_running_requests", "Sequences running on the worker", ["worker", "model"]);
        WorkerWaiting = f.CreateGauge("tandem_worker_waiting_requests", "Requests waiting in the worker's queue", ["worker", "model"]);
        WorkerRemotePrefills = f.CreateGauge("tandem_worker_remote_prefills_total", "Prompts the decode worker had prefilled by a prefill worker", ["worker", "model"]);
        WorkerLocalPrefills = f.CreateGauge("tandem_worker_local_prefills_total", "Prompts the worker prefilled itself", ["worker", "model"]);
        WorkerRemotePrefillsRefused = f.CreateGauge("tandem_worker_remote_prefills_refused_total", "Remote prefills the prefill worker refused because it could not finish them before the decode worker's deadline", ["worker", "model"]);
        WorkerPrefillBacklog = f.CreateGauge("tandem_worker_prefill_backlog_tokens", "Prompt tokens the prefill worker accepted and has not finished", ["worker", "model"]);
        WorkerPrefillFallbacks = f.CreateGauge("tandem_worker_prefill_fallbacks_total", "Remote prefills that fell back to a local prefill, by reason", ["worker", "model", "reason"]);
        WorkerPreemptions = f.CreateGauge("tandem_worker_preemptions", "Sequences preempted by the worker since start", ["worker", "model"]);
        WorkerPrefixQueried = f.CreateGauge("tandem_worker_prefix_cache_queried_tokens", "Prompt tokens looked up in the worker's prefix cache since start", ["worker", "model"]);
        WorkerPrefixHits = f.CreateGauge("tandem_worker_prefix_cache_hit_tokens", "Prompt tokens served from the worker's prefix cache since start", ["worker", "model"]);
    }

    public CollectorRegistry Registry { get; }
    public Counter Requests { get; }
    public Gauge Inflight { get; }
    public Gauge Queued { get; }
    public Counter Disconnected { get; }
    public Counter Rejected { get; }
    public Histogram TimeToFirstToken { get; }
    public Histogram InterTokenLatency { get; }
    public Histogram RequestDuration { get; }
    public Histogram InputSequenceTokens { get; }
    public Histogram OutputSequenceTokens { get; }
    public Counter InputTokens { get; }
    public Counter OutputTokens { get; }
    public Gauge WorkerKvUsage { get; }
    public Gauge WorkerKvHitRatio { get; }
    public Gauge WorkerRunning { get; }
    public Gauge WorkerWaiting { get; }
    public Gauge WorkerPreemptions { get; }
    public Gauge WorkerRemotePrefills { get; }
    public Gauge WorkerLocalPrefills { get; }
    public Gauge WorkerPrefillFallbacks { get; }
    public Gauge WorkerRemotePrefillsRefused { get; }
    public Gauge WorkerPrefillBacklog { get; }
    public Gauge WorkerPrefixQueried { get; }
    public Gauge WorkerPrefixHits { get; }

    /// <summary>Sets the worker gauges from one worker's stats (called before each scrape).</summary>
    public void SetWorker(WorkerInstance worker, EngineStats stats)
    {
        ArgumentNullException.ThrowIfNull(worker);
        ArgumentNullException.ThrowIfNull(stats);
        string[] labels = [worker.InstanceId, worker.Model];
        WorkerKvUsage.WithLabels(labels).Set(stats.KvUsage);
        WorkerKvHitRatio.WithLabels(labels).Set(stats.PrefixHitRate);
        WorkerRunning.WithLabels(labels).Set(stats.Running);
        WorkerWaiting.WithLabels(labels).Set(stats.Waiting);
        WorkerPreemptions.WithLabels(labels).Set(stats.Preemptions);
        WorkerRemotePrefills.WithLabels(labels).Set(stats.RemotePrefills);
        WorkerLocalPrefills.WithLabels(labels).Set(stats.LocalPrefills);
        WorkerRemotePrefillsRefused.WithLabels(labels).Set(stats.RemotePrefillsRefused);
        WorkerPrefillBacklog.WithLabels(labels).Set(stats.PrefillBacklogTokens);
        foreach (var (reason, count) in stats.PrefillFallbacks)
        {
            WorkerPrefillFallbacks.WithLabels(worker.InstanceId, worker.Model, reason).Set(count);
        }
        WorkerPrefixQueried.WithLabels(labels).Set(stats.PrefixQueriedTokens);
        WorkerPrefixHits.WithLabels(labels).Set(stats.PrefixHitTokens);
        lock (_latest)
        {
            _latest[worker.InstanceId] = (worker, stats);
        }
    }

    /// <summary>Drops every series of the workers not in <paramref name="live"/> (they left discovery).</summary>
    public void RetainWorkers(IReadOnlySet<string> live)
    {
        ArgumentNullException.ThrowIfNull(live);
        List<(WorkerInstance Worker, EngineStats Stats)> gone;
        lock (_latest)
        {
            gone = [.. _latest.Values.Where(w => !live.Contains(w.Worker.InstanceId))];
            foreach (var (worker, _) in gone)
            {
                _latest.Remove(worker.InstanceId);
            }
        }
        foreach (var (worker, stats) in gone)
        {
            string[] labels = [worker.InstanceId, worker.Model];
            foreach (var g in new[] { WorkerKvUsage, WorkerKvHitRatio, WorkerRunning, WorkerWaiting, WorkerPreemptions, WorkerRemotePrefills, WorkerLocalPrefills, WorkerRemotePrefillsRefused, WorkerPrefillBacklog, WorkerPrefixQueried, WorkerPrefixHits })
            {
                g.RemoveLabelled(labels);
            }
            foreach (var reason in stats.PrefillFallbacks.Keys)
            {
                WorkerPrefillFallbacks.RemoveLabelled(worker.InstanceId, worker.Model, reason);
            }
        }
    }

    /// <summary>
    /// The vLLM metric names that llm-d-style schedulers scrape (blueprint §8), as Prometheus text. Written by hand
    /// because the metrics library does not accept the colons in these names.
    /// </summary>
    public string VllmAliases()
    {
        var text = new System.Text.StringBuilder();
        (string Name, string Help, Func<EngineStats, double> Value)[] aliases =
        [
            ("vllm:num_requests_running", "Alias of tandem_worker_running_requests", s => s.Running),
            ("vllm:num_requests_waiting", "Alias of tandem_worker_waiting_requests", s => s.Waiting),
            ("vllm:kv_cache_usage_perc", "Alias of tandem_worker_kv_cache_usage_ratio", s => s.KvUsage),
        ];
        lock (_latest)
        {
            foreach (var (name, help, value) in aliases)
            {
                text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
                text.Append("# TYPE ").Append(name).Append(" gauge\n");
                foreach (var (worker, stats) in _latest.Values)
                {
                    text.Append(name).Append("{worker=\"").Append(Escape(worker.InstanceId)).Append("\",model_name=\"").Append(Escape(worker.Model)).Append("\"} ")
                        .Append(value(stats).ToString("R", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
                }
            }
        }
        return text.ToString();
    }

    private static string Escape(string label) => label.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
