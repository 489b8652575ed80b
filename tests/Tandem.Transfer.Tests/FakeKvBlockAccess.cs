using System.Buffers;
using System.Collections.Concurrent;
using Tandem.Abstractions;

namespace Tandem.Transfer.Tests;

/// <summary>
/// Array-backed KV memory: leases of blocks whose leading <c>cached</c> blocks are read-only, as in the engine. Counts
/// reads and writes and lets a test run code before a layer is read or written.
/// </summary>
internal sealed class FakeKvBlockAccess(KvLayout layout) : IKvBlockAccess
{
    private sealed record Lease(int Blocks, int Cached, float[][] Keys, float[][] Values);

    private readonly ConcurrentDictionary<long, Lease> _leases = new();
    private long _nextHandle = 100;
    private int _reads;
    private int _writes;

    public KvLayout Layout { get; } = layout;

    public int Reads => Volatile.Read(ref _reads);

    public int Writes => Volatile.Read(ref _writes);

    /// <summary>Called with the layer before a read (source side).</summary>
    public Action<int>? BeforeRead { get; set; }

    /// <summary>Called with the layer before a write (destination side).</summary>
    public Action<int>? BeforeWrite { get; set; }

    /// <summary>A lease of <paramref name="blocks"/> blocks, filled with random floats when <paramref name="random"/> is given (else zeros).</summary>
    public long AddLease(int blocks, int cached = 0, Random? random = null)
    {
        var floats = blocks * Layout.FloatsPerBlockLayer;
        var keys = new float[Layout.NumLayers][];
        var values = new float[Layout.NumLayers][];
        for (var layer = 0; layer < Layout.NumLayers; layer++)
        {
            keys[layer] = new float[floats];
            values[layer] = new float[floats];
            if (random is not null)
            {
                for (var i = 0; i < floats; i++)
                {
                    keys[layer][i] = random.NextSingle() * 2 - 1;
                    values[layer][i] = random.NextSingle() * 2 - 1;
                }
            }
        }
        var handle = Interlocked.Increment(ref _nextHandle);
        _leases[handle] = new Lease(blocks, cached, keys, values);
        return handle;
    }

    public void Release(long handle) => _leases.TryRemove(handle, out _);

    public KvLeaseInfo Describe(long handle) =>
        _leases.TryGetValue(handle, out var lease)
            ? new KvLeaseInfo(lease.Blocks, lease.Cached, lease.Blocks * Layout.BlockSize)
            : throw new KvTransferException($"unknown KV lease {handle}");

    public void Read(long handle, int layer, int first, int count, Span<float> keys, Span<float> values)
    {
        BeforeRead?.Invoke(layer);
        var lease = Get(handle, first, count);
        var per = Layout.FloatsPerBlockLayer;
        lease.Keys[layer].AsSpan(first * per, count * per).CopyTo(keys);
        lease.Values[layer].AsSpan(first * per, count * per).CopyTo(values);
        Interlocked.Increment(ref _reads);
    }

    public void Write(long handle, int layer, int first, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        BeforeWrite?.Invoke(layer);
        var lease = Get(handle, first, count);
        if (first < lease.Cached)
        {
            throw new KvTransferException($"block {first} of lease {handle} is a cached (shared) block and cannot be written");
        }
        var per = Layout.FloatsPerBlockLayer;
        keys[..(count * per)].CopyTo(lease.Keys[layer].AsSpan(first * per));
        values[..(count * per)].CopyTo(lease.Values[layer].AsSpan(first * per));
        Interlocked.Increment(ref _writes);
    }

    private Lease Get(long handle, int first, int count)
    {
        if (!_leases.TryGetValue(handle, out var lease))
        {
            throw new KvTransferException($"unknown KV lease {handle}");
        }
        if (first < 0 || count < 0 || first + count > lease.Blocks)
        {
            throw new KvTransferException($"blocks [{first}, {first + count}) outside lease {handle}");
        }
        return lease;
    }

    /// <summary>True when blocks [first, first+count) of every layer are bitwise equal in both leases.</summary>
    public bool SameBlocks(long handle, FakeKvBlockAccess other, long otherHandle, int first, int count)
    {
        var a = _leases[handle];
        var b = other._leases[otherHandle];
        var per = Layout.FloatsPerBlockLayer;
        for (var layer = 0; layer < Layout.NumLayers; layer++)
        {
            if (!a.Keys[layer].AsSpan(first * per, count * per).SequenceEqual(b.Keys[layer].AsSpan(first * per, count * per)) ||
                !a.Values[layer].AsSpan(first * per, count * per).SequenceEqual(b.Values[layer].AsSpan(first * per, count * per)))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>True when blocks [first, first+count) are all zero (never written).</summary>
    public bool IsZero(long handle, int first, int count)
    {
        var a = _leases[handle];
        var per = Layout.FloatsPerBlockLayer;
        for (var layer = 0; layer < Layout.NumLayers; layer++)
        {
            if (a.Keys[layer].AsSpan(first * per, count * per).ContainsAnyExcept(0f) || a.Values[layer].AsSpan(first * per, count * per).ContainsAnyExcept(0f))
            {
                return false;
            }
        }
        return true;
    }
}

/// <summary>An array pool that counts arrays rented and not yet returned.</summary>
internal sealed class CountingFloatPool : ArrayPool<float>
{
    private int _outstanding;
    private int _rented;

    public int Outstanding => Volatile.Read(ref _outstanding);

    public int Rented => Volatile.Read(ref _rented);

    public override float[] Rent(int minimumLength)
    {
        Interlocked.Increment(ref _outstanding);
        Interlocked.Increment(ref _rented);
        return Shared.Rent(minimumLength);
    }

    public override void Return(float[] array, bool clearArray = false)
    {
        Interlocked.Decrement(ref _outstanding);
        Shared.Return(array, clearArray);
    }
}

/// <summary>Layouts and helpers the tests share.</summary>
internal static class TestLayouts
{
    /// <summary>Tiny blocks (512 bytes per block and layer): many chunks with a small chunk size.</summary>
    public static readonly KvLayout Small = new("test-model-1", 3, 4, 2, 8);

    /// <summary>32 KiB per block and layer, 4 layers.</summary>
    public static readonly KvLayout Medium = new("test-model-1", 4, 16, 4, 64);

    /// <summary>The 110m preset: 12 layers, 12 KV heads × 64, block 16 (96 KiB per block and layer).</summary>
    public static readonly KvLayout Preset110m = new("preset-110m", 12, 16, 12, 64);

    public static async Task WaitUntilAsync(Func<bool> condition, string what, int timeoutMs = 5000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline)
            {
                Assert.Fail($"timed out waiting until {what}");
            }
            await Task.Delay(10);
        }
    }
}
