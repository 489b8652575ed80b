using System.Globalization;

namespace Tandem.Engine.Formats.HuggingFace;

/// <summary>Maps Hugging Face llama-family tensor names to the canonical (GGUF) names the engine uses.</summary>
public static class HfTensorNames
{
    private static readonly Dictionary<string, string> Global = new(StringComparer.Ordinal)
    {
        ["model.embed_tokens.weight"] = "token_embd.weight",
        ["model.norm.weight"] = "output_norm.weight",
        ["lm_head.weight"] = "output.weight",
    };

    private static readonly Dictionary<string, string> Layer = new(StringComparer.Ordinal)
    {
        ["input_layernorm.weight"] = "attn_norm.weight",
        ["self_attn.q_proj.weight"] = "attn_q.weight",
        ["self_attn.k_proj.weight"] = "attn_k.weight",
        ["self_attn.v_proj.weight"] = "attn_v.weight",
        ["self_attn.q_proj.bias"] = "attn_q.bias",
        ["self_attn.k_proj.bias"] = "attn_k.bias",
        ["self_attn.v_proj.bias"] = "attn_v.bias",
        ["self_attn.o_proj.weight"] = "attn_output.weight",
        ["self_attn.q_norm.weight"] = "attn_q_norm.weight",
        ["self_attn.k_norm.weight"] = "attn_k_norm.weight",
        ["post_attention_layernorm.weight"] = "ffn_norm.weight",
        ["mlp.gate_proj.weight"] = "ffn_gate.weight",
        ["mlp.up_proj.weight"] = "ffn_up.weight",
        ["mlp.down_proj.weight"] = "ffn_down.weight",
    };

    /// <summary>The canonical name, or null for tensors the engine does not use (e.g. rotary_emb.inv_freq).</summary>
    public static string? ToCanonical(string hfName)
    {
        ArgumentNullException.ThrowIfNull(hfName);
        if (Global.TryGetValue(hfName, out var g))
        {
            return g;
        }
        const string prefix = "model.layers.";
        if (!hfName.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }
        var rest = hfName.AsSpan(prefix.Length);
        var dot = rest.IndexOf('.');
        if (dot <= 0 || !int.TryParse(rest[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out var layer)
            || rest[..dot].ToString() != layer.ToString(CultureInfo.InvariantCulture))
        {
            return null;
        }
        return Layer.TryGetValue(rest[(dot + 1)..].ToString(), out var suffix) ? $"blk.{layer}.{suffix}" : null;
    }

    /// <summary>The Hugging Face name of a canonical name, or null.</summary>
    public static string? FromCanonical(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var (hf, c) in Global)
        {
            if (c == name)
            {
                return hf;
            }
        }
        if (!name.StartsWith("blk.", StringComparison.Ordinal))
        {
            return null;
        }
        var rest = name.AsSpan(4);
        var dot = rest.IndexOf('.');
        if (dot <= 0)
        {
            return null;
        }
        var layer = rest[..dot].ToString();
        var suffix = rest[(dot + 1)..].ToString();
        foreach (var (hf, c) in Layer)
        {
            if (c == suffix)
            {
                return $"model.layers.{layer}.{hf}";
            }
        }
        return null;
    }
}
