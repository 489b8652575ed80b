using Microsoft.Extensions.Logging;

namespace Tandem.Runtime.Etcd;

public sealed partial class EtcdDiscovery
{
    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "discovery {Namespace}: loaded {Count} instance(s) at revision {Revision} (load #{Loads})")]
        public static partial void Loaded(ILogger logger, string @namespace, int count, long revision, int loads);

        [LoggerMessage(2, LogLevel.Debug, "discovery {Namespace}: watching from revision {Revision}")]
        public static partial void Watching(ILogger logger, string @namespace, long revision);

        [LoggerMessage(3, LogLevel.Warning, "discovery {Namespace}: etcd connection lost; reconnecting and reloading in {Delay}")]
        public static partial void ConnectionLost(ILogger logger, string @namespace, TimeSpan delay, Exception exception);

        [LoggerMessage(4, LogLevel.Information, "discovery {Namespace}: reloading everything: {Reason}")]
        public static partial void Resync(ILogger logger, string @namespace, string reason);

        [LoggerMessage(5, LogLevel.Warning, "discovery: ignoring the invalid record under {Key}: {Reason}")]
        public static partial void InvalidRecord(ILogger logger, string key, string reason);

        [LoggerMessage(6, LogLevel.Error, "a Changed handler threw")]
        public static partial void HandlerFailed(ILogger logger, Exception exception);
    }
}
