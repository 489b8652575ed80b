using System.Runtime.CompilerServices;
using System.Text;

namespace Tandem.ChatTemplates.Jinja;

/// <summary>Variables visible at one point of the template: a loop iteration, a macro call, or the top level.</summary>
internal sealed class Scope
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    public Scope(Scope? parent) => Parent = parent;

    public Scope? Parent { get; }

    public bool TryGet(string name, out object? value)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
        {
            if (scope._variables.TryGetValue(name, out value))
            {
                return true;
            }
        }
        value = null;
        return false;
    }

    public void Set(string name, object? value) => _variables[name] = value;
}

/// <summary>Walks the AST and writes the output, charging every step against <see cref="Limits"/>.</summary>
internal sealed partial class Interpreter
{
    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    private StringBuilder _output = new();
    private Scope _scope;
    private long _iterations;
    private long _work;
    private int _callDepth;

    private Interpreter(Scope globals, TimeProvider timeProvider)
    {
        _scope = new Scope(globals);
        _timeProvider = timeProvider;
    }

    private readonly TimeProvider _timeProvider;

    public static string Render(IReadOnlyList<Node> template, Dictionary<string, object?> variables, TimeProvider timeProvider)
    {
        var globals = new Scope(null);
        var interpreter = new Interpreter(globals, timeProvider);
        interpreter.DefineGlobals(globals);
        foreach (var (name, value) in variables)
        {
            globals.Set(name, value);
        }
        interpreter.ExecuteBody(template);
        return interpreter._output.ToString();
    }

    private void Charge(long units)
    {
        _work += units;
        if (_work > Limits.MaxWork)
        {
            throw Values.Error("Template does too much work");
        }
    }

