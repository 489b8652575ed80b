using Tandem.Abstractions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Tandem.Runtime;

/// <summary>
/// Discovery from a fixed topology file (`--config cluster.yaml`), for separate processes without etcd:
/// <code>
/// model: stories260K            # served name, default for every worker
/// workers:
///   - id: prefill-0
///     role: prefill             # both | prefill | decode
///     rpc: http://127.0.0.1:9100
///     kv: tcp://127.0.0.1:9200
///   - id: decode-0
///     role: decode
///     rpc: http://127.0.0.1:9101
///     kv: tcp://127.0.0.1:9201
/// </code>
/// The snapshot never changes; a worker that is down is found out by the request plane, and requests go elsewhere.
/// </summary>
public sealed class StaticDiscovery(DiscoverySnapshot snapshot) : IDiscovery
{
    public DiscoverySnapshot Current { get; } = snapshot;

    public event Action<DiscoverySnapshot>? Changed
    {
        add { }
        remove { }
    }

    /// <summary>Reads a topology file; errors name the file and the line.</summary>
    public static StaticDiscovery Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{path}: cannot read the topology file: {e.Message}");
        }
        return new StaticDiscovery(Parse(text, path));
    }

    public static DiscoverySnapshot Parse(string yaml, string source = "topology")
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new ArgumentException($"{source}:{e.Start.Line}: {e.Message}");
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ArgumentException($"{source}: expected a mapping with 'workers'");
        }
        var model = Scalar(root, "model", source);
        if (!root.Children.TryGetValue(new YamlScalarNode("workers"), out var workersNode) || workersNode is not YamlSequenceNode workers || workers.Children.Count == 0)
        {
            throw new ArgumentException($"{source}:{root.Start.Line}: 'workers' must be a non-empty list");
        }
        var list = new List<WorkerInstance>();
        foreach (var node in workers.Children)
        {
            if (node is not YamlMappingNode w)
            {
                throw new ArgumentException($"{source}:{node.Start.Line}: each worker must be a mapping with id, role, rpc");
            }
            foreach (var key in w.Children.Keys.OfType<YamlScalarNode>())
            {
                if (key.Value is not ("id" or "role" or "rpc" or "kv" or "model" or "fingerprint" or "kv_block_size"))
                {
                    throw new ArgumentException($"{source}:{key.Start.Line}: unknown key '{key.Value}' (known: id, role, rpc, kv, model, fingerprint, kv_block_size)");
                }
            }
            var id = Scalar(w, "id", source) ?? throw new ArgumentException($"{source}:{w.Start.Line}: a worker needs 'id'");
            var role = Scalar(w, "role", source) switch
            {
                null or "both" => WorkerRole.Both,
                "prefill" => WorkerRole.Prefill,
                "decode" => WorkerRole.Decode,
                var other => throw new ArgumentException($"{source}:{w.Start.Line}: role must be both, prefill or decode, got '{other}'"),
            };
            var endpoints = new Dictionary<string, string>(StringComparer.Ordinal);
            endpoints["rpc"] = Scalar(w, "rpc", source) ?? throw new ArgumentException($"{source}:{w.Start.Line}: worker '{id}' needs 'rpc' (e.g. http://127.0.0.1:9100)");
            if (Scalar(w, "kv", source) is { } kv)
            {
                endpoints["kv"] = kv;
            }
            if (list.Any(x => x.InstanceId == id))
            {
                throw new ArgumentException($"{source}:{w.Start.Line}: duplicate worker id '{id}'");
            }
            list.Add(new WorkerInstance
            {
                InstanceId = id,
                Role = role,
                Model = Scalar(w, "model", source) ?? model ?? throw new ArgumentException($"{source}:{w.Start.Line}: worker '{id}' has no model (set 'model' at the top or on the worker)"),
                ModelFingerprint = Scalar(w, "fingerprint", source) ?? "",
                KvBlockSize = int.TryParse(Scalar(w, "kv_block_size", source), out var bs) ? bs : 0,
                Endpoints = endpoints,
            });
        }
        return new DiscoverySnapshot(list, 1);
    }

    private static string? Scalar(YamlMappingNode map, string key, string source)
    {
        if (!map.Children.TryGetValue(new YamlScalarNode(key), out var node))
        {
            return null;
        }
        return node is YamlScalarNode { Value: { } value } ? value : throw new ArgumentException($"{source}:{node.Start.Line}: '{key}' must be a plain value");
    }
}
