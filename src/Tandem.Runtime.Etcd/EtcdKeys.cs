using System.Text;

namespace Tandem.Runtime.Etcd;

/// <summary>
/// The key layout (blueprint §5). Every path segment taken from a name is percent-escaped, so a model called
/// <c>org/model</c> stays one segment: <c>/tandem/v1/{namespace}/models/org%2Fmodel/{instance_id}</c>.
/// </summary>
public static class EtcdKeys
{
    public const string Root = "/tandem/v1/";

    /// <summary>Everything of one namespace: <c>/tandem/v1/{namespace}/</c>.</summary>
    public static string NamespacePrefix(string ns) => Root + Segment(ns) + "/";

    /// <summary>All instance records of one namespace.</summary>
    public static string InstancesPrefix(string ns) => NamespacePrefix(ns) + "instances/";

    /// <summary>All model records of one namespace.</summary>
    public static string ModelsPrefix(string ns) => NamespacePrefix(ns) + "models/";

    /// <summary><c>/tandem/v1/{namespace}/instances/{component}/{instance_id}</c>.</summary>
    public static string InstanceKey(string ns, string component, string instanceId) =>
        InstancesPrefix(ns) + Segment(component) + "/" + Segment(instanceId);

    /// <summary><c>/tandem/v1/{namespace}/models/{model}/{instance_id}</c>.</summary>
    public static string ModelKey(string ns, string model, string instanceId) =>
        ModelsPrefix(ns) + Segment(model) + "/" + Segment(instanceId);

    /// <summary>The first key after every key starting with <paramref name="prefix"/> (etcd's range end for a prefix).</summary>
    public static byte[] PrefixRangeEnd(string prefix)
    {
        var bytes = Encoding.UTF8.GetBytes(prefix);
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            if (bytes[i] < 0xff)
            {
                bytes[i]++;
                return bytes[..(i + 1)];
            }
        }
        return [0]; // all 0xff: to the end of the key space
    }

    internal static void ValidateNamespace(string ns)
    {
        if (string.IsNullOrWhiteSpace(ns))
        {
            throw new ArgumentException("namespace must not be empty", nameof(ns));
        }
    }

    private static string Segment(string value)
    {
        if (string.IsNullOrEmpty(value))
        {
            throw new ArgumentException("a key segment must not be empty", nameof(value));
        }
        return Uri.EscapeDataString(value);
    }
}
