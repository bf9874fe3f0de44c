"""Suites of problems for `bench`: KernelBench (a checkout or its Hugging Face dataset), the attention examples,
or any directory of problem files."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .attention.spec import load_spec
from .problem import ProblemError

HF_DATASET = "ScalingIntelligence/KernelBench"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "attention"  # in a source checkout


@dataclass
class SuiteProblem:
    key: str  # unique within the suite, also the problem's run sub-directory: "L1-019_ReLU", "causal"
    name: str
    path: Path
    number: int | None = None  # KernelBench's problem id (the file's numeric prefix)
    level: int | None = None
    dtype: str | None = None  # the suite's own dtype for this problem (attention shapes carry one)
    variant_names: list[str] | None = None  # which size constants the verifier's second shape may change


def parse_selection(text: str | None) -> set[int] | None:
    """`1-20,37` -> {1, ..., 20, 37}."""
    if not text:
        return None
    chosen: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ProblemError(f"cannot read the problem selection {text!r}: use numbers and ranges like 1-20,37")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        chosen |= set(range(low, high + 1))
    return chosen


def load_suite(suite: str, *, level: int = 1, selection: str | None = None, kernelbench_dir: str | None = None,
               spec_dir: str | None = None, device: str = "cpu", work_dir: Path) -> list[SuiteProblem]:
    """The problems of a suite, filtered by `selection` (KernelBench ids, or positions for other suites)."""
    chosen = parse_selection(selection)
    if suite == "kernelbench":
        level_dir = _kernelbench_level(kernelbench_dir, level, work_dir)
        problems = _directory(level_dir, prefix=f"L{level}-", level=level)
    elif suite == "attention":
        problems = _attention(Path(spec_dir) if spec_dir else EXAMPLES, device, work_dir)
    else:
        problems = _directory(Path(suite))
    if chosen is not None:
        problems = [p for p in problems if p.number in chosen]
    if not problems:
        raise ProblemError(f"suite {suite!r} has no problems" + (f" matching {selection}" if selection else ""))
    return problems


def _directory(root: Path, prefix: str = "", level: int | None = None) -> list[SuiteProblem]:
    if not root.is_dir():
        raise ProblemError(f"suite directory not found: {root}")
    files = sorted(root.glob("*.py"), key=lambda p: (_number(p) is None, _number(p) or 0, p.name))
    files = [f for f in files if not f.name.startswith("_")]
    problems = []
    for position, path in enumerate(files, 1):
        number = _number(path) or position
        problems.append(SuiteProblem(key=f"{prefix}{number:03d}_{_name(path)}", name=path.stem, path=path,
                                     number=number, level=level))
    return problems


def _number(path: Path) -> int | None:
    match = re.match(r"(\d+)_", path.name)
    return int(match.group(1)) if match else None


def _name(path: Path) -> str:
    return re.sub(r"^\d+_", "", path.stem)


def _kernelbench_level(checkout: str | None, level: int, work_dir: Path) -> Path:
    """`KernelBench/level{N}/` of a checkout, or the Hugging Face split written out in the same layout."""
    if checkout:
        root = Path(checkout)
        for candidate in (root / "KernelBench" / f"level{level}", root / f"level{level}"):
            if candidate.is_dir():
                return candidate
        raise ProblemError(f"no KernelBench/level{level}/ under {root}")
    try:
        from datasets import load_dataset
    except ImportError:
        raise ProblemError("KernelBench needs --kernelbench-dir (a checkout of ScalingIntelligence/KernelBench), "
                           "or `pip install datasets` to read it from Hugging Face") from None
    try:
        rows = load_dataset(HF_DATASET, split=f"level_{level}")
    except Exception as e:  # offline, or the split does not exist
        raise ProblemError(f"cannot load {HF_DATASET} level_{level} from Hugging Face: "
                           f"{' '.join(str(e).split())[:200]}; give --kernelbench-dir") from None
    return write_kernelbench_rows(rows, work_dir / "kernelbench" / f"level{level}")


def write_kernelbench_rows(rows, out: Path) -> Path:
    """Dataset rows (problem_id, name, code) as `<id>_<Name>.py` files, KernelBench's own layout."""
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        name = re.sub(r"\.py$", "", str(row["name"]))
        name = re.sub(rf"^{row['problem_id']}_", "", name)
        (out / f"{int(row['problem_id'])}_{re.sub(r'[^A-Za-z0-9_]+', '_', name)}.py").write_text(row["code"])
    return out


def _attention(spec_dir: Path, device: str, work_dir: Path) -> list[SuiteProblem]:
    """Each spec's reference attention, at the shape a search uses (workflow.spec_problem), as a problem."""
    from .attention.workflow import SIZE_CONSTANTS, spec_problem  # torch stays out of a bench of other suites

    if not spec_dir.is_dir():
        raise ProblemError(f"attention spec directory not found: {spec_dir} (give --spec-dir)")
    out = work_dir / "attention"
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    for position, spec_path in enumerate(sorted(spec_dir.glob("*.py")), 1):
        spec = load_spec(spec_path)
        found = spec_problem(spec, device)
        path = out / f"{spec.name}.py"
        path.write_text(found.source)
        problems.append(SuiteProblem(key=spec.name, name=spec.name, path=path, number=position,
                                     dtype=found.shape.dtype,
                                     variant_names=sorted(SIZE_CONSTANTS)))
    return problems
