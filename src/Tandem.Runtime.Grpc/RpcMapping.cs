using Tandem.Abstractions;
using Tandem.Runtime.Grpc.Protocol;

namespace Tandem.Runtime.Grpc;

/// <summary>Converts between the engine's types and the wire messages of worker.proto.</summary>
internal static class RpcMapping
{
    public static GenerateRpcRequest ToMessage(GenerateRequest request)
    {
        var message = new GenerateRpcRequest
        {
            RequestId = request.RequestId,
            MaxTokens = request.MaxTokens,
            MinTokens = request.MinTokens,
            Sampling = ToMessage(request.Sampling),
            IgnoreEos = request.IgnoreEos,
            Logprobs = request.Logprobs,
        };
        AddAll(message.PromptTokens, request.PromptTokens);
        AddAll(message.StopTokenIds, request.StopTokenIds);
        if (request.CacheSalt is not null)
        {
            message.CacheSalt = request.CacheSalt;
        }
        if (request.RemoteKv is not null)
        {
            message.RemoteKv = ToMessage(request.RemoteKv);
        }
        return message;
    }

    public static GenerateRequest FromMessage(GenerateRpcRequest message) => new()
    {
        RequestId = message.RequestId,
        PromptTokens = [.. message.PromptTokens],
        MaxTokens = message.MaxTokens,
        MinTokens = message.MinTokens,
        Sampling = message.Sampling is null ? SamplingParams.Greedy : FromMessage(message.Sampling),
        StopTokenIds = [.. message.StopTokenIds],
        IgnoreEos = message.IgnoreEos,
        Logprobs = message.Logprobs,
        CacheSalt = message.HasCacheSalt ? message.CacheSalt : null,
        RemoteKv = message.RemoteKv is null ? null : FromMessage(message.RemoteKv),
    };

    public static SamplingMessage ToMessage(SamplingParams sampling)
    {
        var message = new SamplingMessage
        {
            Temperature = sampling.Temperature,
            TopK = sampling.TopK,
            TopP = sampling.TopP,
            MinP = sampling.MinP,
            PresencePenalty = sampling.PresencePenalty,
            FrequencyPenalty = sampling.FrequencyPenalty,
            RepetitionPenalty = sampling.RepetitionPenalty,
        };
        if (sampling.Seed is { } seed)
        {
            message.Seed = seed;
        }
        return message;
    }

    public static SamplingParams FromMessage(SamplingMessage message) => new()
    {
        Temperature = message.Temperature,
        TopK = message.TopK,
        TopP = message.TopP,
        MinP = message.MinP,
        PresencePenalty = message.PresencePenalty,
        FrequencyPenalty = message.FrequencyPenalty,
        RepetitionPenalty = message.RepetitionPenalty,
        Seed = message.HasSeed ? message.Seed : null,
    };

    public static RemoteKvMessage ToMessage(RemoteKv kv) => new()
    {
        Address = kv.Address,
        Handle = kv.Handle,
        Blocks = kv.Blocks,
        FirstToken = kv.FirstToken,
        FirstLogprob = kv.FirstLogprob,
        InstanceId = kv.InstanceId,
    };

    public static RemoteKv FromMessage(RemoteKvMessage message) =>
        new(message.Address, message.Handle, message.Blocks, message.FirstToken, message.FirstLogprob, message.InstanceId);

    /// <summary>Fills <paramref name="message"/> in place, so a stream can reuse one message for every token.</summary>
    public static void Fill(TokenMessage message, in TokenOutput token)
    {
        message.Index = token.Index;
        message.TokenId = token.TokenId;
        message.Logprob = token.Logprob;
        message.Finish = token.Finish switch
        {
            null => Finish.None,
            FinishReason.Stop => Finish.Stop,
            FinishReason.Length => Finish.Length,
            _ => throw new ArgumentOutOfRangeException(nameof(token), token.Finish, "unknown finish reason"),
        };
        message.CachedPromptTokens = token.CachedPromptTokens;
        message.ElapsedTicks = token.Elapsed.Ticks;
    }

    public static TokenMessage ToMessage(in TokenOutput token)
    {
        var message = new TokenMessage();
        Fill(message, token);
        return message;
    }

    public static TokenOutput FromMessage(TokenMessage message) => new(
        message.Index,
        message.TokenId,
        message.Logprob,
        message.Finish switch
        {
            Finish.None => null,
            Finish.Stop => FinishReason.Stop,
            Finish.Length => FinishReason.Length,
            _ => throw new EngineUnavailableException($"the worker sent an unknown finish reason {message.Finish}"),
        },
        message.CachedPromptTokens,
        TimeSpan.FromTicks(message.ElapsedTicks));

    public static StatsReply ToMessage(EngineStats stats)
    {
        var reply = new StatsReply
        {
            Running = stats.Running,
            Waiting = stats.Waiting,
            KvBlocksTotal = stats.KvBlocksTotal,
            KvBlocksUsed = stats.KvBlocksUsed,
            KvBlocksCached = stats.KvBlocksCached,
            PrefixQueriedTokens = stats.PrefixQueriedTokens,
            PrefixHitTokens = stats.PrefixHitTokens,
            Preemptions = stats.Preemptions,
            RequestsFinished = stats.RequestsFinished,
            RequestsCancelled = stats.RequestsCancelled,
            RequestsRejected = stats.RequestsRejected,
            Steps = stats.Steps,
            PromptTokensComputed = stats.PromptTokensComputed,
            TokensGenerated = stats.TokensGenerated,
            RemotePrefills = stats.RemotePrefills,
            LocalPrefills = stats.LocalPrefills,
            RemotePrefillsRefused = stats.RemotePrefillsRefused,
            PrefillBacklogTokens = stats.PrefillBacklogTokens,
        };
        foreach (var (reason, count) in stats.PrefillFallbacks)
        {
            reply.PrefillFallbacks[reason] = count;
        }
        return reply;
    }

    public static EngineStats FromMessage(StatsReply reply) => new()
    {
        Running = reply.Running,
        Waiting = reply.Waiting,
        KvBlocksTotal = reply.KvBlocksTotal,
        KvBlocksUsed = reply.KvBlocksUsed,
        KvBlocksCached = reply.KvBlocksCached,
        PrefixQueriedTokens = reply.PrefixQueriedTokens,
        PrefixHitTokens = reply.PrefixHitTokens,
        Preemptions = reply.Preemptions,
        RequestsFinished = reply.RequestsFinished,
        RequestsCancelled = reply.RequestsCancelled,
        RequestsRejected = reply.RequestsRejected,
        Steps = reply.Steps,
        PromptTokensComputed = reply.PromptTokensComputed,
        TokensGenerated = reply.TokensGenerated,
        RemotePrefills = reply.RemotePrefills,
        LocalPrefills = reply.LocalPrefills,
        PrefillFallbacks = new Dictionary<string, long>(reply.PrefillFallbacks, StringComparer.Ordinal),
        RemotePrefillsRefused = reply.RemotePrefillsRefused,
        PrefillBacklogTokens = reply.PrefillBacklogTokens,
    };

    private static void AddAll(Google.Protobuf.Collections.RepeatedField<int> field, IReadOnlyList<int> values)
    {
        if (values is int[] array)
        {
            field.Add(array);
            return;
        }
        for (var i = 0; i < values.Count; i++)
        {
            field.Add(values[i]);
        }
    }
}
