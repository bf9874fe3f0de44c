"""What a problem's model requires of its top-level constants, read from its source without running it: which
constants shape its parameters, which it has built in, and which sizes must stay multiples of what."""
from __future__ import annotations

import ast
import math
import re
import symtable
from collections import defaultdict

from .sizes import CHANNELS, DIVISORS, not_a_size

# Layers whose weights have a channel or feature count built in (when the problem does not pass it in).
_WEIGHTED_LAYER = re.compile(r"Conv|Linear|Norm|Embedding|LSTM|GRU|RNN|Parameter|MultiheadAttention|Bilinear")
_MAX_DEPTH = 4  # Model -> block -> sub-block -> layer is as deep as KernelBench's level 3 nests sizes


def read_by_model(source: str, depends_on: dict[str, set[str]], roots: tuple[str, ...] = ("Model", "get_init_inputs")
                  ) -> set[str]:
    """Top-level names that Model or get_init_inputs read, directly or through helpers and derived constants
    (`depends_on`: constant -> the names its expression reads): the constants that shape the model's
    parameters. Globals only: `depth` unpacked from x.shape in forward is a local and does not count.
    `roots=("Model",)`: only what the model's own code reads as a global, which a candidate cannot learn from its
    constructor's arguments or its inputs (L3 33_VanillaRNN builds its hidden state from the global batch_size)."""
    reads = {name: set(names) for name, names in depends_on.items()}
    try:
        tables = symtable.symtable(source, "<problem>", "exec").get_children()
    except SyntaxError:  # ast accepts it but it cannot run; say that every constant shapes the model
        return set(depends_on)
    for table in tables:
        reads[table.get_name()] = _globals_read(table)
    todo, seen = [n for n in roots if n in reads], set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(reads.get(name, ()))
    return seen


def _globals_read(table: symtable.SymbolTable) -> set[str]:
    names = {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global()}
    for child in table.get_children():
        names |= _globals_read(child)
    return names


def built_into_model(tree: ast.Module, constants: dict[str, object], read: set[str]) -> set[str]:
    """Constants that only get_inputs reads but that the model has built in: channel/feature counts when it
    builds weighted layers, and names of Model's constructor parameters that keep their default (`image_size`,
    also spelt `img_size`)."""
    has_layers = any(_WEIGHTED_LAYER.search(n.attr) for n in ast.walk(tree) if isinstance(n, ast.Attribute))
    init = _init(_definitions(tree).get("Model"))
    defaults = set()
    if init is not None:
        args = init.args.posonlyargs + init.args.args
        defaults = {_abbreviated(a.arg) for a in args[len(args) - len(init.args.defaults):]}
        defaults |= {_abbreviated(a.arg) for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults) if d}
    return {name for name in constants if name not in read
            and ((has_layers and re.search(CHANNELS, name.lower())) or _abbreviated(name) in defaults)}


def _abbreviated(name: str) -> str:
    return name.lower().replace("image", "img").replace("channels", "chans")


