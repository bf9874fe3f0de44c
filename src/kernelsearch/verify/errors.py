"""How a failure becomes a verdict: the status it earns and the few lines that explain it."""
from __future__ import annotations

import traceback
from pathlib import Path

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


def is_out_of_memory(e: BaseException) -> bool:
    import torch
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e)[:300].lower()


def classify(e: BaseException, where: str, workdir: Path | None = None) -> tuple[str, str, bool]:
    """(status, message, context_broken) for an exception raised by the candidate's code at `where`."""
    text, kind = str(e), type(e).__name__
    broken = any(m in text for m in STICKY_CUDA_MARKERS)
    if is_out_of_memory(e):
        return "runtime_error", f"{where}: out of memory: {describe(e, workdir).splitlines()[0][:300]}", broken
    building = (kind in COMPILE_MARKERS or any(m in text[:200] for m in COMPILE_MARKERS[:2])
                or (where.startswith("importing") and kind != "RuntimeError"))
    return ("compile_error" if building else "runtime_error"), f"{where}: {describe(e, workdir)}", broken


def describe(e: BaseException, workdir: Path | None = None) -> str:
    """The exception in a few lines, with the candidate's own line where the traceback passes through it."""
    lines = str(e).strip().splitlines()
    if len(lines) > 25:
        lines = lines[:10] + ["..."] + lines[-12:]
    where = ""
    if workdir is not None:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith(str(workdir))]
        if frames:
            f = frames[-1]
            where = f" (at {Path(f.filename).name}:{f.lineno}: {(f.line or '').strip()})"
    return f"{type(e).__name__}: " + "\n".join(lines) + where


def problem_call(fn, what: str):
    """One of the problem's own functions (get_init_inputs, ...): its failure is the problem's, not the candidate's."""
    try:
        return fn()
    except Exception as e:
        raise Outcome("problem_error", f"{what} failed: {describe(e)}") from None
