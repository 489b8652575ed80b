using Tandem.Frontend.Models;
using Tandem.Frontend.OpenAi;

namespace Tandem.Frontend.Processing;

internal static partial class Preprocessor
{
    private static (string Text, int[] Tokens) RenderChat(ParsedRequest request, ServedModel model)
    {
        var text = string.Concat(request.Messages.Select(m => $"{m.Role}: {m.Content}\n")) + (request.AddGenerationPrompt ? "assistant:" : "");
        return (text, model.Tokenizer.Encode(text, model.Tokenizer.AddBos, parseSpecial: true));
    }
}
