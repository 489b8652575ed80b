using System.Buffers.Binary;
using System.IO.Hashing;
using Tandem.Engine.Inference;
using Tandem.Engine.Models;
using Tandem.Engine.Serving.Compute;

namespace Tandem.Engine.Serving.Mocker;

/// <summary>
/// The mocker's compute: no arithmetic, only time. Each step waits for the profile's simulated duration (against a
/// running deadline, so oversleeping one step shortens the next wait and the long-run rate stays exact), advances the
/// KV length of every chunk's sequence, and gives each sequence a deterministic next token: a hash of the request's
/// seed (or id) and the position, mapped into [first_output_token, vocab). Stop tokens are never produced.
/// </summary>
internal sealed class MockerStepCompute : IStepCompute
{
    private readonly MockerProfile _profile;
    private readonly HashSet<int> _stops;
    private readonly TimeProvider _time;
    private KvBlockManager? _blocks;
    private int _blockSize;
    private long _deadline;
    private long _simulatedTicks;
    private long _prefillSteps;
    private long _decodeSteps;

    public MockerStepCompute(MockerProfile profile, HashSet<int> modelStops, TimeProvider time)
    {
        _profile = profile;
        _stops = modelStops;
        _time = time;
        Config = profile.ToModelConfig();
    }

    public ModelConfig Config { get; }

    public PagedKvCache? Cache => null;

    /// <summary>Sum of the simulated (scaled) step durations.</summary>
    public TimeSpan SimulatedTime => TimeSpan.FromTicks(Interlocked.Read(ref _simulatedTicks));

    /// <summary>Simulated milliseconds (scaled) of the last step, and the new prompt tokens it computed.</summary>
    public (double Milliseconds, int NewPromptTokens, bool Decoded) LastStep { get; private set; }

    public long PrefillSteps => Interlocked.Read(ref _prefillSteps);
    public long DecodeSteps => Interlocked.Read(ref _decodeSteps);

    public long BytesPerBlock(int blockSize) => _profile.Model.KvBytesPerToken * blockSize;

    public void Initialize(KvBlockManager blocks, int numBlocks, int blockSize)
    {
        _blocks = blocks;
        _blockSize = blockSize;
    }

    public void Run(IReadOnlyList<ForwardChunk> chunks, IReadOnlyList<ServingSequence> owners, Span<int> tokens, Span<float> logprobs)
    {
        var newPromptTokens = 0;
        var decodes = false;
        for (var i = 0; i < chunks.Count; i++)
        {
            var seq = owners[i];
            var n = chunks[i].Tokens.Length;
            if (n == 1 && seq.Generated > 0 && seq.Kv.Length + 1 == seq.Count)
            {
                decodes = true;
            }
            else
            {
                newPromptTokens += n;
            }
        }
        var usage = _blocks is { } b ? (double)b.UsedBlocks / b.NumBlocks : 0;
        var ms = (_profile.PrefillMilliseconds(newPromptTokens) + (decodes ? _profile.DecodeMilliseconds(usage) : 0)) / _profile.SpeedupRatio;
        LastStep = (ms, newPromptTokens, decodes);
        if (newPromptTokens > 0)
        {
            Interlocked.Increment(ref _prefillSteps);
        }
        if (decodes)
        {
            Interlocked.Increment(ref _decodeSteps);
        }
        Interlocked.Add(ref _simulatedTicks, (long)(ms * TimeSpan.TicksPerMillisecond));
        Wait(ms);

        var row = 0;
        for (var i = 0; i < chunks.Count; i++)
        {
            var chunk = chunks[i];
            chunk.Sequence.SetLength(chunk.Sequence.Length + chunk.Tokens.Length, _blockSize);
            if (!chunk.WantLogits)
            {
                continue;
            }
            var seq = owners[i];
            tokens[row] = NextToken(seq.Request.Sampling.Seed, seq.Request.RequestId, seq.Count, seq.Request.StopTokenIds);
            logprobs[row] = seq.Request.Logprobs ? 0f : float.NaN;
            row++;
        }
    }

    /// <summary>The token at <paramref name="position"/> of a request: the same for the same seed (or request id) and position.</summary>
    internal int NextToken(ulong? seed, string requestId, int position, IReadOnlyList<int> requestStops)
    {
        var low = _profile.Tokens.FirstOutputToken;
        var range = (ulong)(Config.VocabSize - low);
        Span<byte> key = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(key, seed ?? XxHash3.HashToUInt64(System.Text.Encoding.UTF8.GetBytes(requestId)));
        for (var attempt = 0; ; attempt++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(key[8..], position + (attempt << 24));
            var token = low + (int)(XxHash3.HashToUInt64(key) % range);
            if (!_stops.Contains(token) && !requestStops.Contains(token))
            {
                return token;
            }
        }
    }

    private void Wait(double ms)
    {
        var ticks = (long)(ms * _time.TimestampFrequency / 1000.0);
        var now = _time.GetTimestamp();
        _deadline = Math.Max(_deadline, now) + ticks;
        var remaining = _time.GetElapsedTime(now, _deadline);
        if (remaining > TimeSpan.Zero)
        {
            Thread.Sleep(remaining);
        }
    }

    public void Dispose()
    {
    }
}
