using System.Collections.Concurrent;
using Tandem.Abstractions;
using Tandem.Engine.Serving;

namespace Tandem.Worker;

/// <summary>
/// The engine's KV memory as KV transports see it: leases the worker published for a transfer (blocks reserved for an
/// incoming push, or kept after a prefill for a pull), addressed by the lease id.
/// </summary>
public sealed class EngineKvAccess(ServingEngine engine, string modelFingerprint) : IKvBlockAccess
{
    // A transfer copies under the entry's lock, and withdrawing takes the same lock: once a lease is withdrawn no copy is
    // still writing into blocks that the engine may hand to another sequence.
    private readonly ConcurrentDictionary<long, Entry> _leases = new();

    public KvLayout Layout { get; } = new(modelFingerprint, engine.Config.NumLayers, engine.BlockSize, engine.Config.NumKvHeads, engine.Config.HeadDim);

    /// <summary>Leases published now (for tests and metrics).</summary>
    public int PublishedLeases => _leases.Count;

    /// <summary>Makes the lease reachable by transports under its id.</summary>
    public long Publish(KvBlockLease lease)
    {
        ArgumentNullException.ThrowIfNull(lease);
        foreach (var stale in _leases.Where(e => !e.Value.Lease.IsHeld).Select(e => e.Key).ToList())
        {
            _leases.TryRemove(stale, out _); // expired leases the engine already released
        }
        _leases[lease.Id] = new Entry(lease);
        return lease.Id;
    }

    /// <summary>Stops transports from reaching the lease; returns it (still held) when it was published.</summary>
    public KvBlockLease? Withdraw(long handle)
    {
        if (!_leases.TryRemove(handle, out var entry))
        {
            return null;
        }
        lock (entry.Gate)
        {
            entry.Withdrawn = true;
            return entry.Lease;
        }
    }

    public KvLeaseInfo Describe(long handle)
    {
        var lease = Get(handle).Lease;
        return new KvLeaseInfo(lease.Blocks.Count, lease.CachedBlocks, lease.Tokens);
    }

    public void Read(long handle, int layer, int first, int count, Span<float> keys, Span<float> values)
    {
        var entry = Get(handle);
        lock (entry.Gate)
        {
            Check(entry, handle);
            engine.ExportKv(entry.Lease, layer, first, count, keys, values);
        }
    }

    public void Write(long handle, int layer, int first, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        var entry = Get(handle);
        lock (entry.Gate)
        {
            Check(entry, handle);
            try
            {
                engine.ImportKv(entry.Lease, layer, first, count, keys, values);
            }
            catch (InvalidOperationException e)
            {
                throw new KvTransferException(e.Message, e);
            }
        }
    }

    private Entry Get(long handle) =>
        _leases.TryGetValue(handle, out var entry) ? entry : throw Unknown(handle);

    private static void Check(Entry entry, long handle)
    {
        if (entry.Withdrawn || !entry.Lease.IsHeld)
        {
            throw Unknown(handle);
        }
    }

    private static KvTransferException Unknown(long handle) => new($"KV lease {handle} is unknown, expired or released on this worker");

    private sealed class Entry(KvBlockLease lease)
    {
        public KvBlockLease Lease { get; } = lease;
        public Lock Gate { get; } = new();
        public bool Withdrawn { get; set; }
    }
}
