namespace Tandem.Abstractions;

/// <summary>The request cannot be served as asked (too long, bad settings); a frontend answers 400.</summary>
public class InvalidRequestException(string message, string? param = null) : ArgumentException(message, param);

/// <summary>The engine's admission queue is full; a frontend answers 429 with Retry-After.</summary>
public class EngineOverloadedException(string message) : Exception(message);

/// <summary>The engine stopped (disposed or failed) before the request could finish; a frontend answers 503.</summary>
public class EngineUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
