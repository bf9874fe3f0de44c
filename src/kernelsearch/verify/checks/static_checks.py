"""Rules a candidate's source must follow, checked on its syntax tree before any of it runs."""
from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass, field

from .cpp_checks import check_cpp_strings
from .custom_ops import ALLOWED_PATH as CUSTOM_OP, custom_op_violation
from .reach_checks import attribute_violations, lookup_violations, subscript_violations
from .scopes import ScopedVisitor, code_run_on_import

# Modules a kernel file has a reason to import. Everything else (os, sys, inspect, gc, ctypes, threading,
# subprocess, socket, importlib, pickle, time, ...) gives a way to reach the harness, the timer or the network.
ALLOWED_IMPORTS = {
    "torch", "triton", "math", "numpy", "functools", "itertools", "typing", "dataclasses", "collections",
    "operator", "enum", "abc", "numbers", "__future__",
}

# torch.compiler's questions, which change nothing: generated attention asks is_compiling() to pick its path.
COMPILER_QUESTIONS = frozenset({"torch.compiler.is_compiling", "torch.compiler.is_dynamo_compiling",
                                "torch.compiler.is_exporting"})
# Parts of torch/triton that change how the harness measures or that hand the work to another compiler, and
# parts of numpy that touch files or build code.
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
    "torch.compiler": "changes how torch.compile runs (the torch.compile baseline's stance or caches)",
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
    "numpy.load": "reads files", "numpy.save": "writes files", "numpy.savez": "writes files",
    "numpy.savez_compressed": "writes files", "numpy.savetxt": "writes files", "numpy.loadtxt": "reads files",
    "numpy.genfromtxt": "reads files", "numpy.fromfile": "reads files", "numpy.memmap": "maps files",
    # numpy's file helpers, under their numpy 2.x and 1.x module names
    "numpy.lib.npyio": "reads files", "numpy.lib._npyio_impl": "reads files", "numpy.lib.format": "reads files",
    "numpy.lib._format_impl": "reads files", "numpy.lib._datasource": "reads files",
    "numpy.lib._iotools": "reads files",
    "numpy.ctypeslib": "reaches raw memory through ctypes", "numpy.f2py": "builds and runs a compiler",
    "numpy.distutils": "builds and runs a compiler", "numpy.testing": "reaches numpy's test tools",
    "numpy.test": "runs numpy's test suite", "numpy.lib.test": "runs numpy's test suite",
}

BANNED_BUILTINS = {
    "eval": "evaluates code from strings", "exec": "executes code from strings", "compile": "compiles code",
    "__import__": "imports dynamically", "globals": "reads global namespaces", "vars": "reads namespaces",
    "locals": "reads namespaces", "open": "opens files", "breakpoint": "starts a debugger",
    "input": "reads standard input", "memoryview": "reads raw memory", "exit": "ends the process",
    "quit": "ends the process",
}
# Globals every module gets without binding them: each reaches the builtins or the importer.
BANNED_MODULE_GLOBALS = {
    "__builtins__": "reaches the builtins module", "__loader__": "reaches the module loader (reads files)",
    "__spec__": "reaches the module loader (reads files)",
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
        table = symtable.symtable(source, filename, "exec")  # also rejects e.g. `nonlocal` at module level
    except SyntaxError as e:
        report.syntax_error = f"line {e.lineno}: {e.msg}"
        return report
    except ValueError as e:  # null bytes in the source (Python 3.11)
        report.syntax_error = str(e)
        return report
    running = code_run_on_import(tree, table)  # the rules judge only what runs when the file is imported
    report.has_model_new = any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in running.body)
    _RuleVisitor(report, running, table).visit(running)
    report.violations.extend(check_cpp_strings(running))
    return report


class _RuleVisitor(ScopedVisitor):
    def __init__(self, report: StaticReport, tree: ast.Module, table: symtable.SymbolTable):
        super().__init__(tree, table)
        self.report = report
        self.aliases: dict[str, str] = {}  # local name -> full dotted path of the module or object
        self.defines_model = any(isinstance(n, ast.ClassDef) and n.name == "Model" for n in tree.body)
        self.custom_op_calls: set[int] = set()  # ids of the nodes that name torch.library.custom_op in a call
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
        if all(f"{module}.{alias.name}" == CUSTOM_OP for alias in node.names):
            self.custom_op_calls.add(id(node))  # `from torch.library import custom_op`: its calls are checked
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
        if path == CUSTOM_OP or (path == CUSTOM_OP.rsplit(".", 1)[0] and id(node) in self.custom_op_calls):
            if id(node) not in self.custom_op_calls:
                self.flag(node, f"uses {CUSTOM_OP} other than in a call (its name must be checked)")
            return
        if path in COMPILER_QUESTIONS:
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
        for violation in attribute_violations(node):
            self.flag(node, violation)
        path = self.resolve(node)
        if path:
            self._check_api(node, path)
        if path != CUSTOM_OP and path not in COMPILER_QUESTIONS:  # torch.library, torch.compiler alone stay banned
            self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        for violation in subscript_violations(node):
            self.flag(node, violation)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):  # binding or deleting a name never reaches the builtin
            if node.id in BANNED_BUILTINS and self.refers_to_builtin(node.id, node.lineno):
                self.flag(node, f"uses {node.id}(): {BANNED_BUILTINS[node.id]}")
            if node.id in BANNED_MODULE_GLOBALS and self.refers_to_builtin(node.id, node.lineno):
                self.flag(node, f"uses {node.id}: {BANNED_MODULE_GLOBALS[node.id]}")
        if node.id == "Model" and not self.defines_model:
            self.flag(node, "uses the reference Model (subclassing or calling it is a PyTorch fallback)")
        if node.id in self.aliases:
            self._check_api(node, self.aliases[node.id])
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if self.resolve(func) == CUSTOM_OP or (isinstance(func, ast.Name) and self.aliases.get(func.id) == CUSTOM_OP):
            self.custom_op_calls.add(id(func))
            why = custom_op_violation(node)
            if why:
                self.flag(node, why)
        if isinstance(func, ast.Name) and func.id in ("setattr", "delattr", "getattr") and node.args:
            target = node.args[0]
            if func.id != "getattr" and not (isinstance(target, ast.Name) and target.id == "self"):
                self.flag(node, f"{func.id}() on something other than self (patching)")
            if self.resolve(target) is not None:
                self.flag(node, f"{func.id}() on a module (dynamic lookup hides what is used)")
        for violation in lookup_violations(node):
            self.flag(node, violation)
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
        super().visit_ClassDef(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            path = self.resolve(target) or ""
            if path.startswith("triton.") and path.split(".")[-1] in ("jit", "autotune", "heuristics"):
                self.uses_triton = True
        if node.name in ("__del__", "__getattr__", "__getattribute__"):
            self.flag(node, f"defines {node.name} (runs code outside the measured call)")
        super().visit_FunctionDef(node)

    visit_AsyncFunctionDef = visit_FunctionDef
