"""d score_mod / d score as Triton statements: forward-mode differentiation of the traced graph, node by node.

The backward kernels need it to carry the gradient of the modded score back to q.k^T (soft-capping: 1 - tanh^2).
Biases that do not depend on the score (relative position, ALiBi) have no derivative of their own: the result is
1 and the backward skips the multiply. Comparisons, indexing and integer casts are piecewise constant: zero."""
from __future__ import annotations

import operator

import torch
import torch.fx

from .ops import FUNCTIONS

LN2 = "0.6931471805599453"
_ADD = {operator.add, torch.add, "add"}
_SUB = {operator.sub, torch.sub, "sub"}
_MUL = {operator.mul, torch.mul, "mul"}
_DIV = {operator.truediv, torch.div, "div"}
# unary function name -> derivative factor, given {x} (the argument) and {y} (the node's own value)
_UNARY_FACTOR = {
    "exp": "{y}", "exp2": "{y} * " + LN2, "log": "1.0 / ({x})", "log2": "1.0 / (({x}) * " + LN2 + ")",
    "sqrt": "0.5 / ({y})", "sin": "tl.cos({x})", "cos": "-tl.sin({x})", "sigmoid": "{y} * (1.0 - {y})",
    "tanh": "(1.0 - {y} * {y})", "float": "1.0",
}


def score_derivative(renderer, result) -> tuple[list[str], str | None]:
    """Statements computing d result / d score, and the variable holding it ("1.0" for score + bias, None when
    the result does not depend on the score at all). `renderer` is trace._Renderer after its run: its var and
    deps maps name each node's variable and what it depends on."""
    d: dict[str, str] = {"score": "1.0"}  # variable -> expression of its derivative
    lines: list[str] = []
    for node in renderer.gm.graph.nodes:
        if node.op not in ("call_function", "call_method"):
            continue
        out = renderer.var[node.name]
        if out in d or "score" not in renderer.deps.get(node.name, set()):
            continue
        expr = _rule(renderer, node, d)
        if expr is None:
            continue
        if expr in ("1.0", *d.values()):  # the same value: alias, no statement
            d[out] = expr
            continue
        d[out] = f"d_{out}"
        lines.append(f"d_{out} = {expr}")
    if not isinstance(result, torch.fx.Node):
        return [], None
    return lines, d.get(renderer.var[result.name])


def _rule(r, node, d) -> str | None:
    target, args = node.target, list(node.args)
    name = target if node.op == "call_method" else r_function_name(target)

    def dv(a):  # the derivative of an argument, or None for zero
        return d.get(r.var[a.name]) if isinstance(a, torch.fx.Node) else None

    x = r.arg(args[0]) if args else ""
    y = r.var[node.name]
    if target in _ADD or target in _SUB:
        da, db = dv(args[0]), dv(args[1])
        sign = "+" if target in _ADD else "-"
        if da and db:
            return f"({da}) {sign} ({db})"
        return da if da else (db if sign == "+" else f"-({db})")
    if target in _MUL:
        da, db = dv(args[0]), dv(args[1])
        terms = [f"({da}) * ({r.arg(args[1])})" if da else None, f"({r.arg(args[0])}) * ({db})" if db else None]
        return " + ".join(t for t in terms if t)
    if target in _DIV:
        da, db = dv(args[0]), dv(args[1])
        a, b = r.arg(args[0]), r.arg(args[1])
        if db is None:
            return f"({da}) / ({b})"
        return (f"({da}) / ({b}) - " if da else "-") + f"({a}) * ({db}) / (({b}) * ({b}))"
    if target in (operator.neg, "neg") or name == "neg":
        return f"-({dv(args[0])})"
    if name in _UNARY_FACTOR:
        return f"({_UNARY_FACTOR[name].format(x=x, y=y)}) * ({dv(args[0])})"
    if name == "abs":  # torch: sign(x), zero at zero
        return f"tl.where(({x}) > 0, {dv(args[0])}, tl.where(({x}) < 0, -({dv(args[0])}), 0.0))"
    if target is operator.pow or target == "pow":
        n = args[1]
        return "0.0" if n == 0 else f"{n} * {' * '.join([f'({x})'] * (n - 1)) or '1.0'} * ({dv(args[0])})"
    if target is torch.where or target == "where":
        da, db = dv(args[1]) or "0.0", dv(args[2]) or "0.0"
        return f"tl.where({r.arg(args[0])}, {da}, {db})"
    if target in (torch.clamp, torch.clip, "clamp", "clip"):  # torch passes the gradient at the bounds too
        low = node.kwargs.get("min", args[1] if len(args) > 1 else None)
        high = node.kwargs.get("max", args[2] if len(args) > 2 else None)
        inside = " & ".join([f"(({x}) >= ({r.arg(low)}))"] * (low is not None) +
                            [f"(({x}) <= ({r.arg(high)}))"] * (high is not None)) or "True"
        return f"tl.where({inside}, {dv(args[0])}, 0.0)"
    if target in (torch.minimum, torch.maximum, "minimum", "maximum"):  # torch splits a tie evenly
        fn = target if isinstance(target, str) else target.__name__
        a, b = r.arg(args[0]), r.arg(args[1])
        da, db = dv(args[0]) or "0.0", dv(args[1]) or "0.0"
        first = f"({a}) < ({b})" if fn == "minimum" else f"({a}) > ({b})"
        return f"tl.where({first}, {da}, tl.where(({a}) == ({b}), 0.5 * (({da}) + ({db})), {db}))"
    if node.op == "call_method" and target == "to":
        dtype = node.kwargs.get("dtype", args[1] if len(args) > 1 else None)
        return dv(args[0]) if dtype in (torch.float32, torch.float) else None
    return None  # comparisons, logic, indexing, integer casts: piecewise constant


def r_function_name(target) -> str | None:
    return FUNCTIONS.get(target)
