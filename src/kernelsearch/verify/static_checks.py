"""Rules a candidate's source must follow, checked on its syntax tree before any of it runs."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

# Modules a kernel file has a reason to import. Everything else (os, sys, inspect, gc, ctypes, threading,
# subprocess, socket, importlib, pickle, time, ...) gives a way to reach the harness, the timer or the network.
ALLOWED_IMPORTS = {
    "torch", "triton", "math", "numpy", "functools", "itertools", "typing", "dataclasses", "collections",
    "operator", "enum", "abc", "numbers", "__future__",
}

# Parts of torch/triton that change how the harness measures or that hand the work to another compiler.
BANNED_APIS = {
    "torch.cuda.Stream": "runs work on another CUDA stream",
    "torch.cuda.stream": "runs work on another CUDA stream",
    "torch.cuda.ExternalStream": "runs work on another CUDA stream",
    "torch.cuda.set_stream": "runs work on another CUDA stream",
    "torch.Stream": "runs work on another stream",
    "torch.cuda.Event": "creates timing events",
    "torch.cuda.CUDAGraph": "replays a captured CUDA graph",
    "torch.cuda.graph": "replays a captured CUDA graph",
    "torch.cuda.graphs": "replays a captured CUDA graph",
    "torch.cuda.make_graphed_callables": "replays a captured CUDA graph",
    "torch.compile": "hands the work to torch.compile",
    "torch._dynamo": "hands the work to torch.compile",
    "torch._inductor": "hands the work to torch.compile",
    "torch.jit": "uses TorchScript",
    "torch.fx": "rewrites graphs with torch.fx",
    "torch.library": "registers operators",
    "torch.ops": "calls operators by name",
    "torch.backends": "changes backend settings (e.g. TF32)",
    "torch.set_float32_matmul_precision": "changes matmul precision",
    "torch.set_default_dtype": "changes the default dtype",
    "torch.set_flush_denormal": "changes float semantics",
    "torch._C": "reaches torch internals",
    "torch.hub": "loads code or weights from outside",
    "torch.load": "reads files",
    "torch.save": "writes files",
    "torch.from_file": "reads files",
    "torch.multiprocessing": "starts processes",
    "torch.distributed": "uses the network",
    "torch.utils.cpp_extension.load": "builds from files (use load_inline)",
    "torch.utils.cpp_extension.CppExtension": "builds extensions (use load_inline)",
    "torch.utils.cpp_extension.BuildExtension": "builds extensions (use load_inline)",
    "torch.cuda.nvtx": "reaches the profiler",
    "torch.profiler": "reaches the profiler",
    "torch.autograd.profiler": "reaches the profiler",
    "triton.testing": "runs its own benchmarks",
}

BANNED_BUILTINS = {
    "eval": "evaluates code from strings", "exec": "executes code from strings", "compile": "compiles code",
    "__import__": "imports dynamically", "globals": "reads global namespaces", "vars": "reads namespaces",
    "locals": "reads namespaces", "open": "opens files", "breakpoint": "starts a debugger",
    "input": "reads standard input", "memoryview": "reads raw memory", "exit": "ends the process",
    "quit": "ends the process",
}

# Attributes that reach frames, code objects or the interpreter's internals.
BANNED_ATTRIBUTES = {
    "__globals__", "__code__", "__closure__", "__subclasses__", "__builtins__", "__dict__", "__bases__",
    "__mro__", "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__", "__loader__", "__spec__",
    "f_back", "f_locals", "f_globals", "f_builtins", "gi_frame", "cr_frame", "tb_frame", "tb_next",
    "__torch_function__", "__torch_dispatch__", "_cdata", "__self__", "func_globals",
}

# C++/CUDA text inside load_inline sources: tokens that mean a library does the work or the harness is reached.
CPP_BANNED = {
    r"\bcublas\w*": "calls cuBLAS instead of its own kernel",
    r"\bcudnn\w*": "calls cuDNN instead of its own kernel",
    r"\bcudaStreamCreate\w*|\bgetStreamFromPool\b|\bcudaStreamBeginCapture\b": "runs work on another CUDA stream",
    r"\bstd::thread\b|\bpthread_create\b|\bstd::async\b": "starts threads",
    r"\bfopen\b|\bstd::ifstream\b|\bstd::ofstream\b|\bgetenv\b|\bdlopen\b|\bpopen\b|\bsystem\s*\(": "touches files, "
    "environment or processes",
    r"\b(?:at|torch)::(?:matmul|mm|bmm|addmm|conv\w*|linear|softmax|log_softmax|layer_norm|batch_norm|"
    r"scaled_dot_product_attention|einsum)\b": "calls a PyTorch op from C++ instead of its own kernel",
}


@dataclass
class StaticReport:
    syntax_error: str | None = None
    has_model_new: bool = False
    language: str = "none"  # "triton", "cuda", "both" or "none"
    violations: list[str] = field(default_factory=list)  # each names what the candidate did and where

    @property
    def ok(self) -> bool:
        return self.syntax_error is None and self.has_model_new and not self.violations


def check_source(source: str, filename: str = "candidate.py") -> StaticReport:
    report = StaticReport()
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        report.syntax_error = f"line {e.lineno}: {e.msg}"
        return report
    report.has_model_new = any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body)
    _RuleVisitor(report, tree).visit(tree)
    report.violations.extend(_check_cpp_strings(tree))
    return report


class _RuleVisitor(ast.NodeVisitor):
    def __init__(self, report: StaticReport, tree: ast.Module):
        self.report = report
        self.aliases: dict[str, str] = {}  # local name -> full dotted path of the module or object
        self.defines_model = any(isinstance(n, ast.ClassDef) and n.name == "Model" for n in tree.body)
        self.uses_triton = False
        self.uses_cuda = False

    def flag(self, node: ast.AST, what: str) -> None:
        line = f"line {node.lineno}: " if hasattr(node, "lineno") else ""
        message = f"{line}{what}"
        if message not in self.report.violations:
            self.report.violations.append(message)

    def visit_Module(self, node: ast.Module) -> None:
        self.generic_visit(node)
        self.report.language = {(True, True): "both", (True, False): "triton", (False, True): "cuda"}.get(
            (self.uses_triton, self.uses_cuda), "none")

    # imports -----------------------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.flag(node, "relative import (the candidate must be one self-contained file)")
            return
        module = node.module or ""
        self._check_module(node, module)
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if alias.name == "*":
                self.flag(node, f"'from {module} import *' hides which names are used")
                continue
            self._check_api(node, full)
            self.aliases[alias.asname or alias.name] = full

    def _check_module(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if top not in ALLOWED_IMPORTS:
            self.flag(node, f"imports {module} (allowed: {', '.join(sorted(ALLOWED_IMPORTS - {'__future__'}))})")
        if top == "triton":
            self.uses_triton = True
        self._check_api(node, module)

    def _check_api(self, node: ast.AST, path: str) -> None:
        if path.startswith("triton"):
            self.uses_triton = True
        if path.endswith("cpp_extension.load_inline"):
            self.uses_cuda = True
            return
        for banned, why in BANNED_APIS.items():
            if path == banned or path.startswith(banned + "."):
                self.flag(node, f"uses {banned}: {why}")
                return

    # names and attributes ----------------------------------------------------------------------------------
    def resolve(self, node: ast.AST) -> str | None:
        """Full dotted path of `a.b.c` when `a` is an imported module or object, else None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.aliases:
            return ".".join([self.aliases[node.id], *reversed(parts)])
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in BANNED_ATTRIBUTES:
            self.flag(node, f"reads .{node.attr} (reaches interpreter internals)")
        path = self.resolve(node)
        if path:
            self._check_api(node, path)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in BANNED_BUILTINS and node.id not in self.aliases:
            self.flag(node, f"uses {node.id}(): {BANNED_BUILTINS[node.id]}")
        if node.id == "Model" and not self.defines_model:
            self.flag(node, "uses the reference Model (subclassing or calling it is a PyTorch fallback)")
        if node.id in self.aliases:
            self._check_api(node, self.aliases[node.id])
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("setattr", "delattr", "getattr") and node.args:
            target = node.args[0]
            if func.id != "getattr" and not (isinstance(target, ast.Name) and target.id == "self"):
                self.flag(node, f"{func.id}() on something other than self (patching)")
            if self.resolve(target) is not None:
                self.flag(node, f"{func.id}() on a module (dynamic lookup hides what is used)")
        self.generic_visit(node)

    # assignments that patch modules ------------------------------------------------------------------------
    def _check_store(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._check_store(element)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            base = target.value if isinstance(target, ast.Subscript) else target
            path = self.resolve(base)
            if path:
                self.flag(target, f"assigns to {path} (monkey-patching)")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_store(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_store(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_store(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_store(target)
        self.generic_visit(node)

    # control flow and classes ------------------------------------------------------------------------------
    def visit_Try(self, node: ast.Try) -> None:
        for handler in node.handlers:
            if not (handler.body and isinstance(handler.body[-1], ast.Raise)):
                self.flag(handler, "try/except that does not re-raise (a fallback path hides failures)")
        self.generic_visit(node)

    visit_TryStar = visit_Try

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            path = self.resolve(base)
            if path in ("torch.Tensor", "torch._C.TensorBase"):
                self.flag(node, f"class {node.name} subclasses torch.Tensor (a lazy or fake result)")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            path = self.resolve(target) or ""
            if path.startswith("triton.") and path.split(".")[-1] in ("jit", "autotune", "heuristics"):
                self.uses_triton = True
        if node.name in ("__del__", "__getattr__", "__getattribute__"):
            self.flag(node, f"defines {node.name} (runs code outside the measured call)")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

def _check_cpp_strings(tree: ast.Module) -> list[str]:
    """C++/CUDA source handed to load_inline lives in string constants; scan them (comments stripped)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ("{" in node.value or "#include"
                                                                                 in node.value):
            code = re.sub(r"//[^\n]*|/\*.*?\*/", "", node.value, flags=re.S)
            for pattern, why in CPP_BANNED.items():
                match = re.search(pattern, code)
                if match:
                    message = f"line {node.lineno}: C++ source uses {match.group(0)}: {why}"
                    if message not in found:
                        found.append(message)
    return found
