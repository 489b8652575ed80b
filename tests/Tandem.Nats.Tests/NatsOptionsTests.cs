namespace Tandem.Nats.Tests;

public class NatsOptionsTests
{
    [Fact]
    public void Validate_Defaults_Pass() => new NatsOptions().Validate();

    [Fact]
    public void Validate_InvalidSettings_NamesEveryProblem()
    {
        var ex = Assert.Throws<ArgumentException>(() => new NatsOptions
        {
            Url = "http://x",
            PingInterval = TimeSpan.Zero,
            MaxPingsOut = 0,
            MaxReconnectAttempts = -2,
            ReconnectBufferBytes = -1,
            User = "u",
        }.Validate());
        foreach (var part in new[] { "scheme", "PingInterval", "MaxPingsOut", "MaxReconnectAttempts", "ReconnectBufferBytes", "Password" })
        {
            Assert.Contains(part, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Validate_TokenAndUser_Fails() =>
        Assert.Throws<ArgumentException>(() => new NatsOptions { Token = "t", User = "u", Password = "p" }.Validate());

    [Fact]
    public void ParseServers_List_ReadsSchemesPortsAndCredentials()
    {
        var servers = NatsOptions.ParseServers("nats://a:1, tls://b, u:p@c:3, tok@d:4");
        Assert.Equal(new NatsServerAddress("a", 1, false), servers[0]);
        Assert.Equal(new NatsServerAddress("b", 4222, true), servers[1]);
        Assert.Equal(new NatsServerAddress("c", 3, false, "u", "p"), servers[2]);
        Assert.Equal(new NatsServerAddress("d", 4, false, Token: "tok"), servers[3]);
        Assert.Equal("tls://b:4222", servers[1].ToString());
    }
}
