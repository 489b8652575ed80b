using Tandem.Abstractions;

namespace Tandem.Runtime.Grpc;

/// <summary>
/// A call to a worker ran past its deadline. An <see cref="EngineUnavailableException"/>, so callers that retry on
/// another worker or answer 503 treat it like a lost worker; catch this type to tell a timeout apart.
/// </summary>
public class WorkerDeadlineExceededException(string message, Exception? inner = null) : EngineUnavailableException(message, inner);
