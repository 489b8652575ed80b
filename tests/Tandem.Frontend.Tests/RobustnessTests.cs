using System.Net;

namespace Tandem.Frontend.Tests;

/// <summary>Bad input gets the right status and an OpenAI error object, and never disturbs other requests.</summary>
public class RobustnessTests(Stories260KServer fixture) : IClassFixture<Stories260KServer>
{
    public static TheoryData<string, string, int> BadRequests => new()
    {
        { "v1/completions", "{not json", 400 },
        { "v1/completions", "[1,2,3]", 400 },
        { "v1/completions", """{"model":"stories260K","prompt":5}""", 400 },
        { "v1/completions", """{"model":"nope","prompt":"x"}""", 404 },
        { "v1/completions", """{"model":"stories260K","prompt":"x","max_tokens":-5}""", 400 },
        { "v1/completions", """{"model":"stories260K","prompt":"x","max_tokens":100000000}""", 400 },
        { "v1/completions", """{"model":"stories260K","prompt":"x","temperature":7}""", 400 },
        { "v1/completions", """{"model":"stories260K","prompt":"x","top_p":"high"}""", 400 },
        { "v1/completions", """{"model":"stories260K","prompt":[1,2,999999]}""", 400 },
        { "v1/chat/completions", """{"model":"stories260K","messages":[]}""", 400 },
        { "v1/chat/completions", """{"model":"stories260K","messages":[{"role":"user"}]}""", 400 },
        { "v1/chat/completions", """{"model":"stories260K"}""", 400 },
        { "v1/chat/completions", """{"messages":[{"role":"user","content":"x"}]}""", 400 },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Post_BadRequest_GetsStatusAndOpenAiErrorObject(string path, string body, int status)
    {
        var (got, error) = await HttpJson.PostAsync(fixture.Http, path, body);
        Assert.Equal(status, got);
        var e = error.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(e.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(e.GetProperty("type").GetString()));
        Assert.True(e.TryGetProperty("param", out _) && e.TryGetProperty("code", out _));
    }

    [Fact]
    public async Task Post_PromptLongerThanContext_SaysTheLimits()
    {
        var prompt = string.Join(',', Enumerable.Repeat(100, 3000));
        var (status, error) = await HttpJson.PostAsync(fixture.Http, "v1/completions", $$"""{"model":"stories260K","prompt":[{{prompt}}]}""");
        Assert.Equal(400, status);
        Assert.Contains("3000", HttpJson.ErrorMessage(error), StringComparison.Ordinal);
        Assert.Contains("2047", HttpJson.ErrorMessage(error), StringComparison.Ordinal);
        Assert.Equal("context_length_exceeded", error.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Burst_200MixedBadRequestsAlongsideGoodOnes_AllGoodOnesSucceedWithTheRightText()
    {
        const string good = """{"model":"stories260K","prompt":"Once upon a time","max_tokens":24,"temperature":0}""";
        var (_, expected) = await HttpJson.PostAsync(fixture.Http, "v1/completions", good);
        var expectedText = expected.GetProperty("choices")[0].GetProperty("text").GetString();
        var bad = BadRequests.Select(row => ((string Path, string Body, int Status))(row.Data.Item1, row.Data.Item2, row.Data.Item3)).ToList();
        var tasks = new List<Task<(bool Good, int Status, int Expected, string? Text)>>();
        for (var i = 0; i < 240; i++)
        {
            if (i % 6 == 5)
            {
                tasks.Add(Task.Run(async () =>
                {
                    var (status, body) = await HttpJson.PostAsync(fixture.Http, "v1/completions", good);
                    return (true, status, 200, status == 200 ? body.GetProperty("choices")[0].GetProperty("text").GetString() : null);
                }));
            }
            else
            {
                var (path, body, want) = bad[i % bad.Count];
                tasks.Add(Task.Run(async () =>
                {
                    var (status, _) = await HttpJson.PostAsync(fixture.Http, path, body);
                    return (false, status, want, (string?)null);
                }));
            }
        }
        var results = await Task.WhenAll(tasks);
        Assert.Equal(200, results.Count(r => !r.Good));
        Assert.All(results, r => Assert.Equal(r.Expected, r.Status));
        Assert.All(results.Where(r => r.Good), r => Assert.Equal(expectedText, r.Text));
        Assert.Equal(0, fixture.Server.Workers[0].Engine.GetStats().Running);
    }

    [Fact]
    public async Task Get_UnknownPath_Is404WithErrorObject()
    {
        using var response = await fixture.Http.GetAsync("v1/nothing-here");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("\"error\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_And_Live_Answer200()
    {
        using var health = await fixture.Http.GetAsync("health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Contains("stories260K", await health.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var live = await fixture.Http.GetAsync("live");
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
    }

    [Fact]
    public async Task RequestId_IsEchoedOrCreated()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "health");
        request.Headers.Add("X-Request-Id", "abc-123");
        using var echoed = await fixture.Http.SendAsync(request);
        Assert.Equal("abc-123", echoed.Headers.GetValues("X-Request-Id").Single());
        using var created = await fixture.Http.GetAsync("live");
        Assert.False(string.IsNullOrEmpty(created.Headers.GetValues("X-Request-Id").Single()));
    }
}
