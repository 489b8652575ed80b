using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Tandem.Abstractions;

namespace Tandem.Transfer.Tests;

public class KvTransferServerFuzzTests
{
    private static readonly KvTransferOptions FastOptions = new() { ChunkTimeout = TimeSpan.FromSeconds(2), MaxFrameBytes = 8 << 20 };

    private static byte[] Frame(KvFrameType type, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[KvFrames.HeaderBytes + payload.Length];
        KvFrames.WriteHeader(frame, type, payload.Length);
        payload.CopyTo(frame.AsSpan(KvFrames.HeaderBytes));
        return frame;
    }

    private static byte[] Hello(KvLayout layout) => Frame(KvFrameType.Hello, KvFrames.EncodeHello(layout));

    /// <summary>Sends <paramref name="bytes"/>, half-closes, and reads until the server closes; fails if it does not within 5 s.</summary>
    private static async Task<byte[]> ExchangeAsync(IPEndPoint server, byte[] bytes)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server);
        try
        {
            await socket.SendAsync(bytes, SocketFlags.None);
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var received = new List<byte>();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                if (read == 0)
                {
                    break;
                }
                received.AddRange(buffer.AsSpan(0, read));
            }
        }
        catch (SocketException)
        {
        }
        catch (OperationCanceledException)
        {
            Assert.Fail("the server neither answered nor closed the connection within 5 s");
        }
        return [.. received];
    }

    private static (KvErrorCode Code, string Message)? ErrorIn(byte[] received)
    {
        var buffer = new ReadOnlySequence<byte>(received);
        while (KvFrames.TryParse(buffer, int.MaxValue, out var type, out var payload))
        {
            if (type == KvFrameType.Error)
            {
                return KvFrames.DecodeError(payload);
            }
            buffer = buffer.Slice(payload.End);
        }
        return null;
    }

    private static async Task AssertStillServesAsync(KvTransferServer server, FakeKvBlockAccess destination)
    {
        var source = new FakeKvBlockAccess(destination.Layout);
        var sourceLease = source.AddLease(3, random: new Random(99));
        var destinationLease = destination.AddLease(3);
        await using var transport = new TcpKvTransport();
        await transport.PushAsync(source, sourceLease, server.TcpAddress, destinationLease, 0, 3, TestContext.Current.CancellationToken);
        Assert.True(source.SameBlocks(sourceLease, destination, destinationLease, 0, 3));
    }

    [Fact]
    public async Task Server_RandomBytes_ClosesEveryConnectionAndKeepsServing()
    {
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(destination, options: FastOptions);
        var random = new Random(20261122);

        for (var i = 0; i < 150; i++)
        {
            var bytes = new byte[random.Next(0, 3000)];
            random.NextBytes(bytes);
            if (i % 3 == 0 && bytes.Length >= 2)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(bytes, KvFrames.Magic);
            }
            await ExchangeAsync(server.EndPoint, bytes);
        }

        await AssertStillServesAsync(server, destination);
        Assert.True(server.FailedConnections > 0);
        Assert.Equal(0, destination.Writes - 1 * TestLayouts.Small.NumLayers);
    }

    [Fact]
    public async Task Server_RandomFramesAfterHandshake_AnswersErrorAndKeepsServing()
    {
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        destination.AddLease(8);
        await using var server = new KvTransferServer(destination, options: FastOptions);
        var random = new Random(7);
        var types = Enum.GetValues<KvFrameType>();
        var hello = Hello(TestLayouts.Small);

        for (var i = 0; i < 150; i++)
        {
            var payload = new byte[random.Next(0, i % 5 == 0 ? 40 : 400)];
            random.NextBytes(payload);
            var frame = Frame(types[random.Next(types.Length)], payload);
            var received = await ExchangeAsync(server.EndPoint, [.. hello, .. frame]);
            Assert.NotNull(ErrorIn(received));
        }

        await AssertStillServesAsync(server, destination);
    }

    [Fact]
    public async Task Server_TruncatedHandshake_ClosesWithoutHanging()
    {
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(destination, options: FastOptions);
        var hello = Hello(TestLayouts.Small);

        for (var length = 0; length < hello.Length; length++)
        {
            var received = await ExchangeAsync(server.EndPoint, hello[..length]);
            Assert.True(received.Length < KvFrames.HeaderBytes || received[2] != (byte)KvFrameType.HelloOk);
        }

        await AssertStillServesAsync(server, destination);
    }

    [Fact]
    public async Task Server_HugeDeclaredFrameSize_RefusedWithErrorBeforeBuffering()
    {
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(destination, options: FastOptions);
        var header = new byte[KvFrames.HeaderBytes];
        KvFrames.WriteHeader(header, KvFrameType.Hello, int.MaxValue);

        var error = ErrorIn(await ExchangeAsync(server.EndPoint, header));

        Assert.NotNull(error);
        Assert.Equal(KvErrorCode.Protocol, error.Value.Code);
        Assert.Contains("exceeds the limit", error.Value.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_UnknownFrameType_RefusedWithError()
    {
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(destination, options: FastOptions);
        var frame = Frame(KvFrameType.Hello, []);
        frame[2] = 0xEE;

        var error = ErrorIn(await ExchangeAsync(server.EndPoint, frame));

        Assert.NotNull(error);
        Assert.Contains("unknown frame type 238", error.Value.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_OtherProtocolVersion_RefusedWithVersionError()
    {
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(destination, options: FastOptions);
        var payload = KvFrames.EncodeHello(TestLayouts.Small);
        payload[0] = 9;

        var error = ErrorIn(await ExchangeAsync(server.EndPoint, Frame(KvFrameType.Hello, payload)));

        Assert.NotNull(error);
        Assert.Equal(KvErrorCode.Version, error.Value.Code);
        Assert.Contains("version 9", error.Value.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_StalledPartialFrame_ClosedAfterChunkTimeout()
    {
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(destination, options: FastOptions with { ChunkTimeout = TimeSpan.FromMilliseconds(300) });
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.EndPoint, TestContext.Current.CancellationToken);
        await socket.SendAsync(Hello(TestLayouts.Small).AsMemory(0, 5), SocketFlags.None, TestContext.Current.CancellationToken);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var buffer = new byte[256];
        int read;
        try
        {
            read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        }
        catch (SocketException)
        {
            read = 0;
        }

        Assert.Equal(0, read);
        await TestLayouts.WaitUntilAsync(() => server.OpenConnections == 0, "the server dropped the stalled connection");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void TryParse_TruncatedFrame_NeedsMoreBytes(int cut)
    {
        var frame = Frame(KvFrameType.ChunkAck, [1, 2, 3, 4]);

        Assert.False(KvFrames.TryParse(new ReadOnlySequence<byte>(frame.AsMemory(0, frame.Length - 1 - cut)), 1024, out _, out _));
        Assert.True(KvFrames.TryParse(new ReadOnlySequence<byte>(frame), 1024, out var type, out var payload));
        Assert.Equal(KvFrameType.ChunkAck, type);
        Assert.Equal(4, payload.Length);
    }

    [Fact]
    public void DecodeHello_RoundTrip_SameLayout()
    {
        var (version, layout) = KvFrames.DecodeHello(new ReadOnlySequence<byte>(KvFrames.EncodeHello(TestLayouts.Preset110m)));

        Assert.Equal(KvFrames.Version, version);
        Assert.Equal(TestLayouts.Preset110m, layout);
    }
}
