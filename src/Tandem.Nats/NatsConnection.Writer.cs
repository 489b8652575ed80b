using System.Buffers;
using Tandem.Nats.Protocol;

namespace Tandem.Nats;

public sealed partial class NatsConnection
{
    private const int WriteChunkBytes = 64 * 1024;

    /// <summary>PONG waiters in the order of the PINGs in the command pipe (null for keep-alive pings); guarded by <see cref="_lock"/>.</summary>
    private readonly Queue<TaskCompletionSource?> _pongWaiters = new();
    private TaskCompletionSource? _drained;
    private long _pendingBytes;
    private int _pingsOut;

    /// <summary>
    /// Queues a message. Completes once the command is queued: while connected it waits only when more than
    /// <see cref="NatsOptions.WriteBufferBytes"/> are queued; while disconnected it is buffered or, when the reconnect
    /// buffer is full, refused with <see cref="NatsReconnectBufferFullException"/>.
    /// </summary>
    public ValueTask PublishAsync(string subject, ReadOnlyMemory<byte> payload, string? replyTo = null, NatsHeaders? headers = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        NatsSubjects.ValidateSubject(subject);
        if (replyTo is not null)
        {
            NatsSubjects.ValidateSubject(replyTo, nameof(replyTo));
        }
        var headerBlock = headers?.ToBytes() ?? [];
        var size = headerBlock.Length + payload.Length;
        var maxPayload = ServerInfo?.MaxPayload ?? _options.MaxPayloadBytes;
        if (size > maxPayload)
        {
            throw new ArgumentException($"message of {size} bytes exceeds the server's maximum payload of {maxPayload} bytes", nameof(payload));
        }
        bool wait;
        lock (_lock)
        {
            ThrowIfClosed();
            if (_state != NatsConnectionState.Connected)
            {
                var estimate = size + (subject.Length * 3) + ((replyTo?.Length ?? 0) * 3) + 32;
                var pending = Interlocked.Read(ref _pendingBytes);
                if (pending + estimate > _options.ReconnectBufferBytes)
                {
                    throw new NatsReconnectBufferFullException(pending, _options.ReconnectBufferBytes);
                }
            }
            Commit(ProtocolWriter.WritePublish(_commands.Writer, subject, replyTo, headerBlock, payload.Span));
            wait = _state == NatsConnectionState.Connected && Interlocked.Read(ref _pendingBytes) > _options.WriteBufferBytes;
        }
        Interlocked.Increment(ref _outMsgs);
        Interlocked.Add(ref _outBytes, size);
        return wait ? WaitForWriterAsync(cancellationToken) : ValueTask.CompletedTask;
    }

