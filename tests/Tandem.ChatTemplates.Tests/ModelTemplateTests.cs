using static Tandem.ChatTemplates.Tests.TestSupport;

namespace Tandem.ChatTemplates.Tests;

/// <summary>Real model templates against the prompt formats their model cards document.</summary>
public class ModelTemplateTests
{
    private static readonly ChatMessage[] SystemAndUser = [SystemMessage("You are a helpful assistant."), User("Hello!")];

    private static readonly ChatMessage[] MultiTurn = [User("Hello!"), Assistant("Hi! How can I help?"), User("What is 2+2?")];

    private static readonly ChatToolCall WeatherCall = new("abcdef123", "get_weather", """{"city": "Paris"}""");

    [Fact]
    public void Llama3_SystemAndUser_RendersHeadersAndGenerationPrompt()
    {
        var prompt = Load("Llama-3-8B-Instruct.jinja").Render(SystemAndUser, new ChatTemplateContext { BosToken = "<|begin_of_text|>" });
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n",
            prompt);
    }

    [Fact]
    public void Llama3_MultiTurnWithoutGenerationPrompt_TrimsContentAndEndsAfterLastTurn()
    {
        ChatMessage[] messages = [User("  Hello!\n"), Assistant("Hi! How can I help?"), User("What is 2+2?")];
        var prompt = Load("Llama-3-8B-Instruct.jinja").Render(messages, new ChatTemplateContext { BosToken = "<|begin_of_text|>", AddGenerationPrompt = false });
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>",
            prompt);
    }

    [Fact]
    public void Llama31_SystemAndUser_AddsKnowledgeAndDateLines()
    {
        var context = new ChatTemplateContext { BosToken = "<|begin_of_text|>", Extra = new Dictionary<string, object?> { ["date_string"] = "26 Jul 2024" } };
        var prompt = Load("Llama-3.1-8B-Instruct.jinja").Render(SystemAndUser, context);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            + "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n",
            prompt);
    }

    [Fact]
    public void Llama31_NoSystemMessage_TakesTodayFromStrftimeNowAndEmitsEmptySystemBlock()
    {
        var context = new ChatTemplateContext
        {
            BosToken = "<|begin_of_text|>",
            AddGenerationPrompt = false,
            TimeProvider = new FixedTimeProvider(new DateTimeOffset(2025, 3, 5, 10, 0, 0, TimeSpan.Zero)),
        };
        var prompt = Load("Llama-3.1-8B-Instruct.jinja").Render(MultiTurn, context);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            + "Cutting Knowledge Date: December 2023\nToday Date: 05 Mar 2025\n\n<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>",
            prompt);
    }

    [Fact]
    public void Llama31_ToolsAndToolCall_PutsToolsInFirstUserMessageAndRendersCallAsJson()
    {
        ChatMessage[] messages =
        [
            SystemMessage("You are a helpful assistant."),
            User("What's the weather in Paris?"),
            new("assistant", null) { ToolCalls = [WeatherCall] },
            new("tool", "22C") { ToolCallId = "abcdef123" },
        ];
        var context = new ChatTemplateContext
        {
            BosToken = "<|begin_of_text|>",
            Extra = new Dictionary<string, object?> { ["date_string"] = "26 Jul 2024", ["tools"] = WeatherTools() },
        };
        var prompt = Load("Llama-3.1-8B-Instruct.jinja").Render(messages, context);
        const string ToolJson =
            "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the weather\",\n"
            + "        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n"
            + "                    \"type\": \"string\"\n                }\n            },\n            \"required\": [\n                \"city\"\n"
            + "            ]\n        }\n    }\n}";
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            + "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\n"
            + "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n"
            + "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n"
            + ToolJson + "\n\n"
            + "What's the weather in Paris?<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"
            + "<|start_header_id|>ipython<|end_header_id|>\n\n\"22C\"<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n",
            prompt);
    }

    [Fact]
    public void Llama31_ToolsWithoutUserMessage_RaisesTemplateError()
    {
        var context = new ChatTemplateContext { Extra = new Dictionary<string, object?> { ["tools"] = WeatherTools(), ["date_string"] = "26 Jul 2024" } };
        var e = Assert.Throws<ChatTemplateException>(() => Load("Llama-3.1-8B-Instruct.jinja").Render([SystemMessage("x")], context));
        Assert.Equal("Cannot put tools in the first user message when there's no first user message!", e.Message);
        Assert.True(e.IsRaisedByTemplate);
    }

    [Fact]
    public void Qwen25_NoSystemMessage_AddsDefaultQwenSystemPrompt()
    {
        var prompt = Load("Qwen2.5-7B-Instruct.jinja").Render([User("Hello!")], new ChatTemplateContext());
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            + "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
            prompt);
    }

    [Fact]
    public void Qwen25_SystemAndMultiTurnWithoutGenerationPrompt_RendersChatMl()
    {
        ChatMessage[] messages = [SystemMessage("You are a helpful assistant."), .. MultiTurn];
        var prompt = Load("Qwen2.5-7B-Instruct.jinja").Render(messages, new ChatTemplateContext { AddGenerationPrompt = false });
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            + "<|im_start|>user\nHello!<|im_end|>\n"
            + "<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
            + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
            prompt);
    }

    [Fact]
    public void Qwen25_ToolsCallAndResponse_RendersHermesStyleToolBlocks()
    {
        ChatMessage[] messages =
        [
            User("What's the weather in Paris?"),
            new("assistant", null) { ToolCalls = [WeatherCall] },
            new("tool", "22C"),
        ];
        var context = new ChatTemplateContext { Extra = new Dictionary<string, object?> { ["tools"] = WeatherTools() } };
        var prompt = Load("Qwen2.5-7B-Instruct.jinja").Render(messages, context);
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
            + "You may call one or more functions to assist with the user query.\n\n"
            + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            + "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", "
            + "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n"
            + "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
            + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
            + "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
            + "<|im_start|>assistant\n",
            prompt);
    }

    [Fact]
    public void Qwen3_ThinkingByDefault_EndsWithBareAssistantHeader()
    {
        var prompt = Load("Qwen3-8B.jinja").Render(SystemAndUser, new ChatTemplateContext());
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
            prompt);
    }

    [Fact]
    public void Qwen3_EnableThinkingFalse_AppendsEmptyThinkBlock()
    {
        var context = new ChatTemplateContext { Extra = new Dictionary<string, object?> { ["enable_thinking"] = false } };
        var prompt = Load("Qwen3-8B.jinja").Render([User("Hello!")], context);
        Assert.Equal("<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", prompt);
    }

    [Fact]
    public void Qwen3_EarlierAssistantTurn_DropsItsThinking()
    {
        ChatMessage[] messages = [User("Hello!"), Assistant("<think>\nThe user greets me.\n</think>\n\nHi! How can I help?"), User("What is 2+2?")];
        var prompt = Load("Qwen3-8B.jinja").Render(messages, new ChatTemplateContext());
        Assert.Equal(
            "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
            + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
            prompt);
    }

    [Fact]
    public void Qwen3_FinalAssistantTurnWithReasoning_KeepsThinkBlock()
    {
        ChatMessage[] messages = [User("What is 2+2?"), new("assistant", "4") { ReasoningContent = "2+2=4" }];
        var prompt = Load("Qwen3-8B.jinja").Render(messages, new ChatTemplateContext { AddGenerationPrompt = false });
        Assert.Equal("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n2+2=4\n</think>\n\n4<|im_end|>\n", prompt);
    }

    [Fact]
    public void MistralV03_MultiTurn_RendersInstBlocksWithEos()
    {
        var prompt = Load("Mistral-7B-Instruct-v0.3.jinja").Render(MultiTurn, new ChatTemplateContext { BosToken = "<s>", EosToken = "</s>" });
        Assert.Equal("<s>[INST] Hello![/INST] Hi! How can I help?</s>[INST] What is 2+2?[/INST]", prompt);
    }

    [Fact]
    public void MistralV03_SystemMessage_IsPrependedToFirstUserMessage()
    {
        var prompt = Load("Mistral-7B-Instruct-v0.3.jinja").Render(SystemAndUser, new ChatTemplateContext { BosToken = "<s>", EosToken = "</s>" });
        Assert.Equal("<s>[INST] You are a helpful assistant.\n\nHello![/INST]", prompt);
    }

    [Theory]
    [InlineData("user", "user")]
    [InlineData("assistant", "user")]
    public void MistralV03_RolesDoNotAlternate_RaisesTemplateMessage(string first, string second)
    {
        var e = Assert.Throws<ChatTemplateException>(() =>
            Load("Mistral-7B-Instruct-v0.3.jinja").Render([new(first, "a"), new(second, "b")], new ChatTemplateContext()));
        Assert.Equal("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...", e.Message);
        Assert.True(e.IsRaisedByTemplate);
    }

    [Fact]
    public void MistralV03_ToolsCallAndResult_RendersAvailableToolsAndCallIds()
    {
        ChatMessage[] messages =
        [
            User("What's the weather in Paris?"),
            new("assistant", null) { ToolCalls = [WeatherCall] },
            new("tool", "22") { ToolCallId = "abcdef123" },
        ];
        var context = new ChatTemplateContext { BosToken = "<s>", EosToken = "</s>", Extra = new Dictionary<string, object?> { ["tools"] = WeatherTools() } };
        var prompt = Load("Mistral-7B-Instruct-v0.3.jinja").Render(messages, context);
        Assert.Equal(
            "<s>[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", "
            + "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS]"
            + "[INST] What's the weather in Paris?[/INST]"
            + "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcdef123\"}]</s>"
            + "[TOOL_RESULTS] {\"content\": 22, \"call_id\": \"abcdef123\"}[/TOOL_RESULTS]",
            prompt);
    }

    [Fact]
    public void MistralV03_ToolCallIdOfWrongLength_RaisesTemplateMessage()
    {
        ChatMessage[] messages = [User("Hi"), new("assistant", null) { ToolCalls = [WeatherCall with { Id = "call_1" }] }];
        var e = Assert.Throws<ChatTemplateException>(() => Load("Mistral-7B-Instruct-v0.3.jinja").Render(messages, new ChatTemplateContext()));
        Assert.Equal("Tool call IDs should be alphanumeric strings with length 9!", e.Message);
    }

    [Fact]
    public void ChatMl_SystemAndUser_RendersImStartBlocks()
    {
        var prompt = Load("ChatML.jinja").Render(SystemAndUser, new ChatTemplateContext());
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n", prompt);
    }

    [Fact]
    public void ChatMl_WithoutGenerationPrompt_EndsAfterLastMessage()
    {
        var prompt = Load("ChatML.jinja").Render(MultiTurn, new ChatTemplateContext { AddGenerationPrompt = false });
        Assert.Equal(
            "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
            prompt);
    }

    [Fact]
    public void Gemma2_MultiTurn_MapsAssistantToModel()
    {
        var prompt = Load("Gemma-2-it.jinja").Render(MultiTurn, new ChatTemplateContext { BosToken = "<bos>" });
        Assert.Equal(
            "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi! How can I help?<end_of_turn>\n"
            + "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
            prompt);
    }

    [Fact]
    public void Gemma2_SystemMessage_RaisesTemplateMessage()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Load("Gemma-2-it.jinja").Render(SystemAndUser, new ChatTemplateContext()));
        Assert.Equal("System role not supported", e.Message);
    }

    [Fact]
    public void Phi3_WithAndWithoutGenerationPrompt_EndsWithAssistantTagOrEos()
    {
        var template = Load("Phi-3-mini-instruct.jinja");
        Assert.Equal(
            "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\n",
            template.Render(SystemAndUser, new ChatTemplateContext { EosToken = "<|endoftext|>" }));
        Assert.Equal(
            "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n<|endoftext|>",
            template.Render(SystemAndUser, new ChatTemplateContext { EosToken = "<|endoftext|>", AddGenerationPrompt = false }));
    }

    [Fact]
    public void DeepSeekR1Distill_SystemAndMultiTurn_PutsSystemFirstAndOpensThinkBlock()
    {
        var template = Load("DeepSeek-R1-Distill-Qwen-32B.jinja");
        var context = new ChatTemplateContext { BosToken = "<｜begin▁of▁sentence｜>" };
        Assert.Equal(
            "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>Hello!<｜Assistant｜><think>\n",
            template.Render(SystemAndUser, context));
        Assert.Equal(
            "<｜begin▁of▁sentence｜><｜User｜>Hello!<｜Assistant｜>Hi! How can I help?<｜end▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n",
            template.Render(MultiTurn, context));
    }

    [Fact]
    public void Default_SystemUserAndNullContent_RendersChatMl()
    {
        ChatMessage[] messages = [.. SystemAndUser, Assistant(null)];
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplate.Default.Render(messages, new ChatTemplateContext()));
        Assert.Equal(ChatTemplate.DefaultSource, ChatTemplate.Default.Source);
    }
}
