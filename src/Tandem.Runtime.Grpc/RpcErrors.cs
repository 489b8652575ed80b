using Grpc.Core;
using Tandem.Abstractions;

namespace Tandem.Runtime.Grpc;

/// <summary>
/// The one table between engine exceptions and gRPC status codes, used by both sides so an exception thrown by a worker
/// reaches the caller as the same type with the same message.
/// </summary>
internal static class RpcErrors
{
    /// <summary>Server side: the status a worker exception is answered with.</summary>
    public static RpcException ToRpc(Exception exception) => exception switch
    {
        RpcException rpc => rpc,
        InvalidRequestException or ArgumentException => Rpc(StatusCode.InvalidArgument, exception.Message),
        EngineOverloadedException => Rpc(StatusCode.ResourceExhausted, exception.Message),
        EngineUnavailableException => Rpc(StatusCode.Unavailable, exception.Message),
        KvTransferException => Rpc(StatusCode.FailedPrecondition, exception.Message),
        NotSupportedException => Rpc(StatusCode.Unimplemented, exception.Message),
        OperationCanceledException => Rpc(StatusCode.Cancelled, exception.Message),
        TimeoutException => Rpc(StatusCode.DeadlineExceeded, exception.Message),
        _ => Rpc(StatusCode.Internal, $"{exception.GetType().Name}: {exception.Message}"),
    };

    /// <summary>
    /// Client side: the engine exception for a failed call. Cancellation by the caller's own token becomes
    /// <see cref="OperationCanceledException"/>; everything that means "this worker cannot serve it now" becomes
    /// <see cref="EngineUnavailableException"/> so the frontend tries another worker.
    /// </summary>
    public static Exception FromRpc(RpcException exception, string instanceId, CancellationToken cancellationToken)
    {
        var detail = exception.Status.Detail;
        return exception.StatusCode switch
        {
            StatusCode.Cancelled when cancellationToken.IsCancellationRequested => new OperationCanceledException(detail, exception, cancellationToken),
            StatusCode.InvalidArgument or StatusCode.OutOfRange => new InvalidRequestException(detail),
            StatusCode.ResourceExhausted => new EngineOverloadedException(detail),
            StatusCode.FailedPrecondition or StatusCode.Aborted => new KvTransferException(detail, exception),
            StatusCode.Unimplemented => new NotSupportedException(detail, exception),
            StatusCode.DeadlineExceeded => new WorkerDeadlineExceededException($"worker {instanceId}: deadline exceeded ({detail})", exception),
            StatusCode.Unavailable => new EngineUnavailableException(string.IsNullOrEmpty(detail) ? $"worker {instanceId} is unavailable" : detail, exception),
            _ => new EngineUnavailableException($"worker {instanceId} failed: {exception.StatusCode}: {detail}", exception),
        };
    }

    private static RpcException Rpc(StatusCode code, string message) => new(new Status(code, message));
}
