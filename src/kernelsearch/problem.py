"""KernelBench-format problems: read, validate, and resize a problem file without running it."""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .constraints import built_into_model, multiples, read_by_model
from .sizes import is_positive_size, is_size, second_value

REQUIRED = ("Model", "get_inputs", "get_init_inputs")


class ProblemError(ValueError):
    """The problem file is missing, unparsable or not in KernelBench format (CLI exit 2)."""


class Variant(NamedTuple):
    """The problem at a second input shape (see sizes.py for which constants change and how)."""
    source: str
    changes: dict[str, tuple[object, object]]  # NAME -> (old value, new value), for each constant rewritten
    changes_parameters: bool  # a changed constant is read by Model or get_init_inputs: the models must be rebuilt


@dataclass
class Problem:
    path: str
    name: str
    source: str  # the source that runs: overrides already applied
    overrides: dict[str, tuple[str, str]] = field(default_factory=dict)  # NAME -> (old, new) as source text
    constants: dict[str, object] = field(default_factory=dict)  # top-level constants (numbers, tuples, lists)

    @property
    def key(self) -> str:
        """Identifies this exact problem text; workers cache baselines under it."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def variant(self, only: set[str] | None = None) -> Variant | None:
        """A second input shape: every size constant (and every size inside a tuple or list constant) changed to
        an odd value about half as large, so that missing tail masks show; None when nothing can change.

        Derived constants (dim = 2 * N) follow their sources. `only` names the constants that are sizes
        (generated problems know theirs), in place of the naming rule of sizes.py. The worker checks that the
        reference runs at this shape and skips the check (saying so) when it does not."""
        return self.resized(lambda name, value, multiple: second_value(value, multiple), only)

    def resized(self, new_size, only: set[str] | None = None) -> Variant | None:
        """The problem with each size (the ones `variant` changes, by the same rule) given
        `new_size(name, value, multiple)`: `multiple` is what the model needs the size to stay a multiple of
        (1 inside a tuple). None when nothing changes."""
        tree = ast.parse(self.source)
        assignments = _assignments(tree)
        depends_on = {a.name: _names(a.node) for a in assignments}
        reads = read_by_model(self.source, depends_on)
        # Globals the model's own code reads stay: a candidate copies the problem's constants, and at another
        # value only the reference would see the change.
        global_to_model = read_by_model(self.source, depends_on, roots=("Model",))
        built_in = built_into_model(tree, self.constants, reads)
        multiple = multiples(tree, self.constants)

        def resized(name: str, value: object, in_tuple: bool) -> object:
            if isinstance(value, (tuple, list)):
                return type(value)(resized(name, x, True) for x in value)
            if name in global_to_model:
                sized = False
            elif only is not None:
                sized = type(value) is int and value >= 2
            else:
                sized = is_size(name, value, read_by_model=name in reads, built_into_model=name in built_in,
                                in_tuple=in_tuple)
            return new_size(name, value, 1 if in_tuple else multiple.get(name, 1)) if sized else value

        texts: dict[str, str] = {}
        for a in assignments:
            if a.name not in self.constants or (only is not None and a.name not in only):
                continue
            literal_sequence = isinstance(a.node, (ast.Tuple, ast.List))
            edits = []
            for element in a.node.elts if literal_sequence else [a.node]:
                if _names(element):
                    continue  # derived from other constants: follows them
                value = _evaluate(element, {})
                new = resized(a.name, value, literal_sequence)
                if new != value:
                    edits.append((element, repr(new)))
            if edits:
                texts[a.name] = _edit_within(self.source, a.node, edits)
        if not texts:
            return None
        source = _rewrite(self.source, texts)
        after = _constants(_assignments(ast.parse(source)))
        changes = {name: (self.constants[name], after.get(name)) for name in texts}
        return Variant(source, changes, any(name in reads for name in changes))


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


def read_source(path: Path, what: str) -> str:
    """A problem's or candidate's text, or a one-line ProblemError: missing, or not UTF-8."""
    if not path.is_file():
        raise ProblemError(f"{what} file not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ProblemError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None


def load_problem(path: str | Path, overrides: dict[str, str] | None = None) -> Problem:
    path = Path(path)
    original = read_source(path, "problem")
    tree = _parse(original, path)
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    missing = [r for r in REQUIRED if r not in defined]
    if missing:
        raise ProblemError(f"{path} is not a KernelBench problem: it defines no {', '.join(missing)}")

    assignments = _assignments(tree)
    constants = _constants(assignments)
    applied: dict[str, tuple[str, str]] = {}
    source = original
    if overrides:
        unknown = [n for n in overrides if n not in constants]
        if unknown:
            known = ", ".join(sorted(constants)) or "none"
            raise ProblemError(f"--set {unknown[0]}: no such top-level constant in {path.name} (constants: {known})")
        for name, text in overrides.items():
            _check_override(name, constants[name], ast.literal_eval(text), path.name)
        for a in assignments:
            if a.name in overrides:
                applied[a.name] = (ast.get_source_segment(original, a.node), overrides[a.name])
        source = _rewrite(original, overrides)
        constants = _constants(_assignments(ast.parse(source)))
    return Problem(path=str(path), name=path.stem, source=source, overrides=applied, constants=constants)


def _check_override(name: str, old: object, new: object, file: str) -> None:
    """--set may change a value, not its kind: a size stays a positive integer, a tuple keeps its length."""
    where = f"--set {name}={new!r}: {name} is {old!r} in {file}"
    if isinstance(old, (tuple, list)):
        if type(new) is not type(old) or len(new) != len(old):
            kind = "a tuple" if isinstance(old, tuple) else "a list"
            raise ProblemError(f"{where}; give {kind} of {len(old)} element{'s' * (len(old) != 1)}, like {old!r}")
        for i, (o, n) in enumerate(zip(old, new)):
            _check_scalar(name, o, n, where, f" (element {i})")
    else:
        _check_scalar(name, old, new, where, "")


def _check_scalar(name: str, old: object, new: object, where: str, element: str) -> None:
    if type(old) is int and type(new) is not int:
        raise ProblemError(f"{where}; give an integer{element}")
    if type(old) is float and type(new) not in (int, float):
        raise ProblemError(f"{where}; give a number{element}")
    if is_positive_size(name, old) and new <= 0:
        raise ProblemError(f"{where}; a size must be a positive integer{element}")


def _parse(source: str, path: Path) -> ast.Module:
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise ProblemError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None


@dataclass
class _Assignment:
    """One name given a value at the top level: `N = 8`, one name of `d, h, w = 16, 32, 32`, or of `h = w = 8`."""
    name: str
    statement: ast.stmt
    node: ast.expr  # this name's expression (shared by all names of a chained `h = w = 8`)
    chained: bool


def _assignments(tree: ast.Module) -> list[_Assignment]:
    found = []
    for s in tree.body:
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value is not None:
            found.append(_Assignment(s.target.id, s, s.value, False))
        elif isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) for t in s.targets):
            found += [_Assignment(t.id, s, s.value, len(s.targets) > 1) for t in s.targets]
        elif (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Tuple)
              and all(isinstance(t, ast.Name) for t in s.targets[0].elts)
              and isinstance(s.value, ast.Tuple) and len(s.value.elts) == len(s.targets[0].elts)
              and not any(isinstance(v, ast.Starred) for v in s.value.elts)):
            found += [_Assignment(t.id, s, v, False) for t, v in zip(s.targets[0].elts, s.value.elts)]
    return found


_ARITHMETIC = (ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.Tuple,
               ast.List)


def _constants(assignments: list[_Assignment]) -> dict[str, object]:
    """Numbers, and tuples or lists of numbers, written as literals or arithmetic of earlier constants."""
    env: dict[str, object] = {}
    for a in assignments:
        value = _evaluate(a.node, env)
        if _is_number(value) or (isinstance(value, (tuple, list)) and all(_is_number(x) for x in value)):
            env[a.name] = value
        else:
            env.pop(a.name, None)  # reassigned to something that is not a constant
    return env


def _evaluate(node: ast.expr, env: dict[str, object]) -> object:
    if not all(isinstance(n, _ARITHMETIC) for n in ast.walk(node)):
        return None
    try:
        return eval(compile(ast.Expression(node), "<const>", "eval"), {"__builtins__": {}}, dict(env))
    except Exception:
        return None


def _names(node: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rewrite(source: str, texts: dict[str, str]) -> str:
    """Give each named constant a new expression (source text), keeping the rest of its statement: one element
    of `d, h, w = 16, 32, 32`; `h = w = 8` becomes `h, w = 4, 8` when only h changes."""
    by_statement: dict[int, list[_Assignment]] = {}
    for a in _assignments(ast.parse(source)):
        by_statement.setdefault(id(a.statement), []).append(a)
    edits = []
    for group in by_statement.values():
        changed = [a for a in group if a.name in texts]
        if not changed:
            continue
        if not group[0].chained:
            edits += [(a.node, texts[a.name]) for a in changed]
            continue
        new = [texts.get(a.name, ast.get_source_segment(source, a.node)) for a in group]
        if len(set(new)) == 1:
            edits.append((group[0].node, new[0]))
        else:
            edits.append((group[0].statement, f"{', '.join(a.name for a in group)} = {', '.join(new)}"))
    return _edit(source, edits)


def _edit(source: str, edits: list[tuple[ast.AST, str]]) -> str:
    """Replace each node's text (the nodes come from ast.parse(source) and do not overlap)."""
    span = _spans(source)
    for start, end, text in sorted(((*span(node), text) for node, text in edits), reverse=True):
        source = source[:start] + text + source[end:]
    return source


def _edit_within(source: str, within: ast.AST, edits: list[tuple[ast.AST, str]]) -> str:
    """`within`'s text with each of the nodes inside it replaced."""
    span = _spans(source)
    start, end = span(within)
    text = source[start:end]
    for s, e, new in sorted(((*span(node), new) for node, new in edits), reverse=True):
        text = text[:s - start] + new + text[e - start:]
    return text


def _spans(source: str):
    """node -> (start, end) offsets in `source`. ast counts lines by \n and columns in UTF-8 bytes."""
    starts = [0] + [i + 1 for i, c in enumerate(source) if c == "\n"]

    def offset(lineno: int, col: int) -> int:
        line = source[starts[lineno - 1]:starts[lineno] if lineno < len(starts) else len(source)]
        return starts[lineno - 1] + len(line.encode()[:col].decode(errors="ignore"))

    return lambda node: (offset(node.lineno, node.col_offset), offset(node.end_lineno, node.end_col_offset))
