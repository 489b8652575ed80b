using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Abstractions;
using Tandem.Engine.Serving;

namespace Tandem.Worker;

/// <summary>
/// A worker hosting one serving engine in a role, reachable through <see cref="IWorkerClient"/>:
/// <list type="bullet">
/// <item>aggregated (<see cref="WorkerRole.Both"/>): prefill and decode here;</item>
/// <item>decode: decode-first disaggregation — decides per request between a local prefill and a remote one
/// (conditional disaggregation), reserves the destination blocks, asks the prefill queue, and continues from the pushed
/// KV; or, for prefill-first requests that carry <see cref="GenerateRequest.RemoteKv"/>, pulls the KV; every failure
/// falls back to a local prefill;</item>
/// <item>prefill: serves the prefill queue (compute, push KV into the decode worker) and context-only prefills.</item>
/// </list>
/// </summary>
public sealed partial class EngineWorker : IWorkerClient, IAsyncDisposable, IDisposable
{
    private readonly ServingEngine _engine;
    private readonly bool _ownsEngine;
    private readonly WorkerServices? _services;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Dictionary<string, long> _fallbacks = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopQueue = new();
    private Task _prefillQueue = Task.CompletedTask;
    private int _servingRemotePrefills;
    private long _remotePrefills;
    private long _localPrefills;
    private int _outstandingRemote;
    private long _refusedRemotePrefills;
    private int _disposed;

    public EngineWorker(ServingEngine engine, WorkerInstance instance, bool ownsEngine = true)
        : this(engine, instance, null, null, ownsEngine)
    {
    }

    /// <param name="engine">The engine this worker hosts.</param>
    /// <param name="instance">How discovery lists the worker (role, model, fingerprint).</param>
    /// <param name="services">Event bus, KV transports and address for disaggregation; null for a plain aggregated worker.</param>
    /// <param name="logger">Where fallbacks and failures are logged.</param>
    /// <param name="ownsEngine">Dispose the engine with the worker.</param>
    /// <param name="kvAccess">The engine's KV access when a transfer server was built on it first (its address goes into <paramref name="services"/>).</param>
    public EngineWorker(ServingEngine engine, WorkerInstance instance, WorkerServices? services, ILogger? logger = null, bool ownsEngine = true, EngineKvAccess? kvAccess = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(instance);
        services?.Options.Validate();
        _engine = engine;
        _ownsEngine = ownsEngine;
        _services = services;
        _logger = logger ?? NullLogger.Instance;
        var endpoints = new Dictionary<string, string>(instance.Endpoints, StringComparer.Ordinal);
        if (services is not null)
        {
            endpoints["kv"] = services.KvAddress;
        }
        Instance = instance with { KvBlockSize = engine.BlockSize, Endpoints = endpoints };
        KvAccess = kvAccess ?? new EngineKvAccess(engine, instance.ModelFingerprint);
        Backlog = new PrefillBacklog(() => (engine.BusyTime, engine.PromptTokensComputed));
    }

    public WorkerInstance Instance { get; }

    public ServingEngine Engine => _engine;

    /// <summary>Prefill side: the prefills accepted and not finished, and the learned rate (remote prefill admission).</summary>
    public PrefillBacklog Backlog { get; }

    /// <summary>The engine's KV memory for transports; register it with the transport servers under <see cref="WorkerServices.KvAddress"/>.</summary>
    public EngineKvAccess KvAccess { get; }

    /// <summary>
    /// Set while the worker shuts down gracefully: new requests are refused as unavailable (so the frontend sends them
    /// to another worker) while the ones in flight finish.
    /// </summary>
    public bool Draining { get; set; }

    /// <summary>A prefill worker starts taking work from the prefill queue.</summary>
    public void Start()
    {
        if (Instance.Role == WorkerRole.Prefill && _services is not null)
        {
            _prefillQueue = Task.Run(() => ServePrefillQueueAsync(_stopQueue.Token, _stopping.Token));
        }
    }

