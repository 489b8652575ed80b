using BenchmarkDotNet.Attributes;
using Tandem.Abstractions;
using Tandem.Transfer;

namespace Tandem.Benchmarks;

/// <summary>
/// One KV transfer of a 110m-preset lease (12 layers, 12 KV heads × 64, block 16; 64 blocks = 75.5 MB) over each
/// transport on loopback, push and pull. GB/s = 75,497,472 bytes ÷ mean.
/// </summary>
[MemoryDiagnoser]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Disposed in GlobalCleanup.")]
public class KvTransferBenchmarks
{
    private static readonly KvLayout Layout = new("preset-110m", 12, 16, 12, 64);

    private ArrayKvBlockAccess _local = null!;
    private ArrayKvBlockAccess _remote = null!;
    private KvTransferServer? _server;
    private IKvTransport _transport = null!;
    private string _address = "";

    [Params("inproc", "tcp", "shm")]
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
            default:
                _server = new KvTransferServer(_remote);
                _transport = new SharedMemoryKvTransport();
                _address = _server.SharedMemoryAddress;
                break;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        (_transport as IAsyncDisposable)?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark]
    public Task Push() => _transport.PushAsync(_local, 1, _address, 1, 0, Blocks);

    [Benchmark]
    public Task Pull() => _transport.PullAsync(_address, 1, _local, 1, 0, Blocks);

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
