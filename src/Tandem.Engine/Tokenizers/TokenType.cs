namespace Tandem.Engine.Tokenizers;

/// <summary>GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).</summary>
internal enum TokenType
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>Special ids of a vocabulary; -1 where absent.</summary>
internal readonly record struct SpecialTokenIds(int Bos, int Eos, int Unknown, int Padding, int Eot, int Eom)
{
    public static SpecialTokenIds None => new(-1, -1, -1, -1, -1, -1);
}