    public IAsyncEnumerable<TokenOutput> GenerateAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (Instance.Role == WorkerRole.Prefill)
        {
            throw new InvalidRequestException($"worker {Instance.InstanceId} is a prefill worker and does not generate");
        }
        ThrowIfDraining();
        if (request.RemoteKv is not null || (Instance.Role == WorkerRole.Decode && _services is not null))
        {
            return Disaggregated(request, cancellationToken);
        }
        // Validation and admission happen at submission, so overload and bad requests surface before any token.
        return Local(request, null, cancellationToken);
    }

    public ValueTask<EngineStats> GetStatsAsync(CancellationToken cancellationToken = default)
    {
        Dictionary<string, long> fallbacks;
        lock (_fallbacks)
        {
            fallbacks = new Dictionary<string, long>(_fallbacks, StringComparer.Ordinal);
        }
        return ValueTask.FromResult(_engine.GetStats() with
        {
            RemotePrefills = Interlocked.Read(ref _remotePrefills),
            LocalPrefills = Interlocked.Read(ref _localPrefills),
            PrefillFallbacks = fallbacks,
            RemotePrefillsRefused = Interlocked.Read(ref _refusedRemotePrefills),
            PrefillBacklogTokens = Backlog.PendingTokens,
        });
    }

    public async Task<PrefillHandle> PrefillAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_services is null || Instance.Role == WorkerRole.Decode)
        {
            throw new InvalidRequestException($"worker {Instance.InstanceId} does not serve context-only prefills");
        }
        ThrowIfDraining();
        using var ticket = Backlog.TryAdmit(request.PromptTokens.Count, null, out _);
        var result = await _engine.PrefillAsync(request, cancellationToken).ConfigureAwait(false);
        var first = FirstTokenOf(result.FirstToken, request);
        if (first.IsFinal || result.Kv is null)
        {
            result.Kv?.Dispose();
            return new PrefillHandle(first, null);
        }
        var handle = KvAccess.Publish(result.Kv);
        return new PrefillHandle(first, new RemoteKv(_services.KvAddress, handle, result.Kv.Blocks.Count, first.TokenId, first.Logprob, Instance.InstanceId));
    }

    public ValueTask ReleaseKvAsync(long handle, CancellationToken cancellationToken = default)
    {
        KvAccess.Withdraw(handle)?.Dispose();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }
        await _stopQueue.CancelAsync().ConfigureAwait(false);
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _prefillQueue.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
        Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _stopQueue.Cancel();
        _stopping.Cancel();
        if (_ownsEngine)
        {
            _engine.Dispose();
        }
        _stopping.Dispose();
        _stopQueue.Dispose();
    }

    private void ThrowIfDraining()
    {
        if (Draining)
        {
            throw new EngineUnavailableException($"worker {Instance.InstanceId} is shutting down");
        }
    }

    /// <summary>A one-token prefill reports Length; the request itself ends there only if it asked for one token or hit a stop.</summary>
    private static TokenOutput FirstTokenOf(TokenOutput first, GenerateRequest request) =>
        first.Finish == FinishReason.Stop ? first
        : request.MaxTokens <= 1 ? first with { Finish = FinishReason.Length }
        : first with { Finish = null };

    private async IAsyncEnumerable<TokenOutput> Disaggregated(GenerateRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var tokens = request.RemoteKv is { } remote
            ? await PullAsync(request, remote, cancellationToken).ConfigureAwait(false)
            : await DecodeFirstAsync(request, cancellationToken).ConfigureAwait(false);
        await foreach (var t in tokens.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            yield return t;
        }
    }

    private IAsyncEnumerable<TokenOutput> Local(GenerateRequest request, string? fallbackReason, CancellationToken cancellationToken)
    {
        if (fallbackReason is not null)
        {
            lock (_fallbacks)
            {
                _fallbacks[fallbackReason] = _fallbacks.GetValueOrDefault(fallbackReason) + 1;
            }
            Log.Fallback(_logger, request.RequestId, fallbackReason);
        }
        Interlocked.Increment(ref _localPrefills);
        return _engine.SubmitAsync(request.RemoteKv is null ? request : request with { RemoteKv = null }, cancellationToken);
    }

    /// <summary>Decode-first: local or remote prefill (blueprint §1), then the token stream.</summary>
    private async Task<IAsyncEnumerable<TokenOutput>> DecodeFirstAsync(GenerateRequest request, CancellationToken cancellationToken)
    {
        var services = _services!;
        var options = services.Options;
        if (services.Discovery is { } discovery && !discovery.Current.Instances.Any(i => i.Role == WorkerRole.Prefill && i.Model == Instance.Model))
        {
            return Local(request, request.PromptTokens.Count > options.MaxLocalPrefillLength ? "no_prefill_worker" : null, cancellationToken);
        }
        if (request.PromptTokens.Count <= options.MaxLocalPrefillLength || request.PromptTokens.Count >= _engine.Config.ContextLength)
        {
            return Local(request, null, cancellationToken);
        }
        if (!services.Bus.IsConnected)
        {
            // The prefill queue is unreachable (NATS down or reconnecting): do not wait for it.
            return Local(request, "bus_unavailable", cancellationToken);
        }
        var lease = _engine.TryReserveKv(request.PromptTokens, request.CacheSalt, options.RemotePrefillTimeout + TimeSpan.FromSeconds(5));
        if (lease is null)
        {
            return Local(request, "no_kv_blocks", cancellationToken);
        }
        var uncached = request.PromptTokens.Count - lease.CachedBlocks * _engine.BlockSize;
        if (uncached <= options.MaxLocalPrefillLength)
        {
            lease.Dispose();
            return Local(request, null, cancellationToken);
        }
        if (Interlocked.Increment(ref _outstandingRemote) > options.MaxPrefillQueueSize)
        {
            Interlocked.Decrement(ref _outstandingRemote);
            lease.Dispose();
            return Local(request, "queue_full", cancellationToken);
        }
        var handle = KvAccess.Publish(lease);
        string? failure = null;
        RemotePrefillReply? reply = null;
        // A push into our blocks that breaks off (the prefill worker died mid-transfer) ends the wait at once.
        var pushFailure = KvAccess.WriteFailure(handle);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, pushFailure);
        try
        {
            var message = new RemotePrefillRequest
            {
                RequestId = request.RequestId,
                PromptTokens = [.. request.PromptTokens],
                Sampling = request.Sampling,
                MaxTokens = request.MaxTokens,
                MinTokens = request.MinTokens,
                StopTokenIds = [.. request.StopTokenIds],
                IgnoreEos = request.IgnoreEos,
                Logprobs = request.Logprobs,
                CacheSalt = request.CacheSalt,
                KvDestination = services.KvAddress,
                KvHandle = handle,
                FirstBlock = lease.CachedBlocks,
                ModelFingerprint = Instance.ModelFingerprint,
                DeadlineUnixMs = DateTimeOffset.UtcNow.Add(options.RemotePrefillTimeout).ToUnixTimeMilliseconds(),
            };
            var answer = await services.Bus.RequestAsync(options.PrefillSubject(Instance.Model), PrefillProtocol.Encode(message), options.RemotePrefillTimeout, wait.Token).ConfigureAwait(false);
            reply = PrefillProtocol.Decode<RemotePrefillReply>(answer.Payload);
            failure = reply.Ok ? null : reply.Busy ? "prefill_busy" : reply.TimedOut ? "timeout" : "prefill_error";
            if (!reply.Ok && !reply.Busy)
            {
                Log.RemoteFailed(_logger, request.RequestId, reply.Error ?? "unknown error");
            }
        }
        catch (NoRespondersException)
        {
            failure = "no_prefill_worker";
        }
        catch (BusUnavailableException)
        {
            failure = "bus_unavailable";
        }
        catch (TimeoutException)
        {
            failure = "timeout";
        }
        catch (System.Text.Json.JsonException)
        {
            failure = "bad_reply";
        }
        catch (OperationCanceledException) when (pushFailure.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            failure = "push_failed";
            Log.RemoteFailed(_logger, request.RequestId, $"the KV push into this worker broke off: {KvAccess.WriteFailureReason(handle)}");
        }
        finally
        {
            Interlocked.Decrement(ref _outstandingRemote);
            // Withdrawing waits for a push still copying, so the blocks are never written once we let go of them.
            KvAccess.Withdraw(handle);
        }
        if (failure is not null)
        {
            lease.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            return Local(request, failure, cancellationToken);
        }
        Interlocked.Increment(ref _remotePrefills);
        Log.RemotePrefilled(_logger, request.RequestId, reply!.PrefillWorker ?? "?", uncached);
        return _engine.SubmitWithKv(request, lease, reply.FirstToken, reply.FirstLogprob, cancellationToken);
    }

    /// <summary>Prefill-first, decode side: pull the prompt's KV from the prefill worker and continue from its first token.</summary>
    private async Task<IAsyncEnumerable<TokenOutput>> PullAsync(GenerateRequest request, RemoteKv remote, CancellationToken cancellationToken)
    {
        if (_services is null)
        {
            return Local(request, "no_kv_transport", cancellationToken);
        }
        var lease = _engine.TryReserveKv(request.PromptTokens, request.CacheSalt);
        if (lease is null)
        {
            return Local(request, "no_kv_blocks", cancellationToken);
        }
        var handle = KvAccess.Publish(lease);
        string? failure = null;
        try
        {
            if (lease.Blocks.Count != remote.Blocks)
            {
                throw new KvTransferException($"the prefill worker holds {remote.Blocks} blocks for this prompt, this worker reserved {lease.Blocks.Count}");
            }
            var first = lease.CachedBlocks;
            if (first < remote.Blocks)
            {
                await _services.TransportFor(remote.Address).PullAsync(remote.Address, remote.Handle, KvAccess, handle, first, remote.Blocks - first, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (KvTransferException e)
        {
            failure = "pull_failed";
            Log.RemoteFailed(_logger, request.RequestId, e.Message);
        }
        finally
        {
            KvAccess.Withdraw(handle);
        }
        if (failure is not null)
        {
            lease.Dispose();
            return Local(request, failure, cancellationToken);
        }
        Interlocked.Increment(ref _remotePrefills);
        return _engine.SubmitWithKv(request with { RemoteKv = null }, lease, remote.FirstToken, remote.FirstLogprob, cancellationToken);
    }

    /// <summary>Prefill worker: take remote prefills from the queue (any free prefill worker takes the next one).</summary>
    private async Task ServePrefillQueueAsync(CancellationToken queueToken, CancellationToken cancellationToken)
    {
        var services = _services!;
        var subject = services.Options.PrefillSubject(Instance.Model);
        try
        {
            await foreach (var message in services.Bus.SubscribeAsync(subject, "prefill", queueToken).ConfigureAwait(false))
            {
                Interlocked.Increment(ref _servingRemotePrefills);
                _ = Task.Run(async () =>
                {
                    try
                    {
                        await HandleRemotePrefillAsync(message, cancellationToken).ConfigureAwait(false);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _servingRemotePrefills);
                    }
                }, CancellationToken.None);
            }
        }
        catch (OperationCanceledException) when (queueToken.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // Draining: the queue goes to the other prefill workers; prefills in flight finish.
        }
    }

    /// <summary>Remote prefills taken from the queue and not answered yet (computing or pushing KV).</summary>
    public int ServingRemotePrefills => Volatile.Read(ref _servingRemotePrefills);

    /// <summary>
    /// Graceful stop: refuse new requests (<see cref="Draining"/>) and leave the prefill queue, so the other prefill
    /// workers take it; requests and prefills in flight go on.
    /// </summary>
    public void StopAccepting()
    {
        Draining = true;
        try
        {
            _stopQueue.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already disposed.
        }
    }

    private async Task HandleRemotePrefillAsync(BusMessage message, CancellationToken cancellationToken)
    {
        var services = _services!;
        RemotePrefillReply reply;
        try
        {
            var request = PrefillProtocol.Decode<RemotePrefillRequest>(message.Payload);
            reply = await RunRemotePrefillAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (PrefillBusyException e)
        {
            Interlocked.Increment(ref _refusedRemotePrefills);
            Log.Refused(_logger, e.RequestId, e.Estimate.TotalMilliseconds, e.Remaining.TotalMilliseconds);
            reply = new RemotePrefillReply { Ok = false, Busy = true, Error = e.Message, PrefillWorker = Instance.InstanceId };
        }
        catch (Exception e) when (e is DeadlinePassedException or System.Text.Json.JsonException or InvalidRequestException or EngineOverloadedException or EngineUnavailableException or KvTransferException or OperationCanceledException or ArgumentException or InvalidOperationException)
        {
            reply = new RemotePrefillReply { Ok = false, Error = e.Message, TimedOut = e is DeadlinePassedException or OperationCanceledException, PrefillWorker = Instance.InstanceId };
        }
        if (message.ReplyTo is { } replyTo)
        {
            try
            {
                await services.Bus.PublishAsync(replyTo, PrefillProtocol.Encode(reply), cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
            {
                Log.ReplyFailed(_logger, e.Message);
            }
        }
    }

    private async Task<RemotePrefillReply> RunRemotePrefillAsync(RemotePrefillRequest request, CancellationToken cancellationToken)
    {
        // Not refused while draining: a prefill taken from the queue before the worker left it is finished.
        if (request.ModelFingerprint != Instance.ModelFingerprint)
        {
            throw new KvTransferException($"model fingerprint {request.ModelFingerprint} of the decode worker differs from this prefill worker's {Instance.ModelFingerprint}");
        }
        var deadlineAt = DateTimeOffset.FromUnixTimeMilliseconds(request.DeadlineUnixMs);
        var remaining = deadlineAt - DateTimeOffset.UtcNow;
        if (remaining <= TimeSpan.Zero)
        {
            throw new DeadlinePassedException("the decode worker's deadline passed before the prefill started");
        }
        // Refuse what the queue ahead cannot let finish in time: the decode worker prefills it at once instead of
        // after its timeout, and this worker does not compute a prefill nobody waits for.
        var tokens = Math.Max(0, request.PromptTokens.Length - (request.FirstBlock * _engine.BlockSize));
        using var ticket = Backlog.TryAdmit(tokens, deadlineAt, out var estimate)
            ?? throw new PrefillBusyException(request.RequestId, estimate, remaining);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(remaining);
        var result = await _engine.PrefillAsync(request.ToGenerateRequest(), deadline.Token).ConfigureAwait(false);
        var lease = result.Kv ?? throw new InvalidOperationException("the prefill kept no KV");
        var handle = KvAccess.Publish(lease);
        try
        {
            var count = lease.Blocks.Count - request.FirstBlock;
            if (count > 0)
            {
                var pushStart = System.Diagnostics.Stopwatch.GetTimestamp();
                await _services!.TransportFor(request.KvDestination)
                    .PushAsync(KvAccess, handle, request.KvDestination, request.KvHandle, request.FirstBlock, count, deadline.Token).ConfigureAwait(false);
                Log.Pushed(_logger, request.RequestId, (long)count * KvAccess.Layout.BytesPerBlock, System.Diagnostics.Stopwatch.GetElapsedTime(pushStart).TotalMilliseconds, request.KvDestination);
            }
        }
        finally
        {
            KvAccess.Withdraw(handle)?.Dispose();
        }
        return new RemotePrefillReply
        {
            Ok = true,
            FirstToken = result.FirstToken.TokenId,
            FirstLogprob = result.FirstToken.Logprob,
            CachedPromptTokens = result.FirstToken.CachedPromptTokens,
            PrefillWorker = Instance.InstanceId,
        };
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "request {RequestId}: prefill falls back to this worker ({Reason})")]
        public static partial void Fallback(ILogger logger, string requestId, string reason);

        [LoggerMessage(2, LogLevel.Warning, "request {RequestId}: remote prefill failed: {Message}")]
        public static partial void RemoteFailed(ILogger logger, string requestId, string message);

        [LoggerMessage(3, LogLevel.Debug, "request {RequestId}: {Tokens} prompt tokens prefilled by {PrefillWorker}")]
        public static partial void RemotePrefilled(ILogger logger, string requestId, string prefillWorker, int tokens);

        [LoggerMessage(4, LogLevel.Warning, "could not answer a remote prefill: {Message}")]
        public static partial void ReplyFailed(ILogger logger, string message);

        [LoggerMessage(5, LogLevel.Debug, "request {RequestId}: pushed {Bytes} KV bytes in {Milliseconds:0.0} ms to {Destination}")]
        public static partial void Pushed(ILogger logger, string requestId, long bytes, double milliseconds, string destination);

        [LoggerMessage(6, LogLevel.Information, "request {RequestId}: remote prefill refused: estimated {EstimateMs:0} ms to finish, the decode worker waits {RemainingMs:0} ms")]
        public static partial void Refused(ILogger logger, string requestId, double estimateMs, double remainingMs);
    }

    /// <summary>The prefill queue ahead of a remote prefill would not let it finish before the decode worker's deadline.</summary>
    private sealed class PrefillBusyException(string requestId, TimeSpan estimate, TimeSpan remaining)
        : Exception($"this prefill worker estimates {estimate.TotalMilliseconds:0} ms to finish the prefill, the decode worker waits {remaining.TotalMilliseconds:0} ms")
    {
        public string RequestId { get; } = requestId;
        public TimeSpan Estimate { get; } = estimate;
        public TimeSpan Remaining { get; } = remaining;
    }

    /// <summary>A remote prefill arrived after the decode worker stopped waiting for it.</summary>
    private sealed class DeadlinePassedException(string message) : Exception(message);
}
