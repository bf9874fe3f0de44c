"""Precision a run on the CPU cannot show: Triton's `tl.dot` on fp32 data is exact in the interpreter but uses
TF32 on a GPU by default (about 1e-3 relative error, which fails the fp32 tolerance of 1e-4)."""
from __future__ import annotations

import ast

# Keywords that choose the precision explicitly (allow_tf32 is the older spelling).
PRECISION_KEYWORDS = {"input_precision", "allow_tf32"}
TF32_ADVICE = ('on a GPU, fp32 operands then run in TF32 (about 1e-3 relative error, over the 1e-4 fp32 '
               'tolerance), while the CPU interpreter computes them exactly, so this run cannot tell: pass '
               'input_precision="tf32x3" (near-fp32 on tensor cores) or "ieee" (exact, slower)')


def dots_without_precision(source: str) -> list[int]:
    """Lines of `tl.dot(...)` / `triton.language.dot(...)` calls that do not choose their input precision."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    language_names = {"tl"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            language_names |= {a.asname for a in node.names if a.name == "triton.language" and a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module == "triton":
            language_names |= {a.asname or a.name for a in node.names if a.name == "language"}
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dot"):
            continue
        base = node.func.value
        is_triton = (isinstance(base, ast.Name) and base.id in language_names) or (
            isinstance(base, ast.Attribute) and base.attr == "language" and isinstance(base.value, ast.Name)
            and base.value.id == "triton")
        if is_triton and not {k.arg for k in node.keywords} & PRECISION_KEYWORDS:
            lines.append(node.lineno)
    return sorted(lines)


def tf32_warning(source: str, dtype: str, device: str) -> str | None:
    """The verdict's warning for an fp32 problem checked on the CPU, or None."""
    if device != "cpu" or dtype != "fp32":
        return None
    lines = dots_without_precision(source)
    if not lines:
        return None
    return f"tl.dot without input_precision (line {', '.join(map(str, lines))}): {TF32_ADVICE}"
