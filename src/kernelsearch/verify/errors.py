"""How a failure becomes a verdict: the status it earns and the few lines that explain it; and what a check found
(Found), which the job alone writes into the verdict."""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .verdict import Status

# Exception names that mean the candidate did not build. InterpreterError: Triton's interpreter met an error
# while tracing the kernel body, which is a CompilationError when the same kernel is compiled for a GPU.
COMPILE_MARKERS = ("CompilationError", "Error building extension", "SyntaxError", "ImportError",
                   "ModuleNotFoundError", "IndentationError", "NameError", "InterpreterError")
# Text of errors after which the CUDA context is unusable: only a new process recovers.
STICKY_CUDA_MARKERS = ("CUDA error", "illegal memory access", "misaligned address")


class Outcome(Exception):
    """Ends a job early with a verdict status."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Found:
    """What one check found: its entry in the verdict's `checks` (under `check`; None: nothing to say there), the
    warnings it raises, and the outcome that ends the job where it failed. Checks return these; the job alone
    writes them (Job.record)."""
    check: str
    entry: dict | None
    warnings: list[str] = field(default_factory=list)
    outcome: Outcome | None = None


def is_out_of_memory(e: BaseException) -> bool:
    import torch  # here, not above: the pool imports this module and never loads torch
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e)[:300].lower()


def classify(e: BaseException, where: str, workdir: Path | None = None) -> tuple[str, str, bool]:
    """(status, message, context_broken) for an exception raised by the candidate's code at `where`."""
    text, kind = str(e), type(e).__name__
    broken = any(m in text for m in STICKY_CUDA_MARKERS)
    if is_out_of_memory(e):
        return Status.RUNTIME_ERROR, f"{where}: out of memory: {describe(e, workdir).splitlines()[0][:300]}", broken
    building = (kind in COMPILE_MARKERS or any(m in text[:200] for m in COMPILE_MARKERS[:2])
                or (where.startswith("importing") and kind != "RuntimeError"))
    return (Status.COMPILE_ERROR if building else Status.RUNTIME_ERROR), f"{where}: {describe(e, workdir)}", broken


def describe(e: BaseException, workdir: Path | None = None) -> str:
    """The exception in a few lines, with the candidate's own line where the traceback passes through it."""
    lines = str(e).strip().splitlines()
    if len(lines) > 25:
        lines = lines[:10] + ["..."] + lines[-12:]
    where = ""
    if workdir is not None:
        frames = _candidate_frames(e, workdir)
        if frames:
            where = f" (at {_frame_text(frames[-1])}" + (f", called at {_frame_text(frames[0])})"
                                                          if frames[0] is not frames[-1] else ")")
    return f"{type(e).__name__}: " + "\n".join(lines) + where


def _candidate_frames(e: BaseException, workdir: Path) -> list:
    """The candidate's frames along the exception and its causes, outermost first: the last is the innermost.
    Triton's interpreter raises InterpreterError at the launch and keeps the kernel's own failing line in the cause
    (an attempt on L1 95 was told only its launch line for an atomic the interpreter refused)."""
    chain, current = [], e
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return [f for x in chain for f in traceback.extract_tb(x.__traceback__) if f.filename.startswith(str(workdir))]


def _frame_text(frame) -> str:
    return f"{Path(frame.filename).name}:{frame.lineno}: {(frame.line or '').strip()}"


def problem_call(fn, what: str):
    """One of the problem's own functions (get_init_inputs, ...): its failure is the problem's, not the candidate's."""
    try:
        return fn()
    except Exception as e:
        raise Outcome(Status.PROBLEM_ERROR, f"{what} failed: {describe(e)}") from None
