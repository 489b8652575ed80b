using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Tandem.Abstractions;
using Tandem.Transfer;

namespace Tandem.Benchmarks;

/// <summary>
/// One KV transfer of a 110m-preset lease (12 layers, 12 KV heads × 64, block 16; 64 blocks = 75.5 MB) over each
/// transport on loopback, push and pull, next to the physical limits measured in the same run: <c>memcpy</c> copies the
/// same bytes from the source arrays into the destination arrays on one thread, <c>tcp-raw</c> sends them over one
/// loopback socket in chunks of <see cref="KvTransferOptions.MaxChunkBytes"/> straight into the destination arrays (no
/// framing, checksums or acknowledgements). GB/s = 75,497,472 bytes ÷ mean. <c>shm</c> is the worker's case: the peer's
/// KV pool is a shared-memory file (engine layout, 128 blocks) holding the lease in 64 consecutive blocks (as a fresh
/// engine allocates them), and the client copies straight into or out of it; <c>shm-scattered</c> is the same with
/// the lease's blocks scattered (every other block, in reverse order: one copy per block, a fragmented pool);
/// <c>shm-staged</c> goes through a staging segment (two copies, what a peer with a private pool gets).
/// </summary>
[MemoryDiagnoser]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Disposed in GlobalCleanup.")]
public class KvTransferBenchmarks
{
    private static readonly KvLayout Layout = new("preset-110m", 12, 16, 12, 64);

    private ArrayKvBlockAccess _local = null!;
    private ArrayKvBlockAccess _remote = null!;
    private Tandem.Transfer.Tests.SharedPoolKvBlockAccess? _pool;
    private long _remoteHandle = 1;
    private KvTransferServer? _server;
    private IKvTransport _transport = null!;
    private string _address = "";

    private Socket? _rawSender;
    private Socket? _rawReceiver;
    private Thread? _rawThread;
    private readonly SemaphoreSlim _rawStart = new(0);
    private readonly SemaphoreSlim _rawDone = new(0);

    [Params("memcpy", "tcp-raw", "inproc", "tcp", "shm", "shm-scattered", "shm-staged")]
    public string Transport { get; set; } = "tcp";

