using Tandem.Orchestrator.Config;

namespace Tandem.Orchestrator.Tests;

public class ConfigParserTests
{
    /// <summary>The file from TensorRT-LLM's examples/disaggregated README (two context servers, one generation server).</summary>
    internal const string DocsConfig = """
        hostname: localhost
        port: 8000
        backend: pytorch
        context_servers:
          num_instances: 2
          urls:
              - "localhost:8001"
              - "localhost:8002"
        generation_servers:
          num_instances: 1
          urls:
              - "localhost:8003"
        """;

    [Fact]
    public void ParseDisagg_DocumentationExample_ReadsServersAndDefaults()
    {
        var config = ConfigParser.ParseDisagg(DocsConfig);
        Assert.Equal("localhost", config.Hostname);
        Assert.Equal(8000, config.Port);
        Assert.Equal("pytorch", config.Backend);
        Assert.Equal([new Uri("http://localhost:8001/"), new Uri("http://localhost:8002/")], config.ContextServers.Urls);
        Assert.Equal([new Uri("http://localhost:8003/")], config.GenerationServers.Urls);
        Assert.Equal(RouterType.RoundRobin, config.ContextServers.Router.Type);
        Assert.Null(config.ConditionalDisagg);
        Assert.Empty(config.Warnings);
    }

    [Fact]
    public void ParseDisagg_EngineOptionsRoutersAndConditional_AreReadAndWarned()
    {
        var config = ConfigParser.ParseDisagg("""
            hostname: 0.0.0.0
            port: 9000
            model: TinyLlama/TinyLlama-1.1B-Chat-v1.0
            backend: "pytorch"
            use_cuda_graph: False
            disable_overlap_scheduler: True
            max_retries: 3
            colour: blue
            conditional_disagg_config:
              max_local_prefill_length: 100
            context_servers:
              num_instances: 1
              tensor_parallel_size: 1
              kv_cache_config:
                free_gpu_memory_fraction: 0.9
              router:
                type: load_balancing
                use_tokens: true
              urls:
                - "http://10.0.0.1:8001"
            generation_servers:
              num_instances: 1
              router:
                type: kv_cache_aware
              urls:
                - "localhost:8003"
            """);
        Assert.Equal(9000, config.Port);
        Assert.Equal(3, config.MaxRetries);
        Assert.Equal("TinyLlama/TinyLlama-1.1B-Chat-v1.0", config.Model);
        Assert.Equal(100, config.ConditionalDisagg!.MaxLocalPrefillLength);
        Assert.Equal(new RouterConfig(RouterType.LoadBalancing) { UseTokens = true }, config.ContextServers.Router);
        Assert.Equal(RouterType.KvCacheAware, config.GenerationServers.Router.Type);
        Assert.Equal(["tensor_parallel_size", "kv_cache_config"], config.ContextServers.IgnoredOptions);
        Assert.Contains(config.Warnings, w => w.StartsWith("disagg_config.yaml:5:1: engine option 'use_cuda_graph' is ignored", StringComparison.Ordinal));
        Assert.Contains(config.Warnings, w => w.StartsWith("disagg_config.yaml:8:1: unknown key 'colour'", StringComparison.Ordinal));
        Assert.Contains(config.Warnings, w => w.Contains(":13:3: engine option 'context_servers.tensor_parallel_size' is ignored", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("port: [1\n", ":1:")]
    [InlineData("context_servers:\n  urls: [\"a:1\"]\ngeneration_servers:\n  num_instances: 2\n  urls:\n    - \"b:2\"\n", "disagg_config.yaml:4:18: 'generation_servers.num_instances' is 2 but 'generation_servers.urls' lists 1")]
    [InlineData("port: eighty\ncontext_servers:\n  urls: [\"a:1\"]\ngeneration_servers:\n  urls: [\"b:2\"]\n", "disagg_config.yaml:1:7: 'port' must be an integer")]
    [InlineData("context_servers:\n  urls: [\"a:1\"]\n  router:\n    type: fastest\ngeneration_servers:\n  urls: [\"b:2\"]\n", "disagg_config.yaml:4:11: 'context_servers.router.type' must be round_robin, load_balancing or kv_cache_aware, got 'fastest'")]
    [InlineData("context_servers:\n  urls: [\"a:1\"]\n", "'generation_servers' is required")]
    [InlineData("context_servers:\n  urls: [\"ftp://x:1\"]\ngeneration_servers:\n  urls: [\"b:2\"]\n", "disagg_config.yaml:2:10: context_servers.urls: 'ftp://x:1' is not a server address")]
    [InlineData("- a\n- b\n", "disagg_config.yaml:1:1: expected a mapping")]
    public void ParseDisagg_InvalidFile_FailsWithPosition(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigParser.ParseDisagg(yaml));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseDisagg_DynamicServers_AllowsEmptyPools()
    {
        var config = ConfigParser.ParseDisagg("hostname: localhost\nport: 8000\ncontext_servers:\n  num_instances: 0\ngeneration_servers:\n  num_instances: 0\n", dynamicServers: true);
        Assert.Empty(config.ContextServers.Urls);
        Assert.Empty(config.GenerationServers.Urls);
        Assert.Throws<ConfigException>(() => ConfigParser.ParseDisagg("context_servers:\n  num_instances: 0\ngeneration_servers:\n  num_instances: 0\n"));
    }

    [Fact]
    public void ParseMetadata_ReadsAllFieldsAndRejectsOtherStores()
    {
        var config = ConfigParser.ParseMetadata("server_type: etcd\nhostname: 127.0.0.1\nport: 2379\nhealth_check_timeout: 5.0\nrefresh_interval: 10.0\n");
        Assert.Equal("etcd://127.0.0.1:2379", config.EtcdEndpoint);
        Assert.Equal(TimeSpan.FromSeconds(5), config.HealthCheckTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), config.RefreshInterval);
        var e = Assert.Throws<ConfigException>(() => ConfigParser.ParseMetadata("server_type: redis\n"));
        Assert.Contains("metadata_config.yml:1:14: server_type 'redis' is not supported", e.Message, StringComparison.Ordinal);
        Assert.Throws<ConfigException>(() => ConfigParser.ParseMetadata("refresh_interval: -1\n"));
    }

    [Fact]
    public void ParseDisagg_RandomBytes_FailWithConfigExceptionOnly()
    {
        const string Alphabet = "abc:-[]{}\"' \n\t,#&*!|>%@`0123456789_";
        var random = new Random(7);
        for (var i = 0; i < 300; i++)
        {
            var chars = new char[random.Next(1, 80)];
            for (var j = 0; j < chars.Length; j++)
            {
                chars[j] = Alphabet[random.Next(Alphabet.Length)];
            }
            try
            {
                ConfigParser.ParseDisagg(new string(chars));
            }
            catch (ConfigException)
            {
            }
        }
    }
}