    /// <summary>Waits until the server has processed every command queued before this call (PING answered by PONG).</summary>
    public async Task FlushAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            while (true)
            {
                TaskCompletionSource? pong = null;
                Task connected;
                lock (_lock)
                {
                    ThrowIfClosed();
                    connected = _connected.Task;
                    if (_state == NatsConnectionState.Connected)
                    {
                        pong = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        _pongWaiters.Enqueue(pong);
                        Commit(ProtocolWriter.WritePing(_commands.Writer));
                    }
                }
                if (pong is not null)
                {
                    await pong.Task.WaitAsync(cts.Token).ConfigureAwait(false);
                    return;
                }
                await connected.WaitAsync(cts.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"flush did not complete within {timeout.TotalMilliseconds:0} ms");
        }
    }

    /// <summary><see cref="FlushAsync(TimeSpan, CancellationToken)"/> with <see cref="NatsOptions.RequestTimeout"/>.</summary>
    public Task FlushAsync(CancellationToken cancellationToken = default) => FlushAsync(_options.RequestTimeout, cancellationToken);

    /// <summary>Makes <paramref name="bytes"/> just written to the command pipe visible to the writer. Caller holds <see cref="_lock"/>.</summary>
    private void Commit(int bytes)
    {
        Interlocked.Add(ref _pendingBytes, bytes);
        // The pipe never pauses (pauseWriterThreshold 0), so this completes synchronously.
        var flush = _commands.Writer.FlushAsync();
        if (flush.IsCompleted)
        {
            flush.GetAwaiter().GetResult();
        }
        else
        {
            _ = flush.AsTask();
        }
    }

    /// <summary>Queues a control command (SUB, UNSUB, PONG) when connected; while disconnected it is re-created on reconnect instead.</summary>
    private void WriteControlIfConnected(Func<IBufferWriter<byte>, int> write)
    {
        lock (_lock)
        {
            if (_state == NatsConnectionState.Connected)
            {
                Commit(write(_commands.Writer));
            }
        }
    }

    private async ValueTask WaitForWriterAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource drained;
        lock (_lock)
        {
            if (_state != NatsConnectionState.Connected || Interlocked.Read(ref _pendingBytes) <= _options.WriteBufferBytes / 2)
            {
                return;
            }
            drained = _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        await drained.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Caller holds <see cref="_lock"/>.</summary>
    private void ReleaseDrainWaiters()
    {
        _drained?.TrySetResult();
        _drained = null;
    }

    /// <summary>
    /// Sends the command pipe to one socket until it is lost. A batch is consumed only after it was written in full,
    /// so a batch interrupted by a loss is sent again on the next connection (at-least-once for that batch).
    /// </summary>
    private async Task WriteLoopAsync(Connection connection)
    {
        var reader = _commands.Reader;
        var chunk = ArrayPool<byte>.Shared.Rent(WriteChunkBytes);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(connection.Token);
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (result.IsCanceled || connection.Token.IsCancellationRequested)
                {
                    reader.AdvanceTo(buffer.Start);
                    if (connection.Token.IsCancellationRequested)
                    {
                        return;
                    }
                    continue;
                }
                try
                {
                    timeout.CancelAfter(_options.WriteTimeout);
                    await WriteBufferAsync(connection.Stream, buffer, chunk, timeout.Token).ConfigureAwait(false);
                    if (!timeout.TryReset())
                    {
                        throw new OperationCanceledException(timeout.Token);
                    }
                }
                catch (Exception ex)
                {
                    reader.AdvanceTo(buffer.Start);
                    if (!connection.Token.IsCancellationRequested)
                    {
                        OnConnectionLost(connection, timeout.IsCancellationRequested
                            ? new NatsConnectionException($"write to {connection.Server} timed out after {_options.WriteTimeout.TotalMilliseconds:0} ms")
                            : ex);
                    }
                    return;
                }
                var length = buffer.Length;
                reader.AdvanceTo(buffer.End);
                if (Interlocked.Add(ref _pendingBytes, -length) <= _options.WriteBufferBytes / 2 && Volatile.Read(ref _drained) is not null)
                {
                    lock (_lock)
                    {
                        ReleaseDrainWaiters();
                    }
                }
                if (result.IsCompleted)
                {
                    return;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <summary>Writes a multi-segment buffer, coalescing small segments into a pooled chunk.</summary>
    private static async ValueTask WriteBufferAsync(Stream stream, ReadOnlySequence<byte> buffer, byte[] chunk, CancellationToken cancellationToken)
    {
        if (buffer.IsSingleSegment)
        {
            await stream.WriteAsync(buffer.First, cancellationToken).ConfigureAwait(false);
            return;
        }
        var used = 0;
        foreach (var segment in buffer)
        {
            if (used + segment.Length > chunk.Length && used > 0)
            {
                await stream.WriteAsync(chunk.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
                used = 0;
            }
            if (segment.Length >= chunk.Length)
            {
                await stream.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
                continue;
            }
            segment.Span.CopyTo(chunk.AsSpan(used));
            used += segment.Length;
        }
        if (used > 0)
        {
            await stream.WriteAsync(chunk.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
        }
        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends a PING every <see cref="NatsOptions.PingInterval"/>; too many unanswered ones mean a dead connection.</summary>
    private async Task PingLoopAsync(Connection connection)
    {
        using var timer = new PeriodicTimer(_options.PingInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(connection.Token).ConfigureAwait(false))
            {
                bool stale;
                lock (_lock)
                {
                    if (!ReferenceEquals(_current, connection))
                    {
                        return;
                    }
                    stale = _pingsOut >= _options.MaxPingsOut;
                    if (!stale)
                    {
                        _pingsOut++;
                        _pongWaiters.Enqueue(null);
                        Commit(ProtocolWriter.WritePing(_commands.Writer));
                    }
                }
                if (stale)
                {
                    OnConnectionLost(connection, new NatsConnectionException($"server {connection.Server} did not answer {_options.MaxPingsOut} ping(s) within {_options.PingInterval.TotalMilliseconds * _options.MaxPingsOut:0} ms (stale connection)"));
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
