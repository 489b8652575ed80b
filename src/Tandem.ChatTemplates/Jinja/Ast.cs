namespace Tandem.ChatTemplates.Jinja;

// Statements. Position is the source offset used for error messages.
internal abstract record Node(int Position);

internal sealed record TextNode(int Position, string Text) : Node(Position);

internal sealed record OutputNode(int Position, Expr Value) : Node(Position);

internal sealed record IfNode(int Position, IReadOnlyList<(Expr Condition, IReadOnlyList<Node> Body)> Branches, IReadOnlyList<Node>? Else) : Node(Position);

internal sealed record ForNode(int Position, IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node>? Else) : Node(Position);

/// <summary><c>set a = v</c>, <c>set a, b = v</c> or, with <see cref="Attribute"/>, <c>set ns.attr = v</c>.</summary>
internal sealed record SetNode(int Position, IReadOnlyList<string> Targets, string? Attribute, Expr Value) : Node(Position);

internal sealed record SetBlockNode(int Position, string Target, IReadOnlyList<Node> Body) : Node(Position);

internal sealed record MacroNode(int Position, string Name, IReadOnlyList<(string Name, Expr? Default)> Parameters, IReadOnlyList<Node> Body) : Node(Position);

internal sealed record BreakNode(int Position) : Node(Position);

internal sealed record ContinueNode(int Position) : Node(Position);

// Expressions.
internal abstract record Expr(int Position);

internal sealed record LiteralExpr(int Position, object? Value) : Expr(Position);

internal sealed record NameExpr(int Position, string Name) : Expr(Position);

internal sealed record ListExpr(int Position, IReadOnlyList<Expr> Items) : Expr(Position);

internal sealed record DictExpr(int Position, IReadOnlyList<(Expr Key, Expr Value)> Items) : Expr(Position);

internal sealed record UnaryExpr(int Position, string Operator, Expr Operand) : Expr(Position);

internal sealed record BinaryExpr(int Position, string Operator, Expr Left, Expr Right) : Expr(Position);

internal sealed record CompareExpr(int Position, Expr First, IReadOnlyList<(string Operator, Expr Operand)> Rest) : Expr(Position);

internal sealed record ConditionalExpr(int Position, Expr Condition, Expr Then, Expr? Else) : Expr(Position);

internal sealed record AttributeExpr(int Position, Expr Target, string Name) : Expr(Position);

internal sealed record IndexExpr(int Position, Expr Target, Expr Index) : Expr(Position);

internal sealed record SliceExpr(int Position, Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr(Position);

internal sealed record CallExpr(int Position, Expr Callee, IReadOnlyList<Expr> Arguments, IReadOnlyList<(string Name, Expr Value)> Keywords) : Expr(Position);

internal sealed record FilterExpr(int Position, Expr Target, string Name, IReadOnlyList<Expr> Arguments, IReadOnlyList<(string Name, Expr Value)> Keywords) : Expr(Position);

internal sealed record TestExpr(int Position, Expr Target, string Name, IReadOnlyList<Expr> Arguments, bool Negated) : Expr(Position);
