using Tandem.Abstractions;

namespace Tandem.Worker;

/// <summary>What a worker needs besides its engine to take part in disaggregated serving.</summary>
public sealed record WorkerServices
{
    /// <summary>The event plane: the prefill queue (request-reply with queue group "prefill").</summary>
    public required IEventBus Bus { get; init; }

    /// <summary>Transports for KV pushes and pulls; the first that supports an address is used.</summary>
    public required IReadOnlyList<IKvTransport> Transports { get; init; }

    /// <summary>This worker's KV address (where transports reach its <see cref="EngineKvAccess"/>).</summary>
    public required string KvAddress { get; init; }

    /// <summary>Which workers are alive (a decode worker prefills locally when no prefill worker is).</summary>
    public IDiscovery? Discovery { get; init; }

    public DisaggregationOptions Options { get; init; } = new();

    public IKvTransport TransportFor(string address) =>
        Transports.FirstOrDefault(t => t.Supports(address)) ?? throw new KvTransferException($"no KV transport for address '{address}'");
}
