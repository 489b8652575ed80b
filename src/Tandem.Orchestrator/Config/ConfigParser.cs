using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Tandem.Orchestrator.Config;

/// <summary>
/// Reads TensorRT-LLM's <c>disagg_config.yaml</c> and <c>metadata_config.yml</c>. Every error names the file, line and
/// column; keys that are accepted but do not apply (engine options of the servers) and keys nobody knows become
/// warnings with their position, so a file written for <c>trtllm-serve disaggregated</c> loads unchanged.
/// </summary>
public static class ConfigParser
{
    private static readonly HashSet<string> TopLevelKeys =
        ["hostname", "port", "model", "backend", "max_retries", "context_servers", "generation_servers", "conditional_disagg_config"];

    /// <summary>Orchestrator features of TensorRT-LLM that Tandem does not have: read, reported, ignored.</summary>
    private static readonly HashSet<string> UnsupportedOrchestratorKeys =
        ["schedule_style", "perf_metrics_max_requests", "otlp_config", "disagg_cluster", "node_id", "server_start_timeout", "request_timeout"];

    private static readonly HashSet<string> PoolKeys = ["num_instances", "urls", "router"];

    private static readonly HashSet<string> RouterKeys = ["type", "use_tokens", "max_cache_size", "tokens_per_block"];

    /// <summary>Options of TensorRT-LLM's engine (LLM API arguments) that a server section may carry; Tandem workers take their own flags.</summary>
    private static readonly HashSet<string> EngineOptions =
    [
        "tensor_parallel_size", "pipeline_parallel_size", "context_parallel_size", "moe_expert_parallel_size", "moe_tensor_parallel_size",
        "enable_attention_dp", "kv_cache_config", "cache_transceiver_config", "use_cuda_graph", "cuda_graph_config", "cuda_graph_batch_sizes",
        "cuda_graph_max_batch_size", "cuda_graph_padding_enabled", "disable_overlap_scheduler", "max_batch_size", "max_num_tokens", "max_seq_len",
        "max_input_len", "max_beam_width", "enable_chunked_prefill", "free_gpu_memory_fraction", "speculative_config", "print_iter_log",
        "enable_iter_perf_stats", "kv_cache_dtype", "scheduler_config", "attn_backend", "moe_config", "moe_backend", "trust_remote_code",
        "tokenizer", "dtype", "enable_autotuner", "guided_decoding_backend", "stream_interval", "return_perf_metrics", "build_config",
        "lora_config", "num_postprocess_workers", "gpus_per_node", "load_format", "sampler_type", "batch_wait_timeout_ms",
        "torch_compile_config", "enable_layerwise_nvtx_marker", "pytorch_backend_config", "max_draft_len", "num_instances_per_node",
    ];

    public static DisaggConfig LoadDisagg(string path, bool dynamicServers = false) => ParseDisagg(Read(path), path, dynamicServers);

    public static MetadataConfig LoadMetadata(string path) => ParseMetadata(Read(path), path);

    /// <summary>
    /// Parses a disaggregated-server file. With <paramref name="dynamicServers"/> (metadata-server mode) the URL lists
    /// may be empty: servers then register themselves.
    /// </summary>
    public static DisaggConfig ParseDisagg(string yaml, string source = "disagg_config.yaml", bool dynamicServers = false)
    {
        var root = Root(yaml, source);
        var warnings = new List<string>();
        var engineOptionsAtTop = new List<string>();
        foreach (var (keyNode, _) in root.Children)
        {
            var key = KeyName(keyNode, source);
            if (TopLevelKeys.Contains(key))
            {
                continue;
            }
            if (UnsupportedOrchestratorKeys.Contains(key))
            {
                warnings.Add($"{Where(source, keyNode)}: '{key}' is not supported by the Tandem orchestrator and is ignored");
            }
            else if (EngineOptions.Contains(key))
            {
                engineOptionsAtTop.Add(key);
                warnings.Add($"{Where(source, keyNode)}: engine option '{key}' is ignored (start Tandem workers with their own flags)");
            }
            else
            {
                warnings.Add($"{Where(source, keyNode)}: unknown key '{key}' is ignored");
            }
        }
        var context = Pool(root, "context_servers", source, dynamicServers, warnings);
        var generation = Pool(root, "generation_servers", source, dynamicServers, warnings);
        ConditionalDisaggConfig? conditional = null;
        if (Child(root, "conditional_disagg_config") is { } cNode)
        {
            var c = Mapping(cNode, "conditional_disagg_config", source);
            foreach (var (k, _) in c.Children)
            {
                var name = KeyName(k, source);
                if (name != "max_local_prefill_length")
                {
                    warnings.Add($"{Where(source, k)}: unknown key 'conditional_disagg_config.{name}' is ignored");
                }
            }
            conditional = new ConditionalDisaggConfig(Int(c, "max_local_prefill_length", source, 0, int.MaxValue) ?? 0);
        }
        if (!dynamicServers && generation.Urls.Count == 0)
        {
            throw new ConfigException($"{Where(source, root)}: 'generation_servers' lists no urls; at least one generation server is needed");
        }
        return new DisaggConfig
        {
            Hostname = Str(root, "hostname", source) ?? "localhost",
            Port = Int(root, "port", source, 0, 65535) ?? 8000,
            Model = Str(root, "model", source),
            Backend = Str(root, "backend", source),
            MaxRetries = Int(root, "max_retries", source, 0, 100) ?? 1,
            ContextServers = context,
            GenerationServers = generation,
            ConditionalDisagg = conditional,
            Warnings = warnings,
        };
    }

