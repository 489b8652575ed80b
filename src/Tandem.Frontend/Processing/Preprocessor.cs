using Tandem.Abstractions;
using Tandem.Frontend.Models;
using Tandem.Frontend.OpenAi;

namespace Tandem.Frontend.Processing;

/// <summary>A request ready for a worker: its token ids, limits and sampling, plus what post-processing needs.</summary>
internal sealed record PreparedRequest(ParsedRequest Parsed, ServedModel Model, GenerateRequest Generate, string? PromptText);

/// <summary>
/// Turns a validated OpenAI request into an engine request: chat template, tokenization, length limits (clear 400s that
/// state the limits), the model's sampling defaults and stop tokens.
/// </summary>
internal static partial class Preprocessor
{
    public static PreparedRequest Prepare(ParsedRequest request, ServedModel model, FrontendOptions options, string requestId)
    {
        var tokenizer = model.Tokenizer;
        string? promptText;
        int[] prompt;
        if (request.Endpoint == ApiEndpoint.ChatCompletions)
        {
            (promptText, prompt) = RenderChat(request, model);
        }
        else if (request.PromptTokenArray is { } array)
        {
            prompt = JsonFields.ReadTokenIds(array, "prompt", tokenizer.VocabSize);
            promptText = request.Echo ? tokenizer.Decode(prompt, skipSpecial: false) : null;
        }
        else
        {
            promptText = request.PromptText ?? "";
            // An empty prompt starts from BOS, as `tandem generate` does.
            prompt = tokenizer.Encode(promptText, addBos: tokenizer.AddBos || promptText.Length == 0, parseSpecial: true);
        }
        if (prompt.Length == 0)
        {
            throw OpenAiException.BadRequest("the prompt is empty after tokenization and the model has no BOS token to start from", "prompt");
        }

        var context = model.ContextLength;
        var maxPrompt = Math.Min(options.MaxPromptTokens ?? context, context - 1);
        var maxTotal = Math.Min(options.MaxTotalTokens ?? context, context);
        var promptParam = request.Endpoint == ApiEndpoint.ChatCompletions ? "messages" : "prompt";
        if (prompt.Length > maxPrompt)
        {
            throw OpenAiException.BadRequest(
                $"The prompt has {prompt.Length} tokens, more than the limit of {maxPrompt} prompt tokens (model context length {context}, max total tokens {maxTotal}). Shorten the prompt.",
                promptParam, "context_length_exceeded");
        }
        var room = maxTotal - prompt.Length;
        if (room < 1)
        {
            throw OpenAiException.BadRequest(
                $"The prompt has {prompt.Length} tokens and leaves no room for output within the limit of {maxTotal} total tokens.",
                promptParam, "context_length_exceeded");
        }
        var maxTokens = request.MaxTokens ?? room;
        if (maxTokens > room)
        {
            throw OpenAiException.BadRequest(
                $"This model's maximum context length is {maxTotal} tokens. However, you requested {prompt.Length + maxTokens} tokens ({prompt.Length} in the prompt, {maxTokens} for the completion). Reduce the prompt or max_tokens (at most {room} here).",
                request.Endpoint == ApiEndpoint.ChatCompletions ? "max_completion_tokens" : "max_tokens", "context_length_exceeded");
        }
        foreach (var id in request.StopTokenIds)
        {
            if (id >= tokenizer.VocabSize)
            {
                throw OpenAiException.BadRequest($"'stop_token_ids' contains token id {id}, outside the vocabulary [0, {tokenizer.VocabSize})", "stop_token_ids");
            }
        }

        var sampling = new SamplingParams
        {
            Temperature = request.Temperature ?? model.DefaultTemperature ?? 1f,
            TopP = request.TopP ?? model.DefaultTopP ?? 1f,
            TopK = request.TopK ?? model.DefaultTopK ?? 0,
            MinP = request.MinP,
            PresencePenalty = request.PresencePenalty,
            FrequencyPenalty = request.FrequencyPenalty,
            RepetitionPenalty = request.RepetitionPenalty ?? model.DefaultRepetitionPenalty ?? 1f,
            Seed = request.Seed,
        };
        try
        {
            sampling.Validate();
        }
        catch (ArgumentException e)
        {
            throw OpenAiException.BadRequest(e.Message, e.ParamName);
        }

        // With ignore_eos the model's end tokens must not stop generation; the request's own stop ids still do.
        IReadOnlyList<int> stopIds = request.IgnoreEos ? request.StopTokenIds : [.. model.EosTokenIds, .. request.StopTokenIds];
        var generate = new GenerateRequest
        {
            RequestId = requestId,
            PromptTokens = prompt,
            MaxTokens = maxTokens,
            MinTokens = Math.Min(request.MinTokens, maxTokens),
            Sampling = sampling,
            StopTokenIds = stopIds,
            IgnoreEos = request.IgnoreEos,
            Logprobs = request.Logprobs,
            CacheSalt = request.CacheSalt,
        };
        return new PreparedRequest(request, model, generate, promptText);
    }
}
