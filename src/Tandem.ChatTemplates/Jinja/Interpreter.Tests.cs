namespace Tandem.ChatTemplates.Jinja;

internal sealed partial class Interpreter
{
    private bool ApplyTest(TestExpr test)
    {
        var value = Evaluate(test.Target);
        var args = test.Arguments.Select(Evaluate).ToList();
        return Test(test.Name, value, args) != test.Negated;
    }

    /// <summary>Jinja's tests (<c>x is defined</c>, <c>x is string</c>, <c>selectattr('role', 'equalto', 'user')</c>).</summary>
    private static bool Test(string name, object? value, List<object?> args)
    {
        object? Argument() => args.Count > 0 ? args[0] : throw Values.Error($"test '{name}' needs an argument");
        return name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "string" => value is string,
            "mapping" => value is IReadOnlyDictionary<string, object?>,
            "iterable" => value is string or IReadOnlyList<object?> or IReadOnlyDictionary<string, object?> or Undefined,
            "sequence" => value is string or IReadOnlyList<object?> or IReadOnlyDictionary<string, object?>,
            "number" => value is long or double or bool,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "callable" => value is Callable,
            "odd" => value is long l && l % 2 != 0,
            "even" => value is long e && e % 2 == 0,
            "divisibleby" => value is long n && Argument() is long m && m != 0 && n % m == 0,
            "lower" => value is string lower && !lower.Any(char.IsUpper),
            "upper" => value is string upper && !upper.Any(char.IsLower),
            "equalto" or "eq" or "==" => Values.Equal(value, Argument()),
            "ne" or "!=" => !Values.Equal(value, Argument()),
            "sameas" => value is null or bool ? Values.Equal(value, Argument()) && Argument()?.GetType() == value?.GetType() : ReferenceEquals(value, Argument()),
            "lt" or "lessthan" or "<" => Values.Compare(value, Argument()) < 0,
            "le" or "<=" => Values.Compare(value, Argument()) <= 0,
            "gt" or "greaterthan" or ">" => Values.Compare(value, Argument()) > 0,
            "ge" or ">=" => Values.Compare(value, Argument()) >= 0,
            "in" => Values.Contains(Argument(), value),
            _ => throw Values.Error($"No test named '{name}'"),
        };
    }
}
