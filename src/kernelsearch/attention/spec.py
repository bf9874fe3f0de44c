"""An attention spec file: FlexAttention-style score_mod / mask_mod, captured tensors, and shapes."""
from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

DTYPES = ("fp32", "fp16", "bf16")


class SpecError(ValueError):
    """The spec file is missing, broken, or does not define what it must."""


@dataclass(frozen=True)
class Shape:
    batch: int
    heads: int
    q_len: int
    kv_len: int
    head_dim: int
    kv_heads: int | None = None  # GQA: fewer kv heads than query heads; None means the same
    dtype: str = "bf16"

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.heads

    def label(self) -> str:
        gqa = f" Hkv={self.kv_heads}" if self.kv_heads else ""
        return f"B={self.batch} H={self.heads}{gqa} Sq={self.q_len} Skv={self.kv_len} D={self.head_dim} {self.dtype}"


@dataclass
class AttentionSpec:
    name: str
    path: str
    source: str
    score_mod: object | None
    mask_mod: object | None
    shapes: list[Shape]  # the GPU shapes: verified, tuned and benchmarked
    test_shapes: list[Shape]  # small shapes for the CPU interpreter
    module: object = None
    make_captures: object | None = None  # optional (shape) -> {global name: tensor} for size-dependent captures
    doc: str = ""
    captures_cache: dict = field(default_factory=dict)

    def captures(self, shape: Shape) -> dict:
        """Captured tensors for a shape (rebinding the spec's globals, so the mods see the same tensors)."""
        if self.make_captures is None:
            return {}
        if shape not in self.captures_cache:
            tensors = self.make_captures(shape)
            self.captures_cache[shape] = tensors
        tensors = self.captures_cache[shape]
        vars(self.module).update(tensors)
        return tensors


MODS = ("score_mod", "mask_mod")


def top_level_names(path: str | Path) -> set[str]:
    """The names a Python file defines, assigns or imports at its top level, read without running it; empty for a
    file that is missing or does not parse (loading it then says why)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def is_spec(path: str | Path) -> bool:
    """Whether a file is an attention spec rather than a KernelBench problem: it defines score_mod or mask_mod and
    no Model (a problem generated from a spec defines both: it is a problem)."""
    names = top_level_names(path)
    return "Model" not in names and any(mod in names for mod in MODS)


def load_spec(path: str | Path) -> AttentionSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    source = path.read_text()
    name = f"ks_attention_spec_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise SpecError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:
        raise SpecError(f"{path}: failed to load: {type(e).__name__}: {e}") from None
    score_mod, mask_mod = getattr(module, "score_mod", None), getattr(module, "mask_mod", None)
    if score_mod is None and mask_mod is None:
        raise SpecError(f"{path} defines neither score_mod nor mask_mod")
    shapes = _shapes(path, getattr(module, "SHAPES", None), "SHAPES")
    test_shapes = _shapes(path, getattr(module, "TEST_SHAPES", None), "TEST_SHAPES")
    return AttentionSpec(name=path.stem, path=str(path), source=source, score_mod=score_mod, mask_mod=mask_mod,
                         shapes=shapes, test_shapes=test_shapes, module=module,
                         make_captures=getattr(module, "make_captures", None),
                         doc=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else "")


def _shapes(path: Path, raw, what: str) -> list[Shape]:
    if raw is None:
        raise SpecError(f"{path} defines no {what} (a list of dicts: batch, heads, q_len, kv_len, head_dim, dtype)")
    shapes = []
    for item in raw:
        try:
            shape = Shape(**item)
        except TypeError as e:
            raise SpecError(f"{path}: bad entry in {what}: {e}") from None
        if shape.dtype not in DTYPES:
            raise SpecError(f"{path}: {what} dtype {shape.dtype!r} is not one of {', '.join(DTYPES)}")
        if shape.heads % shape.n_kv_heads:
            raise SpecError(f"{path}: {what}: heads={shape.heads} is not a multiple of kv_heads={shape.kv_heads}")
        shapes.append(shape)
    return shapes
