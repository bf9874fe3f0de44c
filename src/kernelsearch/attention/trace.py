"""Trace score_mod / mask_mod with torch.fx and render them as Triton (kernel) and torch (host) code."""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx

from .grad import score_derivative
from .ops import BINARY, COMPARISONS, FUNCTIONS, METHOD_BINARY, UNARY

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


def _int_constant(a) -> bool:
    """An integer constant of the mod's code (True and False are bools, not integers)."""
    return isinstance(a, int) and not isinstance(a, bool)


class _Renderer:
    def __init__(self, kind, graph_module, placeholder_names, capture_names):
        self.mod, self.gm, self.capture_names = kind, graph_module, capture_names
        self.prefix = "sm" if kind == "score" else "mm"
        self.var: dict[str, str] = dict(placeholder_names)  # node name -> variable
        self.deps: dict[str, set[str]] = {node: {name} for node, name in placeholder_names.items()}
        self.out = TracedMod(kind=kind, triton=[], torch=[], result="")
        self.count = 0
        self.seen: dict[tuple[str, str], tuple] = {}
        self.kinds = {node: "float" if name == "score" else "int" for node, name in placeholder_names.items()}
        # Integer index arithmetic that flows into float math is computed in float32 from the index vectors:
        # q_idx - kv_idx converted per score costs an int-to-float conversion per element (a fraction of the
        # float32 rate: 16 against 128 results per clock per SM in the CUDA guide's table, as dear as the exp2
        # itself), the vectors' conversion one per row and per column. Such "index-exact" values (indices, integer
        # constants, +, -, negation, abs, min/max, products with an integer constant) are exact in float32 while
        # they stay below 2**24: in every sequence shorter than 16.7M tokens. node -> its float32 form:
        self.exact = {node: f"({name}).to(tl.float32)" for node, name in placeholder_names.items() if name != "score"}

    def run(self) -> TracedMod:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                result = node.args[0]
                self.out.result = self.arg(result)
                self.out.uses = self.deps_of(result)
                self.find_additive(result)
                if self.mod == "score":
                    self.out.grad, self.out.grad_result = score_derivative(self, result)
                return self.out
            self.emit(node)
        raise TraceError(f"{self.mod}_mod has no output")

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
        raise TraceError(f"{self.mod}_mod: unsupported constant {a!r} of type {type(a).__name__}")

    def deps_of(self, a) -> set[str]:
        return set(self.deps.get(a.name, set())) if isinstance(a, torch.fx.Node) else set()

    def kind_of(self, a) -> str:
        """"int", "float" or "bool": what a value holds (torch's promotion: int op float is float)."""
        if isinstance(a, torch.fx.Node):
            return self.kinds.get(a.name, "float")
        return "bool" if isinstance(a, bool) else "int" if isinstance(a, int) else "float"

    def float_form(self, a) -> str | None:
        """An index-exact value in float32 (an integer constant as it is), or None."""
        if isinstance(a, torch.fx.Node):
            return self.exact.get(a.name)
        return repr(a) if _int_constant(a) else None

    def as_float(self, a) -> str:
        """An operand of float math: an index-exact int in its float form, anything else as it is."""
        form = self.float_form(a) if self.kind_of(a) == "int" else None
        return form if form is not None else self.arg(a)

    def assign(self, node, triton_expr: str, torch_expr: str, inputs, kind: str = "float",
               exact: str | None = None) -> None:
        if (triton_expr, torch_expr) in self.seen:  # the same pure expression again (a mod reads a tensor twice)
            self.var[node.name], self.deps[node.name], self.kinds[node.name], form = self.seen[triton_expr, torch_expr]
            if form is not None:
                self.exact[node.name] = form
            return
        name = f"{self.prefix}{self.count}"
        self.count += 1
        self.var[node.name] = name
        self.deps[node.name] = set().union(*[self.deps_of(a) for a in inputs]) if inputs else set()
        self.kinds[node.name] = kind
        if exact is not None:
            self.exact[node.name] = exact
        self.out.triton.append(f"{name} = {triton_expr}")
        self.out.torch.append(f"{name} = {torch_expr}")
        self.seen[triton_expr, torch_expr] = name, self.deps[node.name], kind, exact

    # ---- ops -----------------------------------------------------------------------------------------------
    def emit(self, node) -> None:
        if node.op == "get_attr":
            return self.capture(node)
        target, args, kwargs = node.target, list(node.args), dict(node.kwargs)
        name = target if node.op == "call_method" else FUNCTIONS.get(target)
        if node.op == "call_function" and target in BINARY or node.op == "call_method" and target in METHOD_BINARY:
            op = BINARY.get(target) or METHOD_BINARY[target]
            if len(args) != 2 or kwargs:
                raise TraceError(f"{self.mod}_mod: {op} with arguments {args} {kwargs} is not supported")
            return self.binary(node, op, args)
        if node.op == "call_function" and target is operator.invert or node.op == "call_method" and target in (
                "__invert__", "logical_not", "bitwise_not"):
            a = self.arg(args[0])
            return self.assign(node, f"({a}) == 0", f"~({a}).bool()", args, "bool")
        if node.op == "call_function" and target is operator.pow or node.op == "call_method" and target == "pow":
            return self.power(node, args)
        if name in UNARY and len(args) == 1:
            return self.unary(node, name, args[0])
        if node.op == "call_function" and target is torch.where or node.op == "call_method" and target == "where":
            c = self.arg(args[0])
            return self.either(node, args[1:3], f"tl.where({c}, {{}}, {{}})", f"torch.where({c}, {{}}, {{}})",
                               args[:3])
        if target in (torch.clamp, torch.clip, "clamp", "clip"):
            return self.clamp(node, args, kwargs)
        if target in (torch.minimum, torch.maximum, "minimum", "maximum"):
            fn = target if isinstance(target, str) else target.__name__
            return self.either(node, args[:2], f"tl.{fn}({{}}, {{}})", f"torch.{fn}({{}}, {{}})", args[:2])
        if node.op == "call_method" and target == "to" or target in (torch.zeros_like,):
            return self.cast(node, target, args, kwargs)
        if node.op == "call_method" and target in ("new_ones", "new_zeros"):  # and_masks / or_masks / noop_mask
            return self.constant_like(node, target, args, kwargs)
        if target is operator.getitem or getattr(target, "__name__", target) == "__getitem__":
            return self.load(node, args)
        label = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
        raise TraceError(f"{self.mod}_mod uses {label}, which the attention generator cannot translate "
                         "(supported: arithmetic, comparisons, &, |, where, clamp, minimum/maximum, abs, exp, exp2, "
                         "log, sqrt, tanh, sigmoid, sin, cos, and indexing captured tensors)")

    def binary(self, node, op: str, args) -> None:
        x, y = args
        kinds = (self.kind_of(x), self.kind_of(y))
        if op in COMPARISONS:
            kind = "bool"
        elif op in ("&", "|", "^"):
            kind = "bool" if kinds == ("bool", "bool") else "int"
        else:
            kind = "float" if op == "/" or "float" in kinds else "int"
        if "float" in kinds or op == "/":  # float math: index-exact operands in their float form
            a, b = self.as_float(x), self.as_float(y)
        else:
            a, b = self.arg(x), self.arg(y)
        exact = None
        fx, fy = self.float_form(x), self.float_form(y)
        constant = _int_constant(x) or _int_constant(y)
        if kind == "int" and fx and fy and (op in ("+", "-") or op == "*" and constant):
            exact = f"({fx}) {op} ({fy})"
        self.assign(node, f"({a}) {op} ({b})", f"({self.arg(x)}) {op} ({self.arg(y)})", args, kind, exact)

    def either(self, node, args, triton_form: str, torch_form: str, inputs) -> None:
        """where's branches, minimum, maximum: the value is one of two, so it is as exact as both are."""
        x, y = args
        kind = "float" if "float" in (self.kind_of(x), self.kind_of(y)) else self.kind_of(x)
        a, b = (self.as_float(x), self.as_float(y)) if kind == "float" else (self.arg(x), self.arg(y))
        fx, fy = self.float_form(x), self.float_form(y)
        exact = triton_form.format(fx, fy) if kind == "int" and fx and fy else None
        self.assign(node, triton_form.format(a, b), torch_form.format(self.arg(x), self.arg(y)), inputs, kind,
                    exact)

    def unary(self, node, name: str, x) -> None:
        tri, tor = UNARY[name]
        kind, form = self.kind_of(x), self.float_form(x)
        if name == "float":  # a conversion of an index-exact value is its float form, with no per-element work
            return self.assign(node, form if kind == "int" and form else tri.format(self.arg(x)),
                               tor.format(self.arg(x)), [x])
        if name in ("neg", "abs"):
            exact = tri.format(form) if kind == "int" and form else None
            return self.assign(node, tri.format(self.arg(x)), tor.format(self.arg(x)), [x], kind, exact)
        if name == "logical_not":
            return self.assign(node, tri.format(self.arg(x)), tor.format(self.arg(x)), [x], "bool")
        self.assign(node, tri.format(self.as_float(x)), tor.format(self.arg(x)), [x])

    def power(self, node, args) -> None:
        base, exponent = args
        if not isinstance(exponent, int) or not 0 <= exponent <= 4:
            raise TraceError(f"{self.mod}_mod: only small integer powers (x**0..x**4) are supported, got **{exponent!r}")
        a = self.arg(base)
        expr = " * ".join([f"({a})"] * exponent) or "1"
        self.assign(node, expr, expr, [base], self.kind_of(base))

    def clamp(self, node, args, kwargs) -> None:
        x = args[0]
        low = kwargs.get("min", args[1] if len(args) > 1 else None)
        high = kwargs.get("max", args[2] if len(args) > 2 else None)
        bounds = [v for v in (low, high) if v is not None]
        kind = "float" if "float" in [self.kind_of(v) for v in (x, *bounds)] else self.kind_of(x)
        value = self.as_float if kind == "float" else self.arg
        tri, exact = value(x), self.float_form(x) if kind == "int" else None
        for bound, fn in ((low, "maximum"), (high, "minimum")):
            if bound is not None:
                tri = f"tl.{fn}({tri}, {value(bound)})"
                form = self.float_form(bound)
                exact = f"tl.{fn}({exact}, {form})" if exact and form else None
        tor = f"torch.clamp({self.arg(x)}, {self.arg(low)}, {self.arg(high)})"
        self.assign(node, tri, tor, [a for a in (x, low, high) if isinstance(a, torch.fx.Node)], kind, exact)

    def cast(self, node, target, args, kwargs) -> None:
        x = args[0]
        a, kind = self.arg(x), self.kind_of(x)
        if target is torch.zeros_like:
            return self.assign(node, f"tl.zeros_like({a})", f"torch.zeros_like({a})", args, kind)
        dtype = kwargs.get("dtype", args[1] if len(args) > 1 else None)
        if dtype in (torch.float32, torch.float):
            return self.unary(node, "float", x)
        if dtype in (torch.int32, torch.int64, torch.int):
            exact = self.float_form(x) if kind == "int" else None
            return self.assign(node, f"({a}).to(tl.int32)", f"({a}).int()", args[:1], "int", exact)
        raise TraceError(f"{self.mod}_mod: .to({dtype}) is not supported (float32 and int32 are)")

    def capture(self, node) -> None:
        tensor = getattr(self.gm, node.target)
        name = self.capture_names.get(id(tensor))
        if name is None:
            raise TraceError(f"{self.mod}_mod reads a tensor it makes on each call; make it once outside the mod "
                             "(a global, or a variable of the factory that returns the mod)")
        if not any(c.name == name for c in self.out.captures):
            self.out.captures.append(Capture(name, tensor))
        self.var[node.name] = name
        self.deps[node.name] = set()

    def constant_like(self, node, target, args, kwargs) -> None:
        size = kwargs.get("size", args[1] if len(args) > 1 else None)
        if size not in ((), [], torch.Size([])) or len(args) > 2:
            raise TraceError(f"{self.mod}_mod: {target} is supported for a scalar (size ()) only")
        dtype = kwargs.get("dtype")
        triton_type = {torch.bool: "tl.int1", torch.float32: "tl.float32"}.get(dtype, "tl.int32")
        kind = {"tl.int1": "bool", "tl.float32": "float"}.get(triton_type, "int")
        value = 1 if target == "new_ones" else 0
        receiver = self.arg(args[0])
        torch_dtype = f", dtype=torch.{str(dtype).replace('torch.', '')}" if dtype is not None else ""
        self.assign(node, f"tl.full([1, 1], {value}, {triton_type})", f"({receiver}).{target}((){torch_dtype})", [],
                    kind)

    def load(self, node, args) -> None:
        base, index = args
        if not isinstance(base, torch.fx.Node) or base.op != "get_attr":
            raise TraceError(f"{self.mod}_mod: indexing is supported on captured tensors only")
        name = self.var[base.name]
        tensor = getattr(self.gm, base.target)
        indices = list(index) if isinstance(index, (tuple, list)) else [index]
        if len(indices) != tensor.ndim:
            raise TraceError(f"{self.mod}_mod: {name} has {tensor.ndim} dims but is indexed with {len(indices)}")
        # Clamp every index into range: tail rows and columns past the sequence end are masked afterwards, but
        # their loads must stay inside the buffer.
        offsets = " + ".join(
            f"tl.minimum(tl.maximum({self.arg(i)}, 0), {name}_size{d} - 1) * {name}_stride{d}"
            for d, i in enumerate(indices))
        tor_index = ", ".join(self.arg(i) for i in indices)
        kind = "float" if tensor.is_floating_point() else "bool" if tensor.dtype == torch.bool else "int"
        self.assign(node, f"tl.load({name}_ptr + {offsets})", f"{name}[{tor_index}]", indices, kind)

    def find_additive(self, result) -> None:
        """score_mod = score + f(b, h, q, kv) (either order): the exp2-form fast path applies."""
        if self.mod != "score" or not isinstance(result, torch.fx.Node):
            return
        if result.op in ("call_function", "call_method") and result.target in (operator.add, torch.add, "add"):
            a, b = result.args[:2]
            for score_side, bias in ((a, b), (b, a)):
                if isinstance(score_side, torch.fx.Node) and self.var.get(score_side.name) == "score" and \
                        "score" not in self.deps_of(bias):
                    self.out.additive_bias = self.as_float(bias)
                    # The bias statements are still in .triton; only the final add is replaced by the template.
                    return