    private static void EnsureStack()
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
        {
            throw Values.Error("Template recursion is too deep");
        }
    }

    private Flow ExecuteBody(IReadOnlyList<Node> body)
    {
        foreach (var node in body)
        {
            var flow = Execute(node);
            if (flow != Flow.Normal)
            {
                return flow;
            }
        }
        return Flow.Normal;
    }

    private Flow Execute(Node node)
    {
        Charge(1);
        EnsureStack();
        try
        {
            switch (node)
            {
                case TextNode text:
                    Write(text.Text);
                    return Flow.Normal;
                case OutputNode output:
                    Write(Values.ToText(Evaluate(output.Value)));
                    return Flow.Normal;
                case IfNode ifNode:
                    foreach (var (condition, body) in ifNode.Branches)
                    {
                        if (Values.Truthy(Evaluate(condition)))
                        {
                            return ExecuteBody(body);
                        }
                    }
                    return ifNode.Else is null ? Flow.Normal : ExecuteBody(ifNode.Else);
                case ForNode forNode:
                    ExecuteFor(forNode);
                    return Flow.Normal;
                case SetNode set:
                    ExecuteSet(set);
                    return Flow.Normal;
                case SetBlockNode setBlock:
                    _scope.Set(setBlock.Target, Capture(setBlock.Body));
                    return Flow.Normal;
                case MacroNode macro:
                    _scope.Set(macro.Name, DefineMacro(macro, _scope));
                    return Flow.Normal;
                case BreakNode:
                    return Flow.Break;
                case ContinueNode:
                    return Flow.Continue;
                default:
                    throw Values.Error($"Unknown node {node.GetType().Name}");
            }
        }
        catch (TemplateRuntimeException e) when (e.Position < 0)
        {
            e.Position = node.Position;
            throw;
        }
    }

    private void Write(string text)
    {
        if (_output.Length + text.Length > Limits.MaxStringLength)
        {
            throw Values.Error($"Rendered output exceeds {Limits.MaxStringLength} characters");
        }
        Charge(text.Length);
        _output.Append(text);
    }

    /// <summary>Renders <paramref name="body"/> into a string instead of the output (set blocks, macro calls).</summary>
    private string Capture(IReadOnlyList<Node> body)
    {
        var saved = _output;
        _output = new StringBuilder();
        try
        {
            ExecuteBody(body);
            return _output.ToString();
        }
        finally
        {
            _output = saved;
        }
    }

    private void ExecuteFor(ForNode node)
    {
        var source = Values.Iterate(Evaluate(node.Iterable));
        IReadOnlyList<object?> items = source;
        var outer = _scope;
        if (node.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in source)
            {
                CountIteration();
                _scope = new Scope(outer);
                try
                {
                    Bind(node.Targets, item);
                    if (Values.Truthy(Evaluate(node.Filter)))
                    {
                        kept.Add(item);
                    }
                }
                finally
                {
                    _scope = outer;
                }
            }
            items = kept;
        }

        if (items.Count == 0)
        {
            if (node.Else is not null)
            {
                ExecuteBody(node.Else);
            }
            return;
        }

        var count = items.Count;
        for (var i = 0; i < count; i++)
        {
            CountIteration();
            _scope = new Scope(outer);
            try
            {
                Bind(node.Targets, items[i]);
                _scope.Set("loop", new LoopContext(items, i));
                if (ExecuteBody(node.Body) == Flow.Break)
                {
                    break;
                }
            }
            finally
            {
                _scope = outer;
            }
        }
    }

    private void CountIteration()
    {
        if (++_iterations > Limits.MaxLoopIterations)
        {
            throw Values.Error($"Template exceeds {Limits.MaxLoopIterations} loop iterations");
        }
    }

    private void Bind(IReadOnlyList<string> targets, object? value)
    {
        if (targets.Count == 1)
        {
            _scope.Set(targets[0], value);
            return;
        }
        if (value is not IReadOnlyList<object?> tuple || tuple.Count != targets.Count)
        {
            throw Values.Error($"Cannot unpack {Values.TypeName(value)} into {targets.Count} variables");
        }
        for (var i = 0; i < targets.Count; i++)
        {
            _scope.Set(targets[i], tuple[i]);
        }
    }

    private void ExecuteSet(SetNode node)
    {
        var value = Evaluate(node.Value);
        if (node.Attribute is not null)
        {
            if (!_scope.TryGet(node.Targets[0], out var target) || target is not Namespace ns)
            {
                throw Values.Error($"Cannot assign attribute '{node.Attribute}' on '{node.Targets[0]}': only namespace objects support attribute assignment");
            }
            ns.Attributes[node.Attribute] = value;
            return;
        }
        Bind(node.Targets, value);
    }

    private Callable DefineMacro(MacroNode macro, Scope definitionScope) => new(macro.Name, (args, keywords) =>
    {
        if (args.Count > macro.Parameters.Count)
        {
            throw Values.Error($"Macro '{macro.Name}' takes not more than {macro.Parameters.Count} argument(s)");
        }
        if (++_callDepth > Limits.MaxCallDepth)
        {
            _callDepth--;
            throw Values.Error($"Macro calls are nested more than {Limits.MaxCallDepth} deep");
        }
        var saved = _scope;
        _scope = new Scope(definitionScope);
        try
        {
            for (var i = 0; i < macro.Parameters.Count; i++)
            {
                var (name, defaultValue) = macro.Parameters[i];
                object? value;
                if (i < args.Count)
                {
                    value = args[i];
                }
                else if (keywords.Any(k => k.Name == name))
                {
                    value = keywords.First(k => k.Name == name).Value;
                }
                else
                {
                    value = defaultValue is null ? new Undefined($"'{name}' is undefined") : Evaluate(defaultValue);
                }
                _scope.Set(name, value);
            }
            foreach (var (name, _) in keywords)
            {
                if (!macro.Parameters.Any(p => p.Name == name))
                {
                    throw Values.Error($"Macro '{macro.Name}' takes no keyword argument '{name}'");
                }
            }
            return Capture(macro.Body);
        }
        finally
        {
            _scope = saved;
            _callDepth--;
        }
    });
}
