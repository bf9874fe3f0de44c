"""Tool arguments as agents send them: a file argument is a path or the file's source text, and `set` is a JSON
object of size constants. Anything unusable is an ArgumentError with a one-line message (a tool error)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..problem import Problem, load_problem, parse_overrides


class ArgumentError(ValueError):
    """A tool argument that cannot be used; the message says why in one line."""


def is_source_text(value: str) -> bool:
    """Source text has line breaks; a path has none (the one rule that tells the two apart)."""
    return "\n" in value


def read_file_argument(value: str, what: str) -> tuple[str, str]:
    """(name, text) of a file argument: a path's stem and its text, or source text as given, named `what`."""
    if is_source_text(value):
        return what, value
    path = existing_file(value, what)
    try:
        return path.stem, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ArgumentError(f"cannot read the {what} file {value}: {e}") from None


def file_argument_path(value: str, what: str, scratch: Path) -> Path:
    """A file on disk for a file argument: the path itself, or source text written to `scratch` as `what`.py
    (the loaders read files, and Triton reads kernel source through inspect)."""
    if not is_source_text(value):
        return existing_file(value, what)
    folder = scratch / "inline" / hashlib.sha256(value.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{what}.py"
    path.write_text(value, encoding="utf-8")
    return path


def existing_file(value: str, what: str) -> Path:
    if not value.strip():
        raise ArgumentError(f"the {what} argument is empty: give a path or the file's source text")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ArgumentError(f"{what} file not found: {value} (give a path, or the file's source text with its "
                            f"line breaks)")
    return path


def load_problem_argument(value: str, sizes: dict | None, scratch: Path) -> Problem:
    """A KernelBench problem from a path or source text, with `set` ({NAME: VALUE}) applied. VALUE is a number,
    a list (read as a tuple where the problem's constant is one: JSON has no tuples) or a Python literal as a
    string. Raises ProblemError for a file that is not a KernelBench problem or a `set` it cannot take."""
    path = file_argument_path(value, "problem", scratch)
    if not sizes:
        return load_problem(path)
    constants = load_problem(path).constants
    items = []
    for name, given in sizes.items():
        if isinstance(given, list) and isinstance(constants.get(name), tuple):
            given = tuple(given)
        items.append(f"{name}={given if isinstance(given, str) else repr(given)}")
    return load_problem(path, parse_overrides(items))
