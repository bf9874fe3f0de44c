"""Trace score_mod / mask_mod with torch.fx and render them as Triton (kernel) and torch (host) code."""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx

SCORE_ARGS = ("score", "b", "h", "q_idx", "kv_idx")
MASK_ARGS = ("b", "h", "q_idx", "kv_idx")


class TraceError(ValueError):
    """A mod uses something the generator cannot translate; the message names it."""


@dataclass
class Capture:
    """A tensor the mods read (a global of the spec file, or a constant made inside a mod)."""
    name: str
    tensor: torch.Tensor


@dataclass
class TracedMod:
    kind: str  # "score" or "mask"
    triton: list[str]  # statements; the last assigns `result`
    torch: list[str]
    result: str
    uses: set[str] = field(default_factory=set)  # which of score, b, h, q_idx, kv_idx the result depends on
    captures: list[Capture] = field(default_factory=list)
    additive_bias: str | None = None  # when score_mod is score + f(b, h, q, kv): the variable holding f
    grad: list[str] = field(default_factory=list)  # Triton statements for d result / d score (score_mod only)
    grad_result: str | None = None  # "1.0" when the derivative is one; None when the result ignores the score


_BINARY = {
    operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/", operator.floordiv: "//",
    operator.mod: "%", operator.and_: "&", operator.or_: "|", operator.xor: "^", operator.lt: "<",
    operator.le: "<=", operator.gt: ">", operator.ge: ">=", operator.eq: "==", operator.ne: "!=",
    torch.add: "+", torch.sub: "-", torch.mul: "*", torch.div: "/", torch.logical_and: "&", torch.logical_or: "|",
    torch.lt: "<", torch.le: "<=", torch.gt: ">", torch.ge: ">=", torch.eq: "==", torch.ne: "!=",
    torch.bitwise_and: "&", torch.bitwise_or: "|",
}
_METHOD_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "__and__": "&", "__or__": "|", "lt": "<",
                  "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "logical_and": "&", "logical_or": "|"}
# name -> (triton template, torch template); {0} is the argument
_UNARY = {
    "exp": ("tl.exp({0})", "torch.exp({0})"), "exp2": ("tl.exp2({0})", "torch.exp2({0})"),
    "log": ("tl.log({0})", "torch.log({0})"), "log2": ("tl.log2({0})", "torch.log2({0})"),
    "sqrt": ("tl.sqrt({0})", "torch.sqrt({0})"), "sin": ("tl.sin({0})", "torch.sin({0})"),
    "cos": ("tl.cos({0})", "torch.cos({0})"), "abs": ("tl.abs({0})", "torch.abs({0})"),
    "sigmoid": ("tl.sigmoid({0})", "torch.sigmoid({0})"),
    # tanh through exp: libdevice's tanh is not reachable the same way on every Triton version.
    "tanh": ("(1.0 - 2.0 / (tl.exp(2.0 * ({0})) + 1.0))", "torch.tanh({0})"),
    "neg": ("-({0})", "-({0})"), "logical_not": ("({0}) == 0", "torch.logical_not({0})"),
    "float": ("({0}).to(tl.float32)", "({0}).float()"),
}
_FUNCTIONS = {getattr(torch, n): n for n in _UNARY if hasattr(torch, n)}
_FUNCTIONS.update({abs: "abs", operator.neg: "neg", operator.abs: "abs", math.exp: "exp"})


