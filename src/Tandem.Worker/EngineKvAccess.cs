using System.Collections.Concurrent;
using Tandem.Abstractions;
using Tandem.Engine.Serving;

namespace Tandem.Worker;

/// <summary>
/// The engine's KV memory as KV transports see it: leases the worker published for a transfer (blocks reserved for an
/// incoming push, or kept after a prefill for a pull), addressed by the lease id. When the engine's KV pool is a
/// shared-memory file, peers on the same host copy into or out of it directly under a <see cref="Pin"/>.
/// </summary>
public sealed class EngineKvAccess(ServingEngine engine, string modelFingerprint) : ISharedKvBlockAccess
{
    // A transfer copies under the entry's lock (or holds a pin while a peer copies directly), and withdrawing takes the
    // same lock and waits for the pins: once a lease is withdrawn no copy is still writing into blocks that the engine may
    // hand to another sequence.
    private readonly ConcurrentDictionary<long, Entry> _leases = new();

    public KvLayout Layout { get; } = new(modelFingerprint, engine.Config.NumLayers, engine.BlockSize, engine.Config.NumKvHeads, engine.Config.HeadDim);

    public string? PoolFile => engine.KvPoolFile;

    public int PoolBlocks => engine.KvPoolBlocks;

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
            // A peer copying directly holds a pin until it reports the end or its connection drops (the transfer
            // server bounds both with its timeouts).
            while (entry.Pins > 0)
            {
                Monitor.Wait(entry.Gate);
            }
            return entry.Lease;
        }
    }

    /// <summary>Cancelled when a transfer writing into the published lease breaks off (see <see cref="WriteFailed"/>).</summary>
    public CancellationToken WriteFailure(long handle) => _leases.TryGetValue(handle, out var entry) ? entry.WriteFailure.Token : CancellationToken.None;

    public void WriteFailed(long handle, string reason)
    {
        if (_leases.TryGetValue(handle, out var entry))
        {
            entry.FailureReason = reason;
            entry.WriteFailure.Cancel();
        }
    }

    /// <summary>Why the last transfer into the lease broke off; null when none did.</summary>
    public string? WriteFailureReason(long handle) => _leases.TryGetValue(handle, out var entry) ? entry.FailureReason : null;

    public IDisposable Pin(long handle, int first, int count, bool write, Span<int> physicalBlocks)
    {
        var entry = Get(handle);
        lock (entry.Gate)
        {
            Check(entry, handle);
            var lease = entry.Lease;
            if (first < 0 || count < 0 || first + count > lease.Blocks.Count || physicalBlocks.Length < count)
            {
                throw new KvTransferException($"blocks [{first}, {first + count}) are outside lease {handle} of {lease.Blocks.Count} blocks");
            }
            if (write && first < lease.CachedBlocks)
            {
                throw new KvTransferException($"blocks 0..{lease.CachedBlocks - 1} of lease {handle} are shared prefix-cache blocks and cannot be written");
            }
            lease.CopyPhysicalBlocks(first, count, physicalBlocks);
            entry.Pins++;
            return new PinScope(entry);
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

        /// <summary>A monitor (not a <see cref="Lock"/>): withdrawal waits on it for the pins.</summary>
        public object Gate { get; } = new();

        public bool Withdrawn { get; set; }

        public int Pins { get; set; }

        /// <summary>Cancelled when a write into the lease broke off; never disposed (it has no timer or registration of its own).</summary>
        public CancellationTokenSource WriteFailure { get; } = new();

        public string? FailureReason { get; set; }
    }

    private sealed class PinScope(Entry entry) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }
            lock (entry.Gate)
            {
                entry.Pins--;
                Monitor.PulseAll(entry.Gate);
            }
        }
    }
}
