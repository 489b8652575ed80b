using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// KV transfer between workers of one process (`tandem serve --mode disagg`): a copy through a pooled buffer, layer by
/// layer, after the same layout check the network transports do. Workers register their KV memory under
/// <c>inproc://name</c>.
/// </summary>
public sealed class InProcessKvTransport : IKvTransport
{
    public const string Scheme = "inproc://";

    private readonly ConcurrentDictionary<string, IKvBlockAccess> _workers = new(StringComparer.Ordinal);

    /// <summary>Makes <paramref name="access"/> reachable at <c>inproc://name</c>; returns the address.</summary>
    public string Register(string name, IKvBlockAccess access)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(access);
        var address = Scheme + name;
        _workers[address] = access;
        return address;
    }

    public void Unregister(string address) => _workers.TryRemove(address, out _);

    public bool Supports(string address) => address is not null && address.StartsWith(Scheme, StringComparison.Ordinal);

    public Task PushAsync(IKvBlockAccess source, long sourceHandle, string destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        Copy(source, sourceHandle, Resolve(destination), destinationHandle, first, count, "push", cancellationToken);
        return Task.CompletedTask;
    }

    public Task PullAsync(string source, long sourceHandle, IKvBlockAccess destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        Copy(Resolve(source), sourceHandle, destination, destinationHandle, first, count, "pull", cancellationToken);
        return Task.CompletedTask;
    }

    private IKvBlockAccess Resolve(string address) =>
        _workers.TryGetValue(address, out var access) ? access : throw new KvTransferException($"no KV endpoint at {address} in this process");

    /// <summary>Checks layouts and ranges, then copies layer by layer (the shared code path of every transport's ends).</summary>
    internal static void Copy(IKvBlockAccess from, long fromHandle, IKvBlockAccess to, long toHandle, int first, int count, string direction, CancellationToken cancellationToken)
    {
        if (from.Layout.Mismatch(to.Layout) is { } mismatch)
        {
            throw new KvTransferException(mismatch);
        }
        KvTransferChecks.Range(from.Describe(fromHandle), first, count, "source");
        KvTransferChecks.Range(to.Describe(toHandle), first, count, "destination");
        var start = Stopwatch.GetTimestamp();
        var floats = count * from.Layout.FloatsPerBlockLayer;
        var keys = ArrayPool<float>.Shared.Rent(floats);
        var values = ArrayPool<float>.Shared.Rent(floats);
        try
        {
            for (var layer = 0; layer < from.Layout.NumLayers; layer++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                from.Read(fromHandle, layer, first, count, keys.AsSpan(0, floats), values.AsSpan(0, floats));
                to.Write(toHandle, layer, first, count, keys.AsSpan(0, floats), values.AsSpan(0, floats));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(keys);
            ArrayPool<float>.Shared.Return(values);
        }
        KvTransferMetrics.Record("inproc", direction, count * from.Layout.BytesPerBlock, Stopwatch.GetElapsedTime(start));
    }
}

/// <summary>Argument checks shared by the transports.</summary>
public static class KvTransferChecks
{
    public static void Range(KvLeaseInfo lease, int first, int count, string side)
    {
        if (first < 0 || count < 0 || first + count > lease.Blocks)
        {
            throw new KvTransferException($"blocks [{first}, {first + count}) are outside the {side} lease of {lease.Blocks} blocks");
        }
    }

    /// <summary>Range check for a destination, which must also not overlap the lease's cached (shared, read-only) blocks.</summary>
    public static void Writable(KvLeaseInfo lease, long handle, int first, int count)
    {
        Range(lease, first, count, "destination");
        if (count > 0 && first < lease.CachedBlocks)
        {
            throw new KvTransferException($"blocks [{first}, {first + count}) of lease {handle} overlap its {lease.CachedBlocks} cached (shared) blocks, which are read-only");
        }
    }
}
