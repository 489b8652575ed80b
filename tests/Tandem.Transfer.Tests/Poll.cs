namespace Tandem.Transfer.Tests;

internal static class Poll
{
    /// <summary>
    /// Waits up to 10 s for <paramref name="read"/> to return <paramref name="expected"/>, then asserts it. For server
    /// counters that are updated after the last frame reaches the client.
    /// </summary>
    public static async Task EqualAsync<T>(T expected, Func<T> read)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!EqualityComparer<T>.Default.Equals(read(), expected) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5);
        }
        Assert.Equal(expected, read());
    }
}
