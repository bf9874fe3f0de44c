"""Rules against reaching the interpreter, files or processes without an import: through attributes of modules
the candidate may import (torch.serialization.os), the table of loaded modules, or lookups by name."""
from __future__ import annotations

import ast

# Attributes that reach frames, code objects or the interpreter's internals.
BANNED_ATTRIBUTES = {
    "__globals__", "__code__", "__closure__", "__subclasses__", "__builtins__", "__dict__", "__bases__",
    "__mro__", "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__", "__loader__", "__spec__",
    "f_back", "f_locals", "f_globals", "f_builtins", "gi_frame", "cr_frame", "tb_frame", "tb_next",
    "__torch_function__", "__torch_dispatch__", "_cdata", "__self__", "func_globals",
    "_getframe", "_current_frames", "currentframe", "settrace", "setprofile",
    "_lib",  # the torch.library.Library behind a custom op: it implements any op of its namespace (custom_ops.py)
}

# Functions of the importer; torch and triton modules hold some of them under these names (e.g.
# triton.language.extra.module_from_spec).
IMPORTER_ATTRIBUTES = {"__import__", "import_module", "module_from_spec", "spec_from_file_location", "exec_module"}

# Modules that reach the process, files, threads, the interpreter or the importer. The import rule bans them,
# but modules a candidate may import hold them as attributes (torch.serialization.os, triton.runtime.cache.os),
# so `<anything>.os` and getattr(x, "os") are flagged too. After the plain names come the aliases found by
# listing every module-valued attribute of every module loaded by importing torch 2.13, triton 3.9 and numpy 2.4
# (`_os`, `_sys`, `bltns`, `mp`, ...). None is an attribute name that a kernel has a reason to use:
# `tl.math`, `torch.cuda`, `self.io_size` are other names.
REACHABLE_MODULES = {
    "os", "posix", "nt", "sys", "subprocess", "importlib", "builtins", "ctypes", "gc", "inspect", "socket",
    "shutil", "pathlib", "io", "signal", "threading", "_thread", "multiprocessing", "pickle", "_pickle",
    "marshal", "runpy", "zipimport", "pkgutil", "tempfile", "linecache", "tokenize", "atexit", "weakref",
    "time", "traceback", "unittest", "setuptools", "logging", "concurrent", "asyncio", "pdb", "bdb",
    "_os", "_sys", "_io", "_shutil", "_socket", "_signal", "_weakref", "_ctypes", "_imp", "_posixsubprocess",
    "_frozen_importlib", "_frozen_importlib_external", "bltns", "mp", "python_multiprocessing",
}

# Calls that look an attribute up by a name given as a string, and the names they must not be given
# ("modules" as in sys.modules).
LOOKUP_FUNCTIONS = {"getattr", "setattr", "delattr", "hasattr", "attrgetter", "methodcaller", "__getattribute__",
                    "getattr_static"}
BANNED_LOOKUPS = BANNED_ATTRIBUTES | IMPORTER_ATTRIBUTES | REACHABLE_MODULES | {"modules"}


def attribute_violations(node: ast.Attribute) -> list[str]:
    if node.attr in BANNED_ATTRIBUTES:
        return [f"reads .{node.attr} (reaches interpreter internals)"]
    if node.attr in IMPORTER_ATTRIBUTES:
        return [f"reads .{node.attr} (imports modules dynamically)"]
    if node.attr in REACHABLE_MODULES:
        return [f"reaches module {node.attr} through an attribute ({_text(node)}) without importing it"]
    return []


def subscript_violations(node: ast.Subscript) -> list[str]:
    if isinstance(node.value, ast.Attribute) and node.value.attr == "modules":
        return [f"reads {_text(node.value)}[...] (the table of loaded modules)"]
    return []


def lookup_violations(node: ast.Call) -> list[str]:
    """getattr(x, "os") reaches what x.os does; getattr(x, name) with a computed name could reach anything."""
    func = node.func
    function = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if function not in LOOKUP_FUNCTIONS:
        return []
    found = []
    if function in ("getattr", "__getattribute__", "getattr_static"):
        # getattr(x, name) and type.__getattribute__(x, name), or the bound x.__getattribute__(name)
        target, name = (node.args[0], node.args[1]) if len(node.args) >= 2 else (
            func.value if isinstance(func, ast.Attribute) else None, node.args[0] if node.args else None)
        is_self = isinstance(target, ast.Name) and target.id == "self"
        if name is not None and not is_self and not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            found.append(f"{function}() with a computed name on something other than self (hides what it reaches)")
    if function in ("attrgetter", "methodcaller") and not all(isinstance(a, ast.Constant) for a in node.args[:1]):
        found.append(f"{function}() with a computed name (hides what it reaches)")
    for arg in node.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            for part in sorted(set(arg.value.split(".")) & BANNED_LOOKUPS):  # attrgetter takes dotted paths
                found.append(f"{function}() looks up {part!r} by name")
    return found


def _text(node: ast.AST) -> str:
    """The source of an expression for a message, cut to 60 characters."""
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."
