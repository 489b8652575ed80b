namespace Tandem.Nats.Tests;

public class NatsUserPasswordTests(UserPasswordNatsServerFixture server) : IClassFixture<UserPasswordNatsServerFixture>
{
    [Fact]
    public async Task ConnectAsync_RightUserPassword_Connects()
    {
        var ct = NatsIntegrationTests.Timeout();
        await using var nc = await NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url, User = "u", Password = "p" }, ct);
        await using var sub = await nc.SubscribeAsync("auth.ok", cancellationToken: ct);
        await nc.PublishAsync("auth.ok", NatsIntegrationTests.B("yes"), cancellationToken: ct);
        Assert.Equal("yes", NatsIntegrationTests.S(await sub.Messages.ReadAsync(ct)));
    }

    [Fact]
    public async Task ConnectAsync_CredentialsInUrl_Connects()
    {
        var ct = NatsIntegrationTests.Timeout();
        await using var nc = await NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url.Replace("nats://", "nats://u:p@", StringComparison.Ordinal) }, ct);
        Assert.Equal(NatsConnectionState.Connected, nc.State);
    }

    [Fact]
    public async Task ConnectAsync_WrongPassword_ThrowsAuthorizationException()
    {
        var ct = NatsIntegrationTests.Timeout();
        var ex = await Assert.ThrowsAsync<NatsAuthorizationException>(() => NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url, User = "u", Password = "wrong" }, ct));
        Assert.Contains("refused the credentials", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Authorization Violation", ex.Message, StringComparison.Ordinal);
    }
}

public class NatsTokenTests(TokenNatsServerFixture server) : IClassFixture<TokenNatsServerFixture>
{
    [Fact]
    public async Task ConnectAsync_RightToken_Connects()
    {
        var ct = NatsIntegrationTests.Timeout();
        await using var nc = await NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url, Token = "s3cret" }, ct);
        await nc.FlushAsync(ct);
        Assert.Equal(NatsConnectionState.Connected, nc.State);
    }

    [Fact]
    public async Task ConnectAsync_MissingToken_ThrowsAuthorizationException()
    {
        var ct = NatsIntegrationTests.Timeout();
        await Assert.ThrowsAsync<NatsAuthorizationException>(() => NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url }, ct));
        await Assert.ThrowsAsync<NatsAuthorizationException>(() => NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url, Token = "nope" }, ct));
    }
}

public class NatsPermissionTests(PermissionsNatsServerFixture server) : IClassFixture<PermissionsNatsServerFixture>
{
    [Fact]
    public async Task Permissions_DeniedSubjects_SurfaceErrorsAndKeepConnection()
    {
        var ct = NatsIntegrationTests.Timeout();
        await using var nc = await NatsConnection.ConnectAsync(new NatsOptions { Url = server.Url, User = "limited", Password = "p" }, ct);
        var errors = new List<NatsServerException>();
        nc.Error += (_, e) =>
        {
            lock (errors)
            {
                errors.Add((NatsServerException)e.Error);
            }
        };
        var denied = await nc.SubscribeAsync("denied.x", cancellationToken: ct);
        var ex = await Assert.ThrowsAsync<NatsServerException>(() => NatsIntegrationTests.DrainAsync(denied, ct));
        Assert.True(ex.IsPermissionViolation, ex.Message);

        await nc.PublishAsync("denied.y", NatsIntegrationTests.B("x"), cancellationToken: ct);
        await nc.FlushAsync(ct);
        while (true)
        {
            lock (errors)
            {
                if (errors.Any(e => e.ServerMessage.Contains("Publish", StringComparison.Ordinal)))
                {
                    break;
                }
            }
            await Task.Delay(10, ct);
        }

        await using var allowed = await nc.SubscribeAsync("allowed.z", cancellationToken: ct);
        await nc.PublishAsync("allowed.z", NatsIntegrationTests.B("ok"), cancellationToken: ct);
        Assert.Equal("ok", NatsIntegrationTests.S(await allowed.Messages.ReadAsync(ct)));
        Assert.Equal(NatsConnectionState.Connected, nc.State);
    }
}
