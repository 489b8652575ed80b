using System.Runtime.CompilerServices;
using Tandem.Abstractions;
using Tandem.Engine.Inference;
using Tandem.Engine.Models;
using Tandem.Engine.Serving.Compute;

namespace Tandem.Engine.Serving;

/// <summary>
/// Serves many sequences on one model: continuous batching (sequences join and leave between steps), a per-step
/// token budget shared by decodes and chunked prefills, prefix caching with KV events, preemption by recompute when
/// KV blocks run out, cancellation, a bounded FIFO queue, and KV export/import for moving KV between workers.
/// <para>One dedicated thread runs the step loop and owns the scheduler state; callers talk to it through
/// <see cref="SubmitAsync"/> (and the KV transfer methods), which only enqueue work and read results.</para>
/// </summary>
public sealed class ServingEngine : IDisposable
{
    private readonly IStepCompute _compute;
    private readonly HashSet<int> _modelStops;
    private readonly Thread _loop;
    private readonly Lock _inboxGate = new();
    private readonly List<ServingSequence> _inbox = [];
    private readonly List<ServingSequence> _cancelled = [];
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly Lock _leaseGate = new();
    private readonly Dictionary<long, KvBlockLease> _leases = [];
    private long _nextLeaseId;
    private int _queued;
    private volatile bool _stopping;
    private int _disposed;
    private Exception? _fatal;

    // Owned by the loop thread.
    private readonly List<ServingSequence> _running = [];
    private readonly LinkedList<ServingSequence> _waiting = new();
    private readonly List<ForwardChunk> _chunks = [];
    private readonly List<ServingSequence> _chunkOwners = [];
    private readonly List<ServingSequence> _finished = [];
    private int[] _nextTokens = [];
    private float[] _nextLogprobs = [];
    private readonly int _keepFree;

    // Statistics (written by the loop thread, read by anyone).
    private long _prefixQueried;
    private long _prefixHits;
    private long _preemptions;
    private long _finishedCount;
    private long _cancelledCount;
    private long _rejected;
    private long _steps;
    private long _busyTicks;
    private long _promptComputed;
    private long _generated;
    private int _runningCount;
    private long _lastStepAllocatedBytes;
    private int _waitingCount;

    public ServingEngine(Transformer model, IEnumerable<int> modelStopTokens, ServingOptions? options = null)
        : this(modelStopTokens, options, (stops, o) => new TransformerStepCompute(model ?? throw new ArgumentNullException(nameof(model)), stops, o.MaxNumSeqs, o.KvSharedMemoryDirectory))
    {
    }

    /// <summary>An engine whose steps are timed by <paramref name="profile"/> instead of computed (see <see cref="Mocker.MockerProfile"/>); no weights, no KV memory.</summary>
    public static ServingEngine CreateMocker(Mocker.MockerProfile profile, ServingOptions? options = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(profile);
        profile.Validate();
        return new ServingEngine(profile.StopTokenIds, options ?? profile.ToServingOptions(), (stops, _) => new Mocker.MockerStepCompute(profile, stops, time ?? TimeProvider.System));
    }

    private ServingEngine(IEnumerable<int> modelStopTokens, ServingOptions? options, Func<HashSet<int>, ServingOptions, IStepCompute> compute)
    {
        ArgumentNullException.ThrowIfNull(modelStopTokens);
        Options = options ?? new ServingOptions();
        Options.Validate();
        _modelStops = [.. modelStopTokens];
        _compute = compute(_modelStops, Options);
        var c = _compute.Config;
        var blocks = Options.ResolveBlockCount(_compute.BytesPerBlock(Options.BlockSize), c.ContextLength);
        Blocks = new KvBlockManager(blocks, Options.BlockSize, Options.EnablePrefixCaching, Options.KvEventCapacity);
        _compute.Initialize(Blocks, blocks, Options.BlockSize);
        _keepFree = (int)(Options.Watermark * blocks);
        _loop = new Thread(Loop) { IsBackground = true, Name = "tandem-engine" };
        _loop.Start();
    }

    public ServingOptions Options { get; }
    public ModelConfig Config => _compute.Config;