def multiples(tree: ast.Module, constants: dict[str, object]) -> dict[str, int]:
    """constant -> the number it must stay a multiple of, from how the model uses it: `groups=` / `num_groups=`
    / `num_heads=` next to it in a call (nn.Conv2d(in_channels, out_channels, 3, groups=groups)), the first
    argument of nn.GroupNorm, the second of nn.MultiheadAttention, and `assert size % n == 0`. Values are
    followed through Model's constructor arguments (get_init_inputs binds them), `x // k`, `self.x = ...` and
    the blocks that Model builds, so that only sizes a divisor really divides are constrained: a GEMM's
    in_features stays free when a GroupNorm divides only its out_features."""
    found: dict[str, set[int]] = defaultdict(set)
    definitions = _definitions(tree)
    derived = {}  # `hidden = 4 * N`: a constraint on hidden constrains N
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            sources = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            if len(sources) == 1:
                derived[node.targets[0].id] = sources.pop()

    def constant(name: str) -> tuple[str | None, int, object] | None:
        if name not in constants:
            return None
        return (derived.get(name, name), 1, constants[name])

    def visit(cls: ast.ClassDef, args: list, kwargs: dict, depth: int) -> None:
        init = _init(cls)
        env: dict[str, tuple | None] = {}
        if init is not None:
            params = [a.arg for a in init.args.posonlyargs + init.args.args][1:]
            defaults = dict(zip(params[len(params) - len(init.args.defaults):], init.args.defaults))
            for i, p in enumerate(params):
                given = args[i] if i < len(args) else kwargs.get(p)
                env[p] = given if given is not None else (_literal(defaults[p]) if p in defaults else None)
            for statement in init.body:  # `mid = out_channels // 4`, `self.groups = groups`, in order
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and _key(statement.targets[0]):
                    env[_key(statement.targets[0])] = resolve(statement.value, env)
        for node in ast.walk(cls):
            if isinstance(node, ast.Call):
                link_call(node, env, depth)
            elif isinstance(node, ast.Assert):
                for mod in ast.walk(node.test):
                    if isinstance(mod, ast.BinOp) and isinstance(mod.op, ast.Mod):
                        link(resolve(mod.right, env), [resolve(mod.left, env)])

    def resolve(expr: ast.expr, env: dict) -> tuple | None:
        """(constant, factor, value): the expression is that constant // factor (None for a literal or a
        default), worth value now."""
        if isinstance(expr, ast.Constant) and type(expr.value) is int:
            return (None, 1, expr.value)
        if isinstance(expr, (ast.Name, ast.Attribute)) and _key(expr) in env:
            return env[_key(expr)]
        if isinstance(expr, ast.Name):
            return constant(expr.id)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.FloorDiv) and isinstance(expr.right, ast.Constant):
            inner, k = resolve(expr.left, env), expr.right.value
            if inner and type(k) is int and k > 0 and type(inner[2]) is int:
                return (inner[0], inner[1] * k, inner[2] // k)
        return None

    def link_call(call: ast.Call, env: dict, depth: int) -> None:
        callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        divisor_kw = [k for k in call.keywords if k.arg and re.search(DIVISORS, k.arg)]
        others = [a for a in call.args] + [k.value for k in call.keywords if k not in divisor_kw]
        if divisor_kw:
            link(resolve(divisor_kw[0].value, env), [resolve(a, env) for a in others])
        elif callee == "GroupNorm" and call.args:
            link(resolve(call.args[0], env), [resolve(a, env) for a in others[1:]])
        elif callee == "MultiheadAttention" and len(call.args) >= 2:
            link(resolve(call.args[1], env), [resolve(call.args[0], env)])
        target = definitions.get(callee)
        if isinstance(target, ast.ClassDef) and target.name != "Model" and depth < _MAX_DEPTH:
            visit(target, [resolve(a, env) for a in call.args],
                  {k.arg: resolve(k.value, env) for k in call.keywords if k.arg}, depth + 1)

    def link(divisor: tuple | None, sizes: list) -> None:
        # A divisor counts when it is fixed: a literal, a default, or a divisor constant (groups = 4), never a
        # size itself (groups=mid_channels in a depthwise convolution varies with the channels).
        if divisor is None or type(divisor[2]) is not int or divisor[2] < 2:
            return
        if divisor[0] is not None and not_a_size(divisor[0]) is None:
            return
        for size in sizes:
            if size and size[0] is not None and not_a_size(size[0]) is None:
                found[size[0]].add(divisor[2] * size[1])

    if "Model" in definitions and isinstance(definitions["Model"], ast.ClassDef):
        init_inputs = definitions.get("get_init_inputs")
        returned = [n.value for n in ast.walk(init_inputs) if isinstance(n, ast.Return)] if init_inputs else []
        listed = returned[0] if returned and isinstance(returned[0], (ast.List, ast.Tuple)) else None
        visit(definitions["Model"], [resolve(e, {}) for e in listed.elts] if listed else [], {}, 0)
    return {name: math.lcm(*ds) for name, ds in found.items()}


def _definitions(tree: ast.Module) -> dict[str, ast.stmt]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}


def _init(cls: ast.stmt | None) -> ast.FunctionDef | None:
    if not isinstance(cls, ast.ClassDef):
        return None
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)


def _literal(expr: ast.expr) -> tuple | None:
    return (None, 1, expr.value) if isinstance(expr, ast.Constant) and type(expr.value) is int else None


def _key(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "self":
        return f"self.{expr.attr}"
    return None
