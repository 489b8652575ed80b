using System.Diagnostics;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// KV transfer over TCP to a <see cref="KvTransferServer"/> at <c>tcp://host:port</c>: framed, chunked, checksummed
/// (XXH3-64 per chunk), acknowledged per chunk with a bounded window, a timeout per chunk. One connection per concurrent
/// transfer, idle connections reused.
/// </summary>
public sealed class TcpKvTransport : IKvTransport, IAsyncDisposable
{
    public const string Scheme = "tcp://";

    private readonly KvConnectionPool _pool;

    public TcpKvTransport(KvTransferOptions? options = null)
    {
        Options = (options ?? KvTransferOptions.Default).Validate();
        _pool = new KvConnectionPool(Scheme, Options);
    }

    public KvTransferOptions Options { get; }

    public bool Supports(string address) => address is not null && address.StartsWith(Scheme, StringComparison.Ordinal);

    public async Task PushAsync(IKvBlockAccess source, long sourceHandle, string destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        KvTransferChecks.Range(source.Describe(sourceHandle), first, count, "source");
        cancellationToken.ThrowIfCancellationRequested();
        var start = Stopwatch.GetTimestamp();
        var connection = await _pool.RentAsync(destination, source.Layout, cancellationToken).ConfigureAwait(false);
        var healthy = false;
        try
        {
            using (connection.BeginOperation(cancellationToken))
            {
                connection.WriteRequest(KvFrameType.WriteBegin, destinationHandle, first, count, 0);
                await connection.FlushAsync("the write request").ConfigureAwait(false);
                await connection.ExpectAsync(KvFrameType.Ready, "the write request's answer").ConfigureAwait(false);
                connection.Consume();
                await KvBlockStream.SendAsync(connection, source, sourceHandle, first, count, Options.MaxChunkBytes, cancellationToken).ConfigureAwait(false);
                healthy = true;
            }
        }
        finally
        {
            await _pool.ReturnAsync(destination, connection, healthy).ConfigureAwait(false);
        }
        KvTransferMetrics.Record("tcp", "push", count * source.Layout.BytesPerBlock, Stopwatch.GetElapsedTime(start));
    }

    public async Task PullAsync(string source, long sourceHandle, IKvBlockAccess destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        KvTransferChecks.Writable(destination.Describe(destinationHandle), destinationHandle, first, count);
        cancellationToken.ThrowIfCancellationRequested();
        var start = Stopwatch.GetTimestamp();
        var connection = await _pool.RentAsync(source, destination.Layout, cancellationToken).ConfigureAwait(false);
        var healthy = false;
        try
        {
            using (connection.BeginOperation(cancellationToken))
            {
                connection.WriteRequest(KvFrameType.ReadBegin, sourceHandle, first, count, Options.MaxChunkBytes);
                await connection.FlushAsync("the read request").ConfigureAwait(false);
                await KvBlockStream.ReceiveAsync(connection, destination, destinationHandle, first, count, cancellationToken).ConfigureAwait(false);
                healthy = true;
            }
        }
        finally
        {
            await _pool.ReturnAsync(source, connection, healthy).ConfigureAwait(false);
        }
        KvTransferMetrics.Record("tcp", "pull", count * destination.Layout.BytesPerBlock, Stopwatch.GetElapsedTime(start));
    }

    public ValueTask DisposeAsync() => _pool.DisposeAsync();
}
