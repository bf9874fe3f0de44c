"""KernelBench-format problems: read, validate, and resize a problem file without running it."""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = ("Model", "get_inputs", "get_init_inputs")


class ProblemError(ValueError):
    """The problem file is missing, unparsable or not in KernelBench format (CLI exit 2)."""


@dataclass
class Problem:
    path: str
    name: str
    source: str  # the source that runs: overrides already applied
    overrides: dict[str, tuple[str, str]] = field(default_factory=dict)  # NAME -> (old, new) as source text
    constants: dict[str, object] = field(default_factory=dict)  # top-level literal constants, after overrides

    @property
    def key(self) -> str:
        """Identifies this exact problem text; workers cache baselines under it."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def variant(self, only: set[str] | None = None) -> tuple[str, dict[str, tuple[object, object]]] | None:
        """A second input shape: every size constant that the model's constructor does not read, changed to an
        odd value about half as large (so that missing tail masks show). None when no constant can vary.

        The worker checks that the reference still runs on it and skips the shape check if not. `only` limits
        the change to the named constants (generated problems know which of theirs are sizes)."""
        tree = ast.parse(self.source)
        fixed = _closure(_names_read_by(tree, "get_init_inputs") | _names_read_by(tree, "Model"), _dependencies(tree))
        literal = {_single_target(n) for n in tree.body if _single_target(n) and isinstance(n.value, ast.Constant)}
        changes: dict[str, tuple[object, object]] = {}
        for name, value in self.constants.items():
            # Derived constants (dim = 2 * N) follow their sources, so only literals change.
            if only is not None and name not in only:
                continue
            if name in fixed or name not in literal or not isinstance(value, int) or isinstance(value, bool):
                continue
            if value < 2:
                continue
            changes[name] = (value, value // 2 + 1 if value >= 4 else value + 1)
        if not changes:
            return None
        source = _rewrite_constants(self.source, {k: repr(v[1]) for k, v in changes.items()})
        return source, changes


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`NAME=VALUE` strings from `--set` into a dict; VALUE must be a Python literal."""
    overrides: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier() or not value:
            raise ProblemError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ProblemError(f"--set {name}: {value!r} is not a Python literal") from None
        overrides[name] = value
    return overrides


def load_problem(path: str | Path, overrides: dict[str, str] | None = None) -> Problem:
    path = Path(path)
    if not path.is_file():
        raise ProblemError(f"problem file not found: {path}")
    original = path.read_text()
    tree = _parse(original, path)
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    missing = [r for r in REQUIRED if r not in defined]
    if missing:
        raise ProblemError(f"{path} is not a KernelBench problem: it defines no {', '.join(missing)}")

    constants = _literal_constants(tree)
    applied: dict[str, tuple[str, str]] = {}
    source = original
    if overrides:
        unknown = [n for n in overrides if n not in constants]
        if unknown:
            known = ", ".join(sorted(constants)) or "none"
            raise ProblemError(f"--set {unknown[0]}: no such top-level constant in {path.name} (constants: {known})")
        lines = original.splitlines()
        for node in tree.body:
            target = _single_target(node)
            if target in overrides:
                old = ast.get_source_segment(original, node.value) or lines[node.lineno - 1]
                applied[target] = (old, overrides[target])
        source = _rewrite_constants(original, overrides)
        constants = _literal_constants(ast.parse(source))
    return Problem(path=str(path), name=path.stem, source=source, overrides=applied, constants=constants)


def _parse(source: str, path: Path) -> ast.Module:
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise ProblemError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None


def _single_target(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return node.target.id
    return None


def _literal_constants(tree: ast.Module) -> dict[str, object]:
    """Top-level `NAME = <number>` (and expressions of earlier constants, e.g. `dim = 2 * N`)."""
    env: dict[str, object] = {}
    for node in tree.body:
        name = _single_target(node)
        if name is None or not all(isinstance(n, _ARITHMETIC) for n in ast.walk(node.value)):
            continue
        try:
            value = eval(compile(ast.Expression(node.value), "<const>", "eval"), {"__builtins__": {}}, dict(env))
        except Exception:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            env[name] = value
    return env


_ARITHMETIC = (ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop)


def _rewrite_constants(source: str, new_values: dict[str, str]) -> str:
    """Replace the right-hand side of top-level `NAME = ...` lines; derived constants then follow."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []
    for node in tree.body:
        name = _single_target(node)
        if name in new_values:
            edits.append((node.value, new_values[name]))
    for value, text in sorted(edits, key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True):
        start = _offset(lines, value.lineno, value.col_offset)
        end = _offset(lines, value.end_lineno, value.end_col_offset)
        joined = "".join(lines)
        lines = (joined[:start] + text + joined[end:]).splitlines(keepends=True)
    return "".join(lines)


def _offset(lines: list[str], lineno: int, col: int) -> int:
    # ast columns count UTF-8 bytes; problems are ASCII in practice, but be exact anyway.
    prefix = lines[lineno - 1].encode()[:col].decode(errors="ignore")
    return sum(len(line) for line in lines[: lineno - 1]) + len(prefix)


def _names_read_by(tree: ast.Module, definition: str) -> set[str]:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == definition:
            return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return set()


def _dependencies(tree: ast.Module) -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for node in tree.body:
        name = _single_target(node)
        if name:
            deps[name] = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
    return deps


def _closure(names: set[str], deps: dict[str, set[str]]) -> set[str]:
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(deps.get(name, ()))
    return seen