    /// <summary>The compute behind the scheduler (transformer or mocker).</summary>
    internal IStepCompute Compute => _compute;

    /// <summary>True for the mocker engine: steps are timed, not computed, and there is no KV memory to transfer.</summary>
    public bool IsMocker => _compute.Cache is null;

    /// <summary>The shared-memory file holding the KV pool (see <see cref="ServingOptions.KvSharedMemoryDirectory"/>); null when private.</summary>
    public string? KvPoolFile => _compute.Cache?.SharedFile;

    /// <summary>Time spent computing steps since the engine started (the rest it was idle or scheduling).</summary>
    public TimeSpan BusyTime => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _busyTicks));

    /// <summary>Prompt tokens run through the model since the engine started (the same count as <see cref="EngineStats.PromptTokensComputed"/>).</summary>
    public long PromptTokensComputed => Interlocked.Read(ref _promptComputed);

    /// <summary>Blocks in the KV pool (the pool's layout: per layer, keys of all blocks then values of all blocks).</summary>
    public int KvPoolBlocks => _compute.Cache?.NumBlocks ?? 0;

    /// <summary>Why the KV pool is private although a shared-memory directory was given; null otherwise.</summary>
    public string? KvPoolSharedMemoryFailure => _compute.Cache?.SharedMemoryFailure;

    private PagedKvCache KvMemory => _compute.Cache ?? throw new NotSupportedException("the mocker engine holds no KV data to export or import");
    public KvBlockManager Blocks { get; }
    public int BlockSize => Options.BlockSize;

    /// <summary>Bytes of one block across all layers, keys and values (f32).</summary>
    public long BytesPerBlock => _compute.BytesPerBlock(BlockSize);

    /// <summary>
    /// Starts generating for <paramref name="request"/> and streams its tokens. Validation and admission happen now:
    /// a bad request throws <see cref="InvalidRequestException"/> and a full queue <see cref="EngineOverloadedException"/>
    /// before anything is returned. Cancelling <paramref name="cancellationToken"/> (or the enumeration's token, or
    /// abandoning the enumeration) ends the request and frees its KV blocks at the next step boundary.
    /// </summary>
    public IAsyncEnumerable<TokenOutput> SubmitAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        var seq = Admit(request, retainKv: false, imported: null, firstToken: null, cancellationToken);
        return Stream(seq, cancellationToken);
    }

    /// <summary>
    /// Runs the prompt and samples the first token, keeping the prompt's KV blocks in a lease (released by the caller or
    /// after <see cref="ServingOptions.RetainedKvTimeout"/>) so that another worker can copy them out.
    /// </summary>
    public async Task<PrefillResult> PrefillAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        // One token here; min_tokens beyond it is the decode side's business (at most 1 keeps the first token's stop mask).
        var seq = Admit(request with { MaxTokens = 1, MinTokens = Math.Min(request.MinTokens, 1) }, retainKv: true, imported: null, firstToken: null, cancellationToken);
        TokenOutput first = default;
        await foreach (var t in Stream(seq, cancellationToken).ConfigureAwait(false))
        {
            first = t;
        }
        return new PrefillResult(first, seq.Retained);
    }

    /// <summary>
    /// Continues a sequence whose prompt KV was computed elsewhere and copied into <paramref name="kv"/>: no prefill
    /// compute; <paramref name="firstToken"/> (sampled by the prefill side) is streamed first and decoding goes on from it.
    /// The lease is handed over to the sequence (do not dispose it afterwards; doing so is harmless).
    /// </summary>
    public IAsyncEnumerable<TokenOutput> SubmitWithKv(GenerateRequest request, KvBlockLease kv, int firstToken, float firstLogprob, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(kv);
        var seq = Admit(request, retainKv: false, kv, firstToken, cancellationToken, firstLogprob);
        return Stream(seq, cancellationToken);
    }

    /// <summary>
    /// Pins blocks for the KV of <paramref name="promptTokens"/>: the longest cached prefix (shared, already filled;
    /// <see cref="KvBlockLease.CachedBlocks"/>) plus fresh blocks for the rest. Null when the pool cannot hold it now.
    /// </summary>
    public KvBlockLease? TryReserveKv(IReadOnlyList<int> promptTokens, string? cacheSalt = null, TimeSpan? holdFor = null)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        ThrowIfStopped();
        if (promptTokens.Count == 0 || promptTokens.Count >= Config.ContextLength)
        {
            throw new InvalidRequestException($"a KV reservation needs 1 to {Config.ContextLength - 1} tokens, got {promptTokens.Count}");
        }
        var tokens = promptTokens.ToArray();
        var seed = BlockHashing.SeedFor(cacheSalt);
        var hashes = new List<ulong>();
        BlockHashing.HashFullBlocks(tokens, BlockSize, seed, 0, null, hashes);
        var kv = new KvSequence();
        // Like a local prefill, at least the last prompt token is left to compute, so the receiver gets logits for it.
        if (!Blocks.TryAllocate(kv, hashes, (tokens.Length - 1) / BlockSize, tokens.Length, tokens.Length, 0, out var cached))
        {
            return null;
        }
        return NewLease([.. kv.Blocks], tokens.Length, cached, holdFor ?? Options.RetainedKvTimeout);
    }

    /// <summary>
    /// Copies the keys and values of <paramref name="count"/> blocks of <paramref name="lease"/> starting at
    /// <paramref name="first"/>, for one <paramref name="layer"/>, into <paramref name="keys"/> and <paramref name="values"/>
    /// (each [count, block_size, n_kv_heads, head_dim] f32).
    /// </summary>
    public unsafe void ExportKv(KvBlockLease lease, int layer, int first, int count, Span<float> keys, Span<float> values)
    {
        CheckTransfer(lease, layer, first, count, keys.Length, values.Length);
        var cache = KvMemory;
        var n = (int)cache.FloatsPerBlock;
        for (var i = 0; i < count; i++)
        {
            var b = lease.BlockArray[first + i];
            new ReadOnlySpan<float>(cache.Keys(layer, b), n).CopyTo(keys.Slice(i * n, n));
            new ReadOnlySpan<float>(cache.Values(layer, b), n).CopyTo(values.Slice(i * n, n));
        }
    }

    /// <summary>Writes one layer's keys and values into blocks of <paramref name="lease"/> (the inverse of <see cref="ExportKv"/>); the lease's cached blocks are read-only.</summary>
    public unsafe void ImportKv(KvBlockLease lease, int layer, int first, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        CheckTransfer(lease, layer, first, count, keys.Length, values.Length);
        if (first < lease.CachedBlocks)
        {
            throw new InvalidOperationException($"blocks 0..{lease.CachedBlocks - 1} of the lease are shared prefix-cache blocks and cannot be written");
        }
        var cache = KvMemory;
        var n = (int)cache.FloatsPerBlock;
        for (var i = 0; i < count; i++)
        {
            var b = lease.BlockArray[first + i];
            keys.Slice(i * n, n).CopyTo(new Span<float>(cache.Keys(layer, b), n));
            values.Slice(i * n, n).CopyTo(new Span<float>(cache.Values(layer, b), n));
        }
    }

    /// <summary>Floats of one block for one layer and side (the unit of <see cref="ExportKv"/>/<see cref="ImportKv"/> buffers).</summary>
    public int FloatsPerBlockLayer => (int)(_compute.Cache?.FloatsPerBlock ?? 0);

    public EngineStats GetStats() => new()
    {
        Running = Volatile.Read(ref _runningCount),
        Waiting = Volatile.Read(ref _waitingCount) + InboxCount(),
        KvBlocksTotal = Blocks.NumBlocks,
        KvBlocksUsed = Blocks.UsedBlocks,
        KvBlocksCached = Blocks.EvictableBlocks,
        PrefixQueriedTokens = Interlocked.Read(ref _prefixQueried),
        PrefixHitTokens = Interlocked.Read(ref _prefixHits),
        Preemptions = Interlocked.Read(ref _preemptions),
        RequestsFinished = Interlocked.Read(ref _finishedCount),
        RequestsCancelled = Interlocked.Read(ref _cancelledCount),
        RequestsRejected = Interlocked.Read(ref _rejected),
        Steps = Interlocked.Read(ref _steps),
        PromptTokensComputed = Interlocked.Read(ref _promptComputed),
        TokensGenerated = Interlocked.Read(ref _generated),
    };

    /// <summary>KV events of this engine's prefix cache, in order (one reader).</summary>
    public IAsyncEnumerable<KvEvent> ReadKvEventsAsync(CancellationToken cancellationToken = default) => Blocks.ReadEventsAsync(cancellationToken);

    public KvCacheSnapshot KvSnapshot() => Blocks.Snapshot();

    /// <summary>Managed bytes the engine thread allocated during the last step (scheduling, forward pass, sampling, streaming); 0 in steady-state decoding.</summary>
    internal long LastStepAllocatedBytes => Volatile.Read(ref _lastStepAllocatedBytes);

    private ServingSequence Admit(GenerateRequest request, bool retainKv, KvBlockLease? imported, int? firstToken, CancellationToken cancellationToken, float importedLogprob = float.NaN)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfStopped();
        var maxLength = Validate(request, imported, firstToken);
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.Increment(ref _queued) > Options.MaxQueueLength && imported is null)
        {
            Interlocked.Decrement(ref _queued);
            Interlocked.Increment(ref _rejected);
            throw new EngineOverloadedException($"the engine queue is full ({Options.MaxQueueLength} requests waiting); retry later");
        }
        var seq = new ServingSequence(request, maxLength, BlockHashing.SeedFor(request.CacheSalt)) { RetainKv = retainKv };
        if (imported is not null)
        {
            if (!imported.TryClaim())
            {
                Interlocked.Decrement(ref _queued);
                throw new InvalidOperationException("the KV lease was already released, expired or used");
            }
            ForgetLease(imported);
            seq.Imported = imported;
            // Set before the sequence is queued: the engine thread emits the first token as soon as it takes it.
            seq.ImportedLogprob = importedLogprob;
            seq.Tokens[seq.Count++] = firstToken!.Value;
        }
        lock (_inboxGate)
        {
            if (_stopping)
            {
                if (imported is not null)
                {
                    Blocks.Release(imported.BlockArray);
                }
                throw new EngineUnavailableException("the engine is shutting down", _fatal);
            }
            _inbox.Add(seq);
        }
        if (cancellationToken.CanBeCanceled)
        {
            seq.Cancellation = cancellationToken.UnsafeRegister(static s => ((ServingEngine)((object[])s!)[0]).Cancel((ServingSequence)((object[])s)[1]), new object[] { this, seq });
        }
        _wake.Set();
        return seq;
    }

    private int Validate(GenerateRequest request, KvBlockLease? imported, int? firstToken)
    {
        var c = Config;
        var prompt = request.PromptTokens ?? throw new InvalidRequestException("the prompt is missing", "prompt");
        if (prompt.Count == 0)
        {
            throw new InvalidRequestException("the prompt has no tokens", "prompt");
        }
        if (prompt.Count >= c.ContextLength)
        {
            throw new InvalidRequestException($"the prompt has {prompt.Count} tokens; this model's context length is {c.ContextLength}, leaving no room to generate", "prompt");
        }
        for (var i = 0; i < prompt.Count; i++)
        {
            if ((uint)prompt[i] >= (uint)c.VocabSize)
            {
                throw new InvalidRequestException($"prompt token {i} is {prompt[i]}, outside the vocabulary of {c.VocabSize} tokens", "prompt");
            }
        }
        if (request.MaxTokens < 1)
        {
            throw new InvalidRequestException($"max_tokens must be ≥ 1, got {request.MaxTokens}", "max_tokens");
        }
        if (request.MinTokens < 0 || request.MinTokens > request.MaxTokens)
        {
            throw new InvalidRequestException($"min_tokens must be in [0, max_tokens = {request.MaxTokens}], got {request.MinTokens}", "min_tokens");
        }
        try
        {
            (request.Sampling ?? throw new InvalidRequestException("sampling settings are missing")).Validate();
        }
        catch (ArgumentException e) when (e is not InvalidRequestException)
        {
            throw new InvalidRequestException(e.Message, e.ParamName?.ToLowerInvariant());
        }
        var maxLength = (int)Math.Min(c.ContextLength, (long)prompt.Count + request.MaxTokens);
        var blocks = Blocks.BlocksFor(maxLength);
        if (blocks > Blocks.NumBlocks)
        {
            throw new InvalidRequestException(
                $"the request needs up to {maxLength} tokens of KV cache ({blocks} blocks) but the engine's KV pool holds {Blocks.NumBlocks} blocks of {BlockSize} tokens; lower max_tokens or the prompt", "max_tokens");
        }
        if (imported is not null)
        {
            if ((uint)firstToken!.Value >= (uint)c.VocabSize)
            {
                throw new InvalidRequestException($"first token {firstToken} is outside the vocabulary of {c.VocabSize} tokens");
            }
            if (imported.Tokens != prompt.Count || Blocks.BlocksFor(prompt.Count) > imported.Blocks.Count)
            {
                throw new InvalidRequestException($"the KV lease holds {imported.Tokens} tokens in {imported.Blocks.Count} blocks; the prompt has {prompt.Count}");
            }
        }
        return maxLength;
    }

    private async IAsyncEnumerable<TokenOutput> Stream(ServingSequence seq, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var enumerationCancel = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static s => ((ServingEngine)((object[])s!)[0]).Cancel((ServingSequence)((object[])s)[1]), new object[] { this, seq })
            : default;
        var reader = seq.Output.Reader;
        var complete = false;
        try
        {
            while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                while (reader.TryRead(out var output))
                {
                    complete = output.IsFinal;
                    yield return output;
                }
            }
            // The channel completed without a final token: cancelled or failed; surface why.
            await reader.Completion.ConfigureAwait(false);
        }
        finally
        {
            if (!complete)
            {
                Cancel(seq); // the consumer stopped early: free the sequence's blocks
            }
        }
    }

    private void Cancel(ServingSequence seq)
    {
        lock (_inboxGate)
        {
            _cancelled.Add(seq);
        }
        _wake.Set();
    }

    internal void ReleaseLease(KvBlockLease lease)
    {
        if (lease.TryClaim())
        {
            ForgetLease(lease);
            Blocks.Release(lease.BlockArray);
            _wake.Set(); // waiting sequences may fit now
        }
    }

    private KvBlockLease NewLease(int[] blocks, int tokens, int cachedBlocks, TimeSpan holdFor)
    {
        var lease = new KvBlockLease(this, Interlocked.Increment(ref _nextLeaseId), blocks, tokens, cachedBlocks, DateTime.UtcNow + holdFor);
        lock (_leaseGate)
        {
            _leases.Add(lease.Id, lease);
        }
        return lease;
    }

    private void ForgetLease(KvBlockLease lease)
    {
        lock (_leaseGate)
        {
            _leases.Remove(lease.Id);
        }
    }

    private void ExpireLeases()
    {
        List<KvBlockLease>? expired = null;
        var now = DateTime.UtcNow;
        lock (_leaseGate)
        {
            foreach (var lease in _leases.Values)
            {
                if (lease.ExpiresAt <= now)
                {
                    (expired ??= []).Add(lease);
                }
            }
        }
        if (expired is not null)
        {
            foreach (var lease in expired)
            {
                ReleaseLease(lease);
            }
        }
    }

    private void CheckTransfer(KvBlockLease lease, int layer, int first, int count, int keysLength, int valuesLength)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ThrowIfStopped();
        if (!ReferenceEquals(lease, LeaseOrNull(lease.Id)) || !lease.IsHeld)
        {
            throw new InvalidOperationException($"KV lease {lease.Id} is not held by this engine (released, expired or already used)");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Config.NumLayers);
        if (first < 0 || count < 0 || first + count > lease.Blocks.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"blocks [{first}, {first + count}) are outside the lease's {lease.Blocks.Count} blocks");
        }
        var needed = (long)count * KvMemory.FloatsPerBlock;
        if (keysLength < needed || valuesLength < needed)
        {
            throw new ArgumentException($"{count} blocks need {needed} floats each for keys and values");
        }
    }

    private KvBlockLease? LeaseOrNull(long id)
    {
        lock (_leaseGate)
        {
            return _leases.GetValueOrDefault(id);
        }
    }

    private int InboxCount()
    {
        lock (_inboxGate)
        {
            return _inbox.Count;
        }
    }

    private void ThrowIfStopped()
    {
        if (_stopping)
        {
            throw new EngineUnavailableException("the engine is shutting down", _fatal);
        }
    }

    // ───────────────────────────── the step loop (engine thread only) ─────────────────────────────

    private void Loop()
    {
        try
        {
            while (!_stopping)
            {
                _wake.Reset();
                DrainInbox();
                ExpireLeases();
                if (_running.Count == 0 && _waiting.Count == 0)
                {
                    _wake.Wait(100);
                    continue;
                }
                Schedule();
                if (_chunks.Count == 0)
                {
                    // Nothing fits (blocks held by leases): wait for a release, a cancellation or new work.
                    _wake.Wait(10);
                    continue;
                }
                var allocated = GC.GetAllocatedBytesForCurrentThread();
                Step();
                Volatile.Write(ref _lastStepAllocatedBytes, GC.GetAllocatedBytesForCurrentThread() - allocated);
            }
        }
        catch (Exception e)
        {
            _fatal = e;
            _stopping = true;
        }
        FailEverything(new EngineUnavailableException(_fatal is null ? "the engine is shutting down" : "the engine failed: " + _fatal.Message, _fatal));
    }

    private void DrainInbox()
    {
        lock (_inboxGate)
        {
            foreach (var seq in _inbox)
            {
                _waiting.AddLast(seq);
            }
            _inbox.Clear();
            foreach (var seq in _cancelled)
            {
                if (seq.Done)
                {
                    continue;
                }
                if (seq.Running)
                {
                    _running.Remove(seq);
                }
                else
                {
                    _waiting.Remove(seq);
                }
                Finish(seq, error: new OperationCanceledException("the request was cancelled"));
                Interlocked.Increment(ref _cancelledCount);
            }
            _cancelled.Clear();
        }
        PublishCounts();
    }

    /// <summary>Plans one step: running sequences first (oldest first), then admissions from the queue head, within the token budget.</summary>
    private void Schedule()
    {
        _chunks.Clear();
        _chunkOwners.Clear();
        var budget = Options.MaxNumBatchedTokens;
        for (var i = 0; i < _running.Count && budget > 0; i++)
        {
            var seq = _running[i];
            var n = Math.Min(seq.Pending, budget);
            while (!Blocks.TryGrow(seq.Kv, seq.Kv.Length + n))
            {
                // Out of blocks: preempt the newest running sequence (possibly this one) and retry.
                var victim = _running[^1];
                Preempt(victim);
                if (ReferenceEquals(victim, seq))
                {
                    n = 0;
                    break;
                }
            }
            if (n == 0)
            {
                break;
            }
            AddChunk(seq, n);
            budget -= n;
        }

        while (budget > 0 && _waiting.Count > 0 && _running.Count < Options.MaxNumSeqs)
        {
            var seq = _waiting.First!.Value;
            if (!TryStart(seq, budget, out var n))
            {
                break; // FIFO: later requests do not overtake the head of the queue
            }
            _waiting.RemoveFirst();
            if (seq.Done)
            {
                continue; // an imported first token already ended it
            }
            _running.Add(seq);
            seq.Running = true;
            if (seq.CountsInQueue)
            {
                seq.CountsInQueue = false;
                Interlocked.Decrement(ref _queued);
            }
            if (n > 0)
            {
                AddChunk(seq, n);
                budget -= n;
            }
        }
        PublishCounts();
    }

    /// <summary>Gives a waiting sequence its KV blocks (prefix hit, import, or fresh) and decides its first chunk.</summary>
    private bool TryStart(ServingSequence seq, int budget, out int chunk)
    {
        chunk = 0;
        if (seq.Imported is { } lease)
        {
            foreach (var b in lease.BlockArray)
            {
                seq.Kv.AddBlock(b);
            }
            seq.Kv.SetLength(seq.PromptLength, BlockSize);
            seq.Imported = null;
            seq.CachedPromptTokens = seq.PromptLength;
            Interlocked.Add(ref _prefixQueried, seq.PromptLength);
            Interlocked.Add(ref _prefixHits, seq.PromptLength);
            CommitFullBlocks(seq);
            // The first token came with the KV: stream it now; it may already end the request.
            Emit(seq, seq.Tokens[seq.Count - 1], seq.ImportedLogprob);
            if (seq.Done)
            {
                return true;
            }
            chunk = Math.Min(seq.Pending, budget);
            if (!Blocks.TryGrow(seq.Kv, seq.Kv.Length + chunk))
            {
                chunk = 0; // scheduled next step, with preemption if need be
            }
            return true;
        }

        seq.HashKnownBlocks(BlockSize);
        var maxMatch = (seq.Count - 1) / BlockSize; // leave the last token to compute: its logits are needed
        // Keep a few blocks free for running sequences to grow into, unless none runs (then the whole pool is fair game).
        var keepFree = _running.Count == 0 ? 0 : _keepFree;
        if (!Blocks.TryAllocate(seq.Kv, seq.SequenceHashes, maxMatch, seq.Count, budget, keepFree, out var cachedBlocks))
        {
            return false;
        }
        var cachedTokens = cachedBlocks * BlockSize;
        seq.Kv.SetLength(cachedTokens, BlockSize);
        seq.CommittedBlocks = cachedBlocks;
        if (seq.Generated == 0)
        {
            seq.CachedPromptTokens = cachedTokens;
            Interlocked.Add(ref _prefixQueried, seq.PromptLength);
            Interlocked.Add(ref _prefixHits, cachedTokens);
        }
        chunk = Math.Min(seq.Pending, budget);
        return true;
    }

    private void AddChunk(ServingSequence seq, int n)
    {
        var start = seq.Kv.Length;
        _chunks.Add(new ForwardChunk(seq.Kv, seq.Tokens.AsMemory(start, n), start + n == seq.Count));
        _chunkOwners.Add(seq);
    }

    /// <summary>Frees a running sequence's blocks and puts it back at the head of the queue; it recomputes its tokens (mostly from the prefix cache) when readmitted.</summary>
    private void Preempt(ServingSequence seq)
    {
        _running.Remove(seq);
        var index = _chunkOwners.IndexOf(seq);
        if (index >= 0)
        {
            _chunkOwners.RemoveAt(index);
            _chunks.RemoveAt(index);
        }
        Blocks.Free(seq.Kv);
        seq.CommittedBlocks = 0;
        seq.Running = false;
        _waiting.AddFirst(seq);
        Interlocked.Increment(ref _preemptions);
    }

    private void Step()
    {
        if (_nextTokens.Length < _chunks.Count)
        {
            _nextTokens = new int[Math.Max(_chunks.Count, Math.Min(Options.MaxNumSeqs, 64))];
            _nextLogprobs = new float[_nextTokens.Length];
        }
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            _compute.Run(_chunks, _chunkOwners, _nextTokens, _nextLogprobs);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A step failed (a bug, not bad input: requests are validated at submission). Fail its sequences, keep serving others.
            foreach (var seq in _chunkOwners)
            {
                _running.Remove(seq);
                Finish(seq, new EngineUnavailableException("the engine failed while computing this request: " + e.Message, e));
            }
            return;
        }
        Interlocked.Increment(ref _steps);
        Interlocked.Add(ref _busyTicks, System.Diagnostics.Stopwatch.GetTimestamp() - started);

        var row = 0;
        for (var i = 0; i < _chunks.Count; i++)
        {
            var seq = _chunkOwners[i];
            var chunk = _chunks[i];
            var isDecode = chunk.Tokens.Length == 1 && seq.Generated > 0 && seq.Kv.Length == seq.Count;
            if (!isDecode)
            {
                Interlocked.Add(ref _promptComputed, chunk.Tokens.Length);
            }
            CommitFullBlocks(seq);
            if (!chunk.WantLogits)
            {
                continue;
            }
            var token = _nextTokens[row];
            var logprob = _nextLogprobs[row];
            row++;
            seq.Tokens[seq.Count++] = token;
            Interlocked.Increment(ref _generated);
            Emit(seq, token, logprob);
            if (seq.Done)
            {
                _finished.Add(seq);
            }
        }
        foreach (var seq in _finished)
        {
            _running.Remove(seq);
        }
        _finished.Clear();
        PublishCounts();
    }

    /// <summary>Streams the newest token and finishes the sequence if it ends it.</summary>
    private void Emit(ServingSequence seq, int token, float logprob)
    {
        var request = seq.Request;
        FinishReason? finish = null;
        // Before min_tokens the stop tokens were masked out of the logits; the check keeps an imported first token honest too.
        if (seq.Generated > request.MinTokens)
        {
            if ((!request.IgnoreEos && _modelStops.Contains(token)) || Contains(request.StopTokenIds, token))
            {
                finish = FinishReason.Stop;
            }
        }
        if (finish is null && (seq.Generated >= request.MaxTokens || seq.Count >= seq.MaxLength))
        {
            finish = FinishReason.Length;
        }
        seq.Output.Writer.TryWrite(new TokenOutput(seq.Generated - 1, token, logprob, finish, seq.CachedPromptTokens, seq.Elapsed));
        if (finish is not null)
        {
            Finish(seq, error: null);
        }
    }

    private static bool Contains(IReadOnlyList<int> list, int token)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (list[i] == token)
            {
                return true;
            }
        }
        return false;
    }

    private void CommitFullBlocks(ServingSequence seq)
    {
        if (!Blocks.PrefixCachingEnabled)
        {
            return;
        }
        var full = seq.Kv.Length / BlockSize;
        if (full <= seq.CommittedBlocks)
        {
            return;
        }
        seq.HashKnownBlocks(BlockSize);
        Blocks.Commit(seq.Kv.Blocks, seq.SequenceHashes, seq.TokensHashes, seq.CommittedBlocks, full);
        seq.CommittedBlocks = full;
    }

    /// <summary>Ends a sequence: releases (or retains) its blocks and completes its stream.</summary>
    private void Finish(ServingSequence seq, Exception? error)
    {
        seq.Done = true;
        seq.Running = false;
        if (seq.Imported is { } imported)
        {
            Blocks.Release(imported.BlockArray);
            seq.Imported = null;
        }
        if (seq.RetainKv && error is null && seq.Kv.Blocks.Count > 0)
        {
            // Every block is filled (and may be shared with the prefix cache): all read-only for imports.
            seq.Retained = NewLease([.. seq.Kv.Blocks], seq.PromptLength, seq.Kv.Blocks.Count, Options.RetainedKvTimeout);
            seq.Kv.Clear();
        }
        else
        {
            Blocks.Free(seq.Kv);
        }
        if (seq.CountsInQueue)
        {
            seq.CountsInQueue = false;
            Interlocked.Decrement(ref _queued);
        }
        seq.Cancellation.Dispose();
        if (error is null)
        {
            Interlocked.Increment(ref _finishedCount);
            seq.Output.Writer.TryComplete();
        }
        else
        {
            seq.Output.Writer.TryComplete(error);
        }
    }

    private void PublishCounts()
    {
        Volatile.Write(ref _runningCount, _running.Count);
        Volatile.Write(ref _waitingCount, _waiting.Count);
    }

    private void FailEverything(Exception error)
    {
        lock (_inboxGate)
        {
            foreach (var seq in _inbox)
            {
                _waiting.AddLast(seq);
            }
            _inbox.Clear();
        }
        foreach (var seq in _running)
        {
            Finish(seq, error);
        }
        foreach (var seq in _waiting)
        {
            Finish(seq, error);
        }
        _running.Clear();
        _waiting.Clear();
        PublishCounts();
    }

    /// <summary>Stops the loop, fails every unfinished request with <see cref="EngineUnavailableException"/>, releases leases and the KV memory.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _stopping = true;
        _wake.Set();
        _loop.Join();
        List<KvBlockLease> leases;
        lock (_leaseGate)
        {
            leases = [.. _leases.Values];
        }
        foreach (var lease in leases)
        {
            ReleaseLease(lease);
        }
        // Requests submitted while the loop was stopping.
        FailEverything(new EngineUnavailableException("the engine is shutting down"));
        _compute.Dispose();
        _wake.Dispose();
    }
}