def trace_mod(fn, kind: str, capture_names: dict[int, str]) -> TracedMod:
    """`capture_names`: id(tensor) -> name, for every tensor the mods reach (captures.find_tensors)."""
    names = SCORE_ARGS if kind == "score" else MASK_ARGS
    try:
        graph_module = torch.fx.symbolic_trace(fn, concrete_args=None)
    except Exception as e:
        raise TraceError(f"{kind}_mod could not be traced ({type(e).__name__}: {e}); data-dependent Python control "
                         "flow (if/for on the arguments) is not supported, use torch.where") from None
    placeholders = [n for n in graph_module.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(names):
        raise TraceError(f"{kind}_mod must take ({', '.join(names)}), it takes {len(placeholders)} arguments")
    return _Renderer(kind, graph_module, dict(zip([p.name for p in placeholders], names)), capture_names).run()


class _Renderer:
    def __init__(self, kind, graph_module, placeholder_names, capture_names):
        self.kind, self.gm, self.capture_names = kind, graph_module, capture_names
        self.prefix = "sm" if kind == "score" else "mm"
        self.var: dict[str, str] = dict(placeholder_names)  # node name -> variable
        self.deps: dict[str, set[str]] = {node: {name} for node, name in placeholder_names.items()}
        self.out = TracedMod(kind=kind, triton=[], torch=[], result="")
        self.count = 0
        self.seen: dict[tuple[str, str], tuple[str, set[str]]] = {}

    def run(self) -> TracedMod:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                result = node.args[0]
                self.out.result = self.arg(result)
                self.out.uses = self.deps_of(result)
                self.find_additive(result)
                if self.kind == "score":
                    from .grad import score_derivative
                    self.out.grad, self.out.grad_result = score_derivative(self, result)
                return self.out
            self.emit(node)
        raise TraceError(f"{self.kind}_mod has no output")

    # ---- values --------------------------------------------------------------------------------------------
    def arg(self, a) -> str:
        """A node's variable, or a constant written the same way in Triton and torch code."""
        if isinstance(a, torch.fx.Node):
            return self.var[a.name]
        if isinstance(a, bool):
            return "True" if a else "False"
        if isinstance(a, (int, float)):
            if isinstance(a, float) and math.isinf(a):
                return 'float("inf")' if a > 0 else '-float("inf")'
            return repr(a)
        if a is None:
            return "None"
        raise TraceError(f"{self.kind}_mod: unsupported constant {a!r} of type {type(a).__name__}")

    def deps_of(self, a) -> set[str]:
        return set(self.deps.get(a.name, set())) if isinstance(a, torch.fx.Node) else set()

    def assign(self, node, triton_expr: str, torch_expr: str, inputs) -> None:
        if (triton_expr, torch_expr) in self.seen:  # the same pure expression again (a mod reads a tensor twice)
            self.var[node.name], self.deps[node.name] = self.seen[triton_expr, torch_expr]
            return
        name = f"{self.prefix}{self.count}"
        self.count += 1
        self.var[node.name] = name
        self.deps[node.name] = set().union(*[self.deps_of(a) for a in inputs]) if inputs else set()
        self.out.triton.append(f"{name} = {triton_expr}")
        self.out.torch.append(f"{name} = {torch_expr}")
        self.seen[triton_expr, torch_expr] = name, self.deps[node.name]

    # ---- ops -----------------------------------------------------------------------------------------------
    def emit(self, node) -> None:
        if node.op == "get_attr":
            return self.capture(node)
        target, args, kwargs = node.target, list(node.args), dict(node.kwargs)
        name = target if node.op == "call_method" else _FUNCTIONS.get(target)
        if node.op == "call_function" and target in _BINARY or node.op == "call_method" and target in _METHOD_BINARY:
            op = _BINARY.get(target) or _METHOD_BINARY[target]
            if len(args) != 2 or kwargs:
                raise TraceError(f"{self.kind}_mod: {op} with arguments {args} {kwargs} is not supported")
            a, b = (self.arg(x) for x in args)
            return self.assign(node, f"({a}) {op} ({b})", f"({a}) {op} ({b})", args)
        if node.op == "call_function" and target is operator.invert or node.op == "call_method" and target in (
                "__invert__", "logical_not", "bitwise_not"):
            a = self.arg(args[0])
            return self.assign(node, f"({a}) == 0", f"~({a}).bool()", args)
        if node.op == "call_function" and target is operator.pow or node.op == "call_method" and target == "pow":
            return self.power(node, args)
        if name in _UNARY and len(args) == 1:
            tri, tor = _UNARY[name]
            a = self.arg(args[0])
            return self.assign(node, tri.format(a), tor.format(a), args)
        if node.op == "call_function" and target is torch.where or node.op == "call_method" and target == "where":
            c, a, b = (self.arg(x) for x in args[:3])
            return self.assign(node, f"tl.where({c}, {a}, {b})", f"torch.where({c}, {a}, {b})", args[:3])
        if target in (torch.clamp, torch.clip, "clamp", "clip"):
            return self.clamp(node, args, kwargs)
        if target in (torch.minimum, torch.maximum, "minimum", "maximum"):
            fn = target if isinstance(target, str) else target.__name__
            a, b = (self.arg(x) for x in args[:2])
            return self.assign(node, f"tl.{fn}({a}, {b})", f"torch.{fn}({a}, {b})", args[:2])
        if node.op == "call_method" and target == "to" or target in (torch.zeros_like,):
            return self.cast(node, target, args, kwargs)
        if node.op == "call_method" and target in ("new_ones", "new_zeros"):  # and_masks / or_masks / noop_mask
            return self.constant_like(node, target, args, kwargs)
        if target is operator.getitem or getattr(target, "__name__", target) == "__getitem__":
            return self.load(node, args)
        label = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
        raise TraceError(f"{self.kind}_mod uses {label}, which the attention generator cannot translate "
                         "(supported: arithmetic, comparisons, &, |, where, clamp, minimum/maximum, abs, exp, exp2, "
                         "log, sqrt, tanh, sigmoid, sin, cos, and indexing captured tensors)")

    def power(self, node, args) -> None:
        base, exponent = args
        if not isinstance(exponent, int) or not 0 <= exponent <= 4:
            raise TraceError(f"{self.kind}_mod: only small integer powers (x**0..x**4) are supported, got **{exponent!r}")
        a = self.arg(base)
        expr = " * ".join([f"({a})"] * exponent) or "1"
        self.assign(node, expr, expr, [base])

    def clamp(self, node, args, kwargs) -> None:
        x = args[0]
        low = kwargs.get("min", args[1] if len(args) > 1 else None)
        high = kwargs.get("max", args[2] if len(args) > 2 else None)
        tri = tor = self.arg(x)
        if low is not None:
            tri = f"tl.maximum({tri}, {self.arg(low)})"
        if high is not None:
            tri = f"tl.minimum({tri}, {self.arg(high)})"
        tor = f"torch.clamp({tor}, {self.arg(low)}, {self.arg(high)})"
        self.assign(node, tri, tor, [a for a in (x, low, high) if isinstance(a, torch.fx.Node)])

    def cast(self, node, target, args, kwargs) -> None:
        if target is torch.zeros_like:
            a = self.arg(args[0])
            return self.assign(node, f"tl.zeros_like({a})", f"torch.zeros_like({a})", args)
        dtype = kwargs.get("dtype", args[1] if len(args) > 1 else None)
        a = self.arg(args[0])
        if dtype in (torch.float32, torch.float):
            return self.assign(node, f"({a}).to(tl.float32)", f"({a}).float()", args[:1])
        if dtype in (torch.int32, torch.int64, torch.int):
            return self.assign(node, f"({a}).to(tl.int32)", f"({a}).int()", args[:1])
        raise TraceError(f"{self.kind}_mod: .to({dtype}) is not supported (float32 and int32 are)")

    def capture(self, node) -> None:
        tensor = getattr(self.gm, node.target)
        name = self.capture_names.get(id(tensor))
        if name is None:
            raise TraceError(f"{self.kind}_mod reads a tensor it makes on each call; make it once outside the mod "
                             "(a global, or a variable of the factory that returns the mod)")
        if not any(c.name == name for c in self.out.captures):
            self.out.captures.append(Capture(name, tensor))
        self.var[node.name] = name
        self.deps[node.name] = set()

    def constant_like(self, node, target, args, kwargs) -> None:
        size = kwargs.get("size", args[1] if len(args) > 1 else None)
        if size not in ((), [], torch.Size([])) or len(args) > 2:
            raise TraceError(f"{self.kind}_mod: {target} is supported for a scalar (size ()) only")
        dtype = kwargs.get("dtype")
        triton_type = {torch.bool: "tl.int1", torch.float32: "tl.float32"}.get(dtype, "tl.int32")
        value = 1 if target == "new_ones" else 0
        receiver = self.arg(args[0])
        torch_dtype = f", dtype=torch.{str(dtype).replace('torch.', '')}" if dtype is not None else ""
        self.assign(node, f"tl.full([1, 1], {value}, {triton_type})", f"({receiver}).{target}((){torch_dtype})", [])

    def load(self, node, args) -> None:
        base, index = args
        if not isinstance(base, torch.fx.Node) or base.op != "get_attr":
            raise TraceError(f"{self.kind}_mod: indexing is supported on captured tensors only")
        name = self.var[base.name]
        tensor = getattr(self.gm, base.target)
        indices = list(index) if isinstance(index, (tuple, list)) else [index]
        if len(indices) != tensor.ndim:
            raise TraceError(f"{self.kind}_mod: {name} has {tensor.ndim} dims but is indexed with {len(indices)}")
        # Clamp every index into range: tail rows and columns past the sequence end are masked afterwards, but
        # their loads must stay inside the buffer.
        offsets = " + ".join(
            f"tl.minimum(tl.maximum({self.arg(i)}, 0), {name}_size{d} - 1) * {name}_stride{d}"
            for d, i in enumerate(indices))
        tor_index = ", ".join(self.arg(i) for i in indices)
        self.assign(node, f"tl.load({name}_ptr + {offsets})", f"{name}[{tor_index}]", indices)

    def find_additive(self, result) -> None:
        """score_mod = score + f(b, h, q, kv) (either order): the exp2-form fast path applies."""
        if self.kind != "score" or not isinstance(result, torch.fx.Node):
            return
        if result.op in ("call_function", "call_method") and result.target in (operator.add, torch.add, "add"):
            a, b = result.args[:2]
            for score_side, bias in ((a, b), (b, a)):
                if isinstance(score_side, torch.fx.Node) and self.var.get(score_side.name) == "score" and \
                        "score" not in self.deps_of(bias):
                    self.out.additive_bias = self.arg(bias)
                    # The bias statements are still in .triton; only the final add is replaced by the template.
                    return
