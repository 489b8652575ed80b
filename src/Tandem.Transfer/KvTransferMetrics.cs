using System.Diagnostics.Metrics;

namespace Tandem.Transfer;

/// <summary>
/// Transfer sizes and durations (blueprint §5: <c>tandem_kv_transfer_bytes_total</c>, <c>tandem_kv_transfer_seconds</c>),
/// as System.Diagnostics.Metrics instruments that exporters and tests can listen to, plus totals for quick reads.
/// </summary>
public static class KvTransferMetrics
{
    public const string MeterName = "Tandem.Transfer";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> BytesCounter = Meter.CreateCounter<long>("tandem_kv_transfer_bytes_total", "By", "KV bytes moved between workers");
    private static readonly Histogram<double> Seconds = Meter.CreateHistogram<double>("tandem_kv_transfer_seconds", "s", "Duration of one KV transfer");
    private static long _bytes;
    private static long _transfers;

    public static long TotalBytes => Interlocked.Read(ref _bytes);

    public static long TotalTransfers => Interlocked.Read(ref _transfers);

    public static void Record(string transport, string direction, long bytes, TimeSpan duration)
    {
        Interlocked.Add(ref _bytes, bytes);
        Interlocked.Increment(ref _transfers);
        var tags = new KeyValuePair<string, object?>[] { new("transport", transport), new("direction", direction) };
        BytesCounter.Add(bytes, tags);
        Seconds.Record(duration.TotalSeconds, tags);
    }
}
