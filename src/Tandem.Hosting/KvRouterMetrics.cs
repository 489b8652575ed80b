using Prometheus;
using Tandem.Abstractions;
using Tandem.Routing.Kv;

namespace Tandem.Hosting;

/// <summary>
/// The `kv` router's event-plane metrics on the frontend's <c>/metrics</c>: KV events received, applied and dropped,
/// gaps and snapshot resyncs, blocks indexed, and whether the event bus is connected. Read from the subscriber just
/// before each scrape.
/// </summary>
public static class KvRouterMetrics
{
    public static void Register(CollectorRegistry registry, KvEventSubscriber subscriber, IEventBus bus)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(subscriber);
        ArgumentNullException.ThrowIfNull(bus);
        var f = Metrics.WithCustomRegistry(registry);
        var received = f.CreateGauge("tandem_router_kv_events_received_total", "KV events the router received from workers");
        var applied = f.CreateGauge("tandem_router_kv_events_applied_total", "KV events applied to the router's index");
        var dropped = f.CreateGauge("tandem_router_kv_events_dropped_total", "KV events not applied because their worker was out of sync (missed events, no snapshot yet)");
        var malformed = f.CreateGauge("tandem_router_kv_event_messages_malformed_total", "Event-bus messages of KV events or load that did not decode");
        var gaps = f.CreateGauge("tandem_router_kv_event_gaps_total", "Gaps in a worker's KV event ids (events missed, e.g. during an event-bus outage)");
        var resyncs = f.CreateGauge("tandem_router_kv_resyncs_total", "Worker KV snapshots applied after a gap");
        var blocks = f.CreateGauge("tandem_router_kv_indexed_blocks", "Distinct KV blocks in the router's index");
        var connected = f.CreateGauge("tandem_router_event_bus_connected", "1 while the router's event bus (NATS) is connected");
        registry.AddBeforeCollectCallback(() =>
        {
            var (appliedCount, gapCount, resyncCount, malformedCount) = subscriber.Counters;
            received.Set(subscriber.Received);
            applied.Set(appliedCount);
            dropped.Set(subscriber.Dropped);
            malformed.Set(malformedCount);
            gaps.Set(gapCount);
            resyncs.Set(resyncCount);
            blocks.Set(subscriber.Indexer.BlockCount);
            connected.Set(bus.IsConnected ? 1 : 0);
        });
    }
}