    public static MetadataConfig ParseMetadata(string yaml, string source = "metadata_config.yml")
    {
        var root = Root(yaml, source);
        var warnings = new List<string>();
        foreach (var (k, _) in root.Children)
        {
            var key = KeyName(k, source);
            if (key is not ("server_type" or "hostname" or "port" or "health_check_timeout" or "refresh_interval"))
            {
                warnings.Add($"{Where(source, k)}: unknown key '{key}' is ignored");
            }
        }
        var type = Str(root, "server_type", source) ?? "etcd";
        if (type != "etcd")
        {
            throw new ConfigException($"{Where(source, Child(root, "server_type")!)}: server_type '{type}' is not supported (only etcd)");
        }
        return new MetadataConfig
        {
            ServerType = type,
            Hostname = Str(root, "hostname", source) ?? "localhost",
            Port = Int(root, "port", source, 1, 65535) ?? 2379,
            HealthCheckTimeout = Seconds(root, "health_check_timeout", source) ?? TimeSpan.FromSeconds(5),
            RefreshInterval = Seconds(root, "refresh_interval", source) ?? TimeSpan.FromSeconds(10),
            Warnings = warnings,
        };
    }

    /// <summary><c>host:port</c>, <c>http://host:port</c> or <c>https://host:port[/path]</c> as an absolute base URL.</summary>
    public static Uri NormalizeUrl(string text)
    {
        var value = text.Trim();
        if (!value.Contains("://", StringComparison.Ordinal))
        {
            value = "http://" + value;
        }
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException($"'{text}' is not a server address (expected host:port or http://host:port)");
        }
        return new Uri(uri.GetLeftPart(UriPartial.Authority) + uri.AbsolutePath.TrimEnd('/') + "/");
    }

    private static ServerPoolConfig Pool(YamlMappingNode root, string name, string source, bool dynamicServers, List<string> warnings)
    {
        var node = Child(root, name);
        if (node is null)
        {
            if (dynamicServers)
            {
                return new ServerPoolConfig();
            }
            throw new ConfigException($"{Where(source, root)}: '{name}' is required");
        }
        if (node is YamlScalarNode { Value: null or "" or "~" or "null" } && dynamicServers)
        {
            return new ServerPoolConfig();
        }
        var pool = Mapping(node, name, source);
        var ignored = new List<string>();
        foreach (var (k, _) in pool.Children)
        {
            var key = KeyName(k, source);
            if (PoolKeys.Contains(key))
            {
                continue;
            }
            if (EngineOptions.Contains(key))
            {
                ignored.Add(key);
                warnings.Add($"{Where(source, k)}: engine option '{name}.{key}' is ignored (start Tandem workers with their own flags)");
            }
            else
            {
                warnings.Add($"{Where(source, k)}: unknown key '{name}.{key}' is ignored");
            }
        }
        var urls = new List<Uri>();
        if (Child(pool, "urls") is { } urlsNode && urlsNode is not YamlScalarNode { Value: null or "" or "~" or "null" })
        {
            if (urlsNode is not YamlSequenceNode list)
            {
                throw new ConfigException($"{Where(source, urlsNode)}: '{name}.urls' must be a list of host:port strings");
            }
            foreach (var item in list.Children)
            {
                if (item is not YamlScalarNode { Value: { Length: > 0 } text })
                {
                    throw new ConfigException($"{Where(source, item)}: each entry of '{name}.urls' must be a host:port string");
                }
                try
                {
                    var url = NormalizeUrl(text);
                    if (urls.Contains(url))
                    {
                        throw new ConfigException($"{Where(source, item)}: '{text}' is listed twice in '{name}.urls'");
                    }
                    urls.Add(url);
                }
                catch (ArgumentException e)
                {
                    throw new ConfigException($"{Where(source, item)}: {name}.urls: {e.Message}");
                }
            }
        }
        var instances = Int(pool, "num_instances", source, 0, 100_000, name + ".");
        if (instances is { } n && urls.Count > 0 && n != urls.Count)
        {
            throw new ConfigException($"{Where(source, Child(pool, "num_instances")!)}: '{name}.num_instances' is {n} but '{name}.urls' lists {urls.Count} servers; they must match");
        }
        if (instances is > 0 && urls.Count == 0 && !dynamicServers)
        {
            throw new ConfigException($"{Where(source, pool)}: '{name}' has num_instances {instances} but no urls (without a metadata server, list each server's host:port)");
        }
        return new ServerPoolConfig
        {
            NumInstances = instances ?? urls.Count,
            Urls = urls,
            Router = Router(pool, name, source, warnings),
            IgnoredOptions = ignored,
        };
    }

    private static RouterConfig Router(YamlMappingNode pool, string pool_, string source, List<string> warnings)
    {
        if (Child(pool, "router") is not { } node)
        {
            return new RouterConfig();
        }
        var router = Mapping(node, pool_ + ".router", source);
        foreach (var (k, _) in router.Children)
        {
            var key = KeyName(k, source);
            if (!RouterKeys.Contains(key))
            {
                warnings.Add($"{Where(source, k)}: unknown key '{pool_}.router.{key}' is ignored");
            }
        }
        var typeText = Str(router, "type", source) ?? "round_robin";
        var type = typeText switch
        {
            "round_robin" => RouterType.RoundRobin,
            "load_balancing" => RouterType.LoadBalancing,
            "kv_cache_aware" => RouterType.KvCacheAware,
            _ => throw new ConfigException($"{Where(source, Child(router, "type")!)}: '{pool_}.router.type' must be round_robin, load_balancing or kv_cache_aware, got '{typeText}'"),
        };
        return new RouterConfig(type) { UseTokens = Bool(router, "use_tokens", source) ?? false };
    }

    private static string Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read the file: {e.Message}");
        }
    }

    private static YamlMappingNode Root(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{source}:{e.Start.Line}:{e.Start.Column}: invalid YAML: {Inner(e).Message}");
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ConfigException($"{source}:1:1: expected a mapping of settings (key: value lines)");
        }
        return root;
    }

    private static Exception Inner(Exception e) => e.InnerException is YamlException inner ? Inner(inner) : e;

    private static string Where(string source, YamlNode node) => $"{source}:{node.Start.Line}:{node.Start.Column}";

    private static string KeyName(YamlNode key, string source) =>
        key is YamlScalarNode { Value: { } v } ? v : throw new ConfigException($"{Where(source, key)}: keys must be plain names");

    private static YamlNode? Child(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    private static YamlMappingNode Mapping(YamlNode node, string name, string source) =>
        node as YamlMappingNode ?? throw new ConfigException($"{Where(source, node)}: '{name}' must be a mapping of settings");

    private static string? Str(YamlMappingNode map, string key, string source)
    {
        return Child(map, key) switch
        {
            null => null,
            YamlScalarNode s => string.IsNullOrWhiteSpace(s.Value) ? null : s.Value,
            var other => throw new ConfigException($"{Where(source, other)}: '{key}' must be a single value"),
        };
    }

    private static int? Int(YamlMappingNode map, string key, string source, int min, int max, string prefix = "")
    {
        if (Child(map, key) is not { } node)
        {
            return null;
        }
        if (node is YamlScalarNode s && long.TryParse(s.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
        {
            return v >= min && v <= max
                ? (int)v
                : throw new ConfigException($"{Where(source, node)}: '{prefix}{key}' must be in {min}..{max}, got {v}");
        }
        throw new ConfigException($"{Where(source, node)}: '{prefix}{key}' must be an integer, got '{(node as YamlScalarNode)?.Value ?? node.NodeType.ToString()}'");
    }

    private static bool? Bool(YamlMappingNode map, string key, string source)
    {
        if (Child(map, key) is not { } node)
        {
            return null;
        }
        return node is YamlScalarNode { Value: { } v } && v.ToLowerInvariant() is "true" or "false"
            ? v.Equals("true", StringComparison.OrdinalIgnoreCase)
            : throw new ConfigException($"{Where(source, node)}: '{key}' must be true or false");
    }

    private static TimeSpan? Seconds(YamlMappingNode map, string key, string source)
    {
        if (Child(map, key) is not { } node)
        {
            return null;
        }
        if (node is YamlScalarNode s && double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 && v < 86_400)
        {
            return TimeSpan.FromSeconds(v);
        }
        throw new ConfigException($"{Where(source, node)}: '{key}' must be a positive number of seconds, got '{(node as YamlScalarNode)?.Value}'");
    }
}
