namespace Tandem.Nats.Protocol;

internal enum ServerOpKind
{
    Info,
    Msg,
    Ping,
    Pong,
    Ok,
    Err,
}

/// <summary>
/// One operation read from the server. For <see cref="ServerOpKind.Msg"/> (MSG and HMSG) the subject, sid, reply and
/// the header block and payload (slices of one array) are set; INFO and -ERR carry their text.
/// </summary>
internal readonly record struct ServerOp(
    ServerOpKind Kind,
    string? Text = null,
    string? Subject = null,
    long Sid = 0,
    string? ReplyTo = null,
    ReadOnlyMemory<byte> HeaderBlock = default,
    ReadOnlyMemory<byte> Payload = default)
{
    public bool HasHeaders => !HeaderBlock.IsEmpty;
}
