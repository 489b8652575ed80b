using Microsoft.Extensions.Logging;

namespace Tandem.Runtime.Etcd;

public sealed partial class EtcdRegistration
{
    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Information, "registered {Key} under lease {LeaseId:x} (TTL {Ttl} s, registration #{Count})")]
        public static partial void Registered(ILogger logger, string key, long leaseId, long ttl, int count);

        [LoggerMessage(21, LogLevel.Warning, "registering {Key} failed; retrying in {Delay}")]
        public static partial void RegisterFailed(ILogger logger, string key, TimeSpan delay, Exception exception);

        [LoggerMessage(22, LogLevel.Warning, "lease {LeaseId:x} of {Key} is gone (expired or etcd lost it); registering again")]
        public static partial void LeaseLost(ILogger logger, string key, long leaseId);

        [LoggerMessage(23, LogLevel.Warning, "refreshing lease {LeaseId:x} of {Key} failed; retrying in {Delay}")]
        public static partial void KeepAliveFailed(ILogger logger, string key, long leaseId, TimeSpan delay, Exception exception);

        [LoggerMessage(24, LogLevel.Information, "deregistered {Key} and revoked lease {LeaseId:x}")]
        public static partial void Deregistered(ILogger logger, string key, long leaseId);

        [LoggerMessage(25, LogLevel.Warning, "deregistering {Key} failed; its keys expire with lease {LeaseId:x}")]
        public static partial void DeregisterFailed(ILogger logger, string key, long leaseId, Exception exception);

        [LoggerMessage(26, LogLevel.Debug, "revoking lease {LeaseId:x} failed: {Detail}")]
        public static partial void RevokeFailed(ILogger logger, long leaseId, string detail);

        [LoggerMessage(27, LogLevel.Debug, "registration {Key}: {Old} -> {New}")]
        public static partial void StateChanged(ILogger logger, string key, RegistrationState old, RegistrationState @new);

        [LoggerMessage(28, LogLevel.Error, "a StateChanged handler threw")]
        public static partial void HandlerFailed(ILogger logger, Exception exception);
    }
}