    [Params(64)]
    public int Blocks { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _local = new ArrayKvBlockAccess(Layout, Blocks, 1);
        _remote = new ArrayKvBlockAccess(Layout, Blocks, 2);
        switch (Transport)
        {
            case "memcpy":
                break;
            case "tcp-raw":
                using (var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
                {
                    listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                    listener.Listen(1);
                    _rawSender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    _rawSender.Connect(listener.LocalEndPoint!);
                    _rawReceiver = listener.Accept();
                    _rawReceiver.NoDelay = true;
                }
                _rawThread = new Thread(RawReceiveLoop) { IsBackground = true, Name = "tcp-raw receiver" };
                _rawThread.Start();
                break;
            case "inproc":
                var inproc = new InProcessKvTransport();
                _address = inproc.Register("remote", _remote);
                _transport = inproc;
                break;
            case "tcp":
                _server = new KvTransferServer(_remote);
                _transport = new TcpKvTransport();
                _address = _server.TcpAddress;
                break;
            case "shm-staged":
                _server = new KvTransferServer(_remote);
                _transport = new SharedMemoryKvTransport(KvTransferOptions.Default with { DirectSharedMemory = false });
                _address = _server.SharedMemoryAddress;
                break;
            default:
                _pool = new Tandem.Transfer.Tests.SharedPoolKvBlockAccess(Layout, 2 * Blocks, KvTransferOptions.Default.SharedMemoryDirectory);
                _remoteHandle = _pool.AddLease(
                    Transport == "shm" ? [.. Enumerable.Range(0, Blocks)] : [.. Enumerable.Range(0, Blocks).Select(i => 2 * (Blocks - 1 - i))],
                    random: new Random(2));
                _server = new KvTransferServer(_pool);
                _transport = new SharedMemoryKvTransport();
                _address = _server.SharedMemoryAddress;
                break;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _rawSender?.Dispose();
        _rawReceiver?.Dispose();
        _rawStart.Release();
        _rawThread?.Join();
        (_transport as IAsyncDisposable)?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _pool?.Dispose();
    }

    [Benchmark]
    public Task Push() => Transport switch
    {
        "memcpy" => Memcpy(_local, _remote),
        "tcp-raw" => RawSend(_local),
        _ => _transport.PushAsync(_local, 1, _address, _remoteHandle, 0, Blocks),
    };

    [Benchmark]
    public Task Pull() => Transport switch
    {
        "memcpy" => Memcpy(_remote, _local),
        "tcp-raw" => RawSend(_local),
        _ => _transport.PullAsync(_address, _remoteHandle, _local, 1, 0, Blocks),
    };

    /// <summary>The same bytes copied once, source arrays to destination arrays, layer by layer on one thread.</summary>
    private Task Memcpy(ArrayKvBlockAccess from, ArrayKvBlockAccess to)
    {
        for (var layer = 0; layer < Layout.NumLayers; layer++)
        {
            from.Read(1, layer, 0, Blocks, to.Keys(layer), to.Values(layer));
        }
        return Task.CompletedTask;
    }

    /// <summary>The same bytes sent over one loopback socket in chunks of the transports' chunk size; the receiver thread reads them into the destination arrays.</summary>
    private Task RawSend(ArrayKvBlockAccess from)
    {
        _rawStart.Release();
        var chunk = KvTransferOptions.Default.MaxChunkBytes;
        for (var layer = 0; layer < Layout.NumLayers; layer++)
        {
            foreach (var side in (float[][])[from.Keys(layer), from.Values(layer)])
            {
                var bytes = MemoryMarshal.AsBytes(side.AsSpan());
                for (var at = 0; at < bytes.Length; at += chunk)
                {
                    var slice = bytes.Slice(at, Math.Min(chunk, bytes.Length - at));
                    while (!slice.IsEmpty)
                    {
                        slice = slice[_rawSender!.Send(slice)..];
                    }
                }
            }
        }
        _rawDone.Wait();
        return Task.CompletedTask;
    }

    private void RawReceiveLoop()
    {
        var chunk = KvTransferOptions.Default.MaxChunkBytes;
        while (true)
        {
            _rawStart.Wait();
            try
            {
                for (var layer = 0; layer < Layout.NumLayers; layer++)
                {
                    foreach (var side in (float[][])[_remote.Keys(layer), _remote.Values(layer)])
                    {
                        var bytes = MemoryMarshal.AsBytes(side.AsSpan());
                        var at = 0;
                        while (at < bytes.Length)
                        {
                            var read = _rawReceiver!.Receive(bytes.Slice(at, Math.Min(chunk, bytes.Length - at)));
                            if (read == 0)
                            {
                                return;
                            }
                            at += read;
                        }
                    }
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            _rawDone.Release();
        }
    }

    /// <summary>One lease (handle 1) of random KV in plain arrays, one array per layer and side.</summary>
    internal sealed class ArrayKvBlockAccess : IKvBlockAccess
    {
        private readonly float[][] _keys;
        private readonly float[][] _values;
        private readonly int _blocks;

        public ArrayKvBlockAccess(KvLayout layout, int blocks, int seed)
        {
            Layout = layout;
            _blocks = blocks;
            var random = new Random(seed);
            _keys = new float[layout.NumLayers][];
            _values = new float[layout.NumLayers][];
            for (var layer = 0; layer < layout.NumLayers; layer++)
            {
                _keys[layer] = new float[blocks * layout.FloatsPerBlockLayer];
                _values[layer] = new float[blocks * layout.FloatsPerBlockLayer];
                for (var i = 0; i < _keys[layer].Length; i++)
                {
                    _keys[layer][i] = random.NextSingle();
                    _values[layer][i] = random.NextSingle();
                }
            }
        }

        public KvLayout Layout { get; }

        public float[] Keys(int layer) => _keys[layer];

        public float[] Values(int layer) => _values[layer];

        public KvLeaseInfo Describe(long handle) =>
            handle == 1 ? new KvLeaseInfo(_blocks, 0, _blocks * Layout.BlockSize) : throw new KvTransferException($"unknown KV lease {handle}");

        public void Read(long handle, int layer, int first, int count, Span<float> keys, Span<float> values)
        {
            var per = Layout.FloatsPerBlockLayer;
            _keys[layer].AsSpan(first * per, count * per).CopyTo(keys);
            _values[layer].AsSpan(first * per, count * per).CopyTo(values);
        }

        public void Write(long handle, int layer, int first, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
        {
            var per = Layout.FloatsPerBlockLayer;
            keys[..(count * per)].CopyTo(_keys[layer].AsSpan(first * per));
            values[..(count * per)].CopyTo(_values[layer].AsSpan(first * per));
        }
    }
}
