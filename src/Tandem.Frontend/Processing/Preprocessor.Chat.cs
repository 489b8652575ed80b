using Tandem.ChatTemplates;
using Tandem.Frontend.Models;
using Tandem.Frontend.OpenAi;

namespace Tandem.Frontend.Processing;

internal static partial class Preprocessor
{
    /// <summary>Renders the conversation with the model's chat template and tokenizes it (special tokens parsed).</summary>
    private static (string Text, int[] Tokens) RenderChat(ParsedRequest request, ServedModel model)
    {
        var tokenizer = model.Tokenizer;
        var bos = tokenizer.BosId >= 0 && tokenizer.BosId < tokenizer.VocabSize ? tokenizer.TokenText(tokenizer.BosId) : "";
        var eos = tokenizer.EosId >= 0 && tokenizer.EosId < tokenizer.VocabSize ? tokenizer.TokenText(tokenizer.EosId) : "";
        var messages = request.Messages.Select(m => new ChatMessage(m.Role, m.Content)
        {
            Name = m.Name,
            ToolCallId = m.ToolCallId,
            ToolCalls = m.ToolCalls.Count == 0 ? null : [.. m.ToolCalls.Select(c => new ChatToolCall(c.Id, c.Name, c.Arguments))],
        }).ToList();
        string text;
        try
        {
            text = model.ChatTemplate.Render(messages, new ChatTemplateContext
            {
                AddGenerationPrompt = request.AddGenerationPrompt,
                BosToken = bos,
                EosToken = eos,
                Extra = request.TemplateVariables,
            });
        }
        catch (ChatTemplateException e)
        {
            // raise_exception(...) is the template telling the client what is wrong with the conversation.
            throw OpenAiException.BadRequest(e.IsRaisedByTemplate ? e.Message : $"the chat template failed on these messages: {e.Message}", "messages");
        }
        // Templates usually write the BOS token themselves; add it only when the tokenizer wants one and it is not there.
        var addBos = tokenizer.AddBos && (bos.Length == 0 || !text.StartsWith(bos, StringComparison.Ordinal));
        return (text, tokenizer.Encode(text, addBos, parseSpecial: true));
    }
}
