"""`kernelsearch attention`: generate the kernel, write it out, verify it per shape, optionally tune and bench."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..problem import load_problem
from ..verify import PoolConfig, WorkerPool, make_request, resolve_device
from ..verify.verdict import Status
from .captures import find_tensors
from .generate import GeneratedKernel, generate, problem_source
from .spec import AttentionSpec, Shape, SpecError
from .trace import TraceError
from .tune import tune_configs
from .versus_flex import bench_spec

# The verifier's second input shape may change only these problem constants: the spec's own constants
# (a window, a grid, a head count that sizes a captured tensor) are part of the kernel.
SIZE_CONSTANTS = {"batch_size", "q_len", "kv_len", "head_dim"}
CPU_TRIALS = 3  # the interpreter runs a 4096-token 2D-neighborhood case in ~13 s per call


@dataclass
class AttentionResult:
    kernel_path: Path
    verdicts: list = field(default_factory=list)  # (shape, Verdict)
    tuning: dict = field(default_factory=dict)
    bench: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.status == Status.CORRECT for _, v in self.verdicts)


def run_attention(spec: AttentionSpec, out_dir: Path, device: str = "auto", tune: bool = False,
                  bench: bool = False, trials: int | None = None, shape_indices: list[int] | None = None,
                  flex_autotune: bool = False, progress=print) -> AttentionResult:
    device = resolve_device(device)
    if device != "cuda" and (tune or bench):  # before minutes of verifying in the interpreter
        raise ValueError("--tune needs a GPU (block sizes tuned in the interpreter would mean nothing)" if tune
                         else "--bench needs a GPU (the interpreter's speed means nothing)")
    if shape_indices:
        shapes = spec.shapes if device == "cuda" else spec.test_shapes
        if any(not 0 <= i < len(shapes) for i in shape_indices):
            raise ValueError(f"--shape takes indices 0..{len(shapes) - 1} of the spec's "
                             f"{'SHAPES' if device == 'cuda' else 'TEST_SHAPES'}")
        if device == "cuda":
            spec.shapes = [shapes[i] for i in shape_indices]
        else:
            spec.test_shapes = [shapes[i] for i in shape_indices]
    out_dir.mkdir(parents=True, exist_ok=True)
    configs, backward_configs = {}, {}
    if tune:
        configs, backward_configs = tune_configs(spec, generate(spec).source, out_dir, progress)
    kernel = generate(spec, configs, backward_configs)
    kernel_path = out_dir / f"{spec.name}_attention.py"
    kernel_path.write_text(kernel.source)
    progress(f"wrote {kernel_path}")
    result = AttentionResult(kernel_path=kernel_path, tuning={"forward": configs, "backward": backward_configs})

    shapes = spec.shapes if device == "cuda" else spec.test_shapes
    with WorkerPool(PoolConfig(device=device)) as pool:
        for i, shape in enumerate(shapes):
            verdict = pool.verify(shape_request(spec, kernel, kernel_path.stem, i, shape, out_dir, device, trials))
            result.verdicts.append((shape, verdict))
            progress(f"{verdict.status:9s} {shape.label()}: {verdict.message}")
    if bench:
        result.bench = bench_spec(spec, kernel_path, progress, autotune_flex=flex_autotune)
    summary = {
        "spec": spec.path, "kernel": str(kernel_path), "tuning": result.tuning, "bench": result.bench,
        "verdicts": [{"shape": shape.label(), **verdict.to_json()} for shape, verdict in result.verdicts],
    }
    (out_dir / f"{spec.name}_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return result


@dataclass
class SpecProblem:
    """A spec as a search's problem (`solve SPEC`, the attention suite of `bench`): the shape searched, the problem
    file's text (the PyTorch reference with the spec's mods at that shape) and the generated kernel, or why the
    generator could not translate the mods."""
    shape: Shape
    source: str
    kernel: GeneratedKernel | None
    untranslated: str = ""


def spec_problem(spec: AttentionSpec, device: str) -> SpecProblem:
    """At the spec's first shape: SHAPES on a GPU, TEST_SHAPES on the CPU (the interpreter). A mod the generator
    cannot translate still makes a problem: its model gets every tensor the mods read."""
    shapes, listed = (spec.shapes, "SHAPES") if device == "cuda" else (spec.test_shapes, "TEST_SHAPES")
    if not shapes:
        raise SpecError(f"{spec.path}: {listed} is empty: a search needs a shape to search at")
    try:
        kernel, untranslated = generate(spec), ""
        names = [c.name for c in kernel.captures]
    except TraceError as e:
        kernel, untranslated = None, str(e)
        names = [found.name for found in find_tensors(spec.score_mod, spec.mask_mod)]
    return SpecProblem(shapes[0], problem_source(spec, shapes[0], names), kernel, untranslated)


def shape_request(spec: AttentionSpec, kernel, kernel_name: str, index: int, shape: Shape, out_dir: Path,
                  device: str, trials: int | None = None):
    """The verifier's request for a generated kernel at one of the spec's shapes; the problem (the PyTorch
    reference at that shape) is written to out_dir/problems/."""
    problem_path = out_dir / "problems" / f"{spec.name}_{index}.py"
    problem_path.parent.mkdir(parents=True, exist_ok=True)
    problem_path.write_text(problem_source(spec, shape, [c.name for c in kernel.captures]))
    return make_request(load_problem(problem_path), kernel.source, kernel_name, variant_names=SIZE_CONSTANTS,
                        dtype=shape.dtype, trials=trials or (5 if device == "cuda" else CPU_TRIALS),
                        timing=False)  # --bench times against FlexAttention and SDPA instead
