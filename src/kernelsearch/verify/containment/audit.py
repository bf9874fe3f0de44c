"""The run-time wall of a worker process: a PEP 578 audit hook, installed once before any candidate is imported
and never removed (CPython has no way to remove one). What it refuses is in audit_rules and audit_processes.

Why: the static checks judge a candidate's text, and text can reach os, gc or subprocess through other modules'
attributes (torch.serialization.os.system, functools.reduce(getattr, ...)); the hook judges what the process
actually does. A refusal raises PermissionError in whoever asked and is recorded where the candidate cannot reach
it (the hook's sealed globals), so a candidate that swallows the exception is still rejected.

Installed means armed: there is no flag to turn off, nothing to disarm. The verifier's own work after a
candidate (compare, poison, verdict JSON on an inherited pipe, the job directory's files) obeys the policy.

Not a wall against native code (load_inline C++, a compiler the toolchain runs): audit hooks see Python only. The
OS sandbox (sandbox.py) is that wall."""
from __future__ import annotations

import builtins
import glob
import os
import sys
from dataclasses import dataclass
from types import FunctionType

from . import audit_processes, audit_rules, audit_values

# Readable besides Python's own prefixes, the import path and the worker's directory. /tmp is not among them.
SYSTEM_READ_ROOTS = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/sys")
SYSTEM_READ_FILES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/etc/ld.so.cache", "/etc/localtime",
                     "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/filesystems", "/proc/mounts")
# Where toolchain programs may live (then also their names and arguments must pass: audit_processes).
SYSTEM_EXEC_ROOTS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/opt")
# Trusted functions that read frames and keep them to themselves: their result is text (a caller's file and
# line, a module name, a formatted traceback). Looked up at install; names missing in this Python are skipped.
NON_LEAKING_FUNCTIONS = (
    ("logging", "Logger.findCaller"), ("typing", "_caller"), ("collections", "namedtuple"),
    ("typing_extensions", "_caller"), ("typing_extensions", "_has_generic_or_protocol_as_origin"),
    ("enum", "EnumType._create_"), ("enum", "EnumMeta._create_"), ("warnings", "warn"),
    ("traceback", "extract_tb"), ("traceback", "extract_stack"), ("traceback", "format_exc"),
    ("traceback", "format_exception"), ("traceback", "format_exception_only"), ("traceback", "format_tb"),
    ("traceback", "format_stack"), ("traceback", "print_exc"), ("traceback", "print_exception"),
    ("traceback", "print_tb"), ("traceback", "print_stack"), ("traceback", "TracebackException.__init__"),
    ("traceback", "StackSummary.extract"), ("traceback", "StackSummary._extract_from_extended_frame_gen"),
    ("triton.compiler.compiler", "filter_traceback"),
    # torch.library.custom_op (custom_ops.py allows it) notes where an operator and its library were defined
    ("torch._library.utils", "get_source"), ("torch.library", "Library.__init__"),
    ("torch.library", "Library._register_fake"),
)


@dataclass(frozen=True)
class Policy:
    worker_dir: str  # writes only below it (and /dev/null): jobs, TMPDIR, HOME, Triton and extension caches
    read_roots: tuple[str, ...]  # directories readable (and listable) below
    read_files: tuple[str, ...]  # single files readable
    exec_roots: tuple[str, ...]  # where the toolchain's programs may live
    log_reads_outside: bool = False  # a read outside the roots is noted, not refused (CUDA: see worker_policy)
    ctypes_anywhere: bool = True  # refuse ctypes even when no candidate code is on the stack
    report_fd: int | None = None  # refusals also go out on this descriptor as {"event": "refused", ...} lines


def worker_policy(worker_dir, device: str, report_fd: int | None = None, more_reads: tuple[str, ...] = ()) -> Policy:
    """The policy of a verifier worker. On a CUDA worker reads outside the roots are noted, not refused (nobody
    has yet listed every file Triton 3.6 and torch's CUDA paths open from Python; writes and processes stay
    refused), and ctypes is refused only from the candidate's code (Triton's driver and torch.cuda call libcuda
    and NVML through ctypes; a CUDA candidate is native code anyway). `more_reads`: directories also readable
    (the pool's build cache)."""
    worker = os.path.realpath(worker_dir)
    python = [sys.prefix, sys.base_prefix, sys.exec_prefix]
    imports = [os.path.abspath(p or os.getcwd()) for p in sys.path]
    cuda = _cuda_dirs() + (_libcuda_dirs() if device == "cuda" else [])
    own_proc = [f"/proc/{os.getpid()}", "/proc/self", "/proc/thread-self"]
    return Policy(
        worker_dir=worker,
        read_roots=_real_dirs([worker, *python, *imports, *cuda, *SYSTEM_READ_ROOTS, *own_proc, *more_reads]),
        read_files=tuple(sorted({os.path.realpath(f) for f in SYSTEM_READ_FILES})),
        exec_roots=_real_dirs([*SYSTEM_EXEC_ROOTS, *python, *cuda]),
        log_reads_outside=device == "cuda", ctypes_anywhere=device != "cuda", report_fd=report_fd)


def install(policy: Policy):
    """Install the hook (once per process; a second call is refused by the first hook). Returns the function the
    worker calls after each candidate step: refusals() -> list of one-line descriptions, all of this process."""
    _prepare(policy)
    namespace = _sealed(policy)
    _guard_fork_exec()
    sys.addaudithook(namespace["hook"])
    return refusals


def _reader(event: str, audit=sys.audit):
    """The records live in the hook's sealed globals; reading them goes through an audit event of our own, so no
    object here leads to them (a candidate that finds this function can only read)."""
    def read() -> list[str]:
        found = []
        audit(event, found)
        return found

    return read


refusals = _reader("kernelsearch.refusals")  # what the hook refused, in this process, in order
notes = _reader("kernelsearch.notes")  # reads outside the roots that a log-only policy let through


# ---- installing ------------------------------------------------------------------------------------------------
def _prepare(policy: Policy) -> None:
    """What the toolchain would otherwise do only later, under the hook, that the policy refuses."""
    import _posixsubprocess  # noqa: F401  (loaded now: a fresh copy later is refused)
    import ctypes  # noqa: F401  (its import dlopens the interpreter itself)
    import subprocess  # noqa: F401

    sys.dont_write_bytecode = True  # __pycache__ beside site-packages is outside the worker's directory
    os.environ["TORCH_NO_COMPILER_WRAPPER"] = "1"  # no ccache: it runs what a config file in HOME says
    # Inductor's compile workers are python processes fed pickles over a pipe: code outside the hook. One thread
    # compiles the torch.compile baseline in-process instead (slower the first time per problem and worker).
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:
        inductor.compile_threads = 1
    if not policy.ctypes_anywhere:  # a CUDA worker: Triton finds libcuda through ctypes and ldconfig on first use
        _prepare_compile_baseline()
        try:
            from triton.runtime import driver
            driver.active.get_current_device()
            driver.active.utils  # noqa: B018  (builds and loads its C helpers)
        except Exception:
            pass


def _prepare_compile_baseline() -> None:
    """What the torch.compile baseline does once, on its first compile, that the hook refuses; each seen on the H100
    (2026-12-07), where it rejected timed verifications: filelock adds an audit hook of its own on Python 3.12+;
    Inductor points Triton at torch's ptxas (os.putenv of TRITON_PTXAS_PATH); and it asks what the GPU is of
    nvidia-smi (L3 26_ShuffleNet), in functions that remember the answer (functools caches)."""
    try:
        import filelock
        filelock.FileLock  # noqa: B018  (its lazily loaded parts, the hook's module among them, load now)
        from torch._inductor import comm_analysis
        from torch._inductor.runtime.compile_tasks import _set_triton_ptxas_path
        _set_triton_ptxas_path()
        for cached in ("get_gpu_type", "_has_nvlink"):
            if hasattr(comm_analysis, cached):
                getattr(comm_analysis, cached)()
    except Exception:  # a torch without these parts does not do what they do
        pass


def _sealed(policy: Policy) -> dict:
    """One private namespace for the rules (audit_values, audit_processes, audit_rules), with a private copy of the
    builtins, in which their functions are rebuilt. Nothing outside refers to it but the hook, which CPython holds
    and never returns."""
    modules = (audit_values, audit_processes, audit_rules)
    namespace: dict = {}
    for module in modules:
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            if name in namespace and namespace[name] is not value:
                raise RuntimeError(f"two audit modules define {name} differently")
            namespace[name] = value
    worker = policy.worker_dir.rstrip("/")
    namespace.update(
        __builtins__=dict(vars(builtins)), WORKER_DIR=worker, JOB_PREFIX=worker + "/job_",
        READ_ROOTS=tuple(policy.read_roots), READ_FILES=frozenset(policy.read_files),
        EXEC_ROOTS=tuple(policy.exec_roots), LOG_READS=policy.log_reads_outside,
        CTYPES_ANYWHERE=policy.ctypes_anywhere, REPORT_FD=-1 if policy.report_fd is None else policy.report_fd,
        OWN_PID=os.getpid(), ENV_AT_INSTALL={k: v for k, v in os.environ.items()
                                             if audit_processes.GUARDED_ENV.fullmatch(k)},
        NON_LEAKING=_non_leaking(), REFUSED=[], NOTED=[], INSIDE=set())
    names = {m.__name__ for m in modules}
    for name, value in list(namespace.items()):
        if type(value) is FunctionType and value.__module__ in names:
            namespace[name] = FunctionType(value.__code__, namespace, value.__name__, value.__defaults__)
    return namespace


def _guard_fork_exec() -> None:
    """_posixsubprocess.fork_exec starts a process without an audit event: every reference to it is replaced by
    a stand-in that raises one first. The real function stays only in a generator's frame (reading gi_frame
    from the candidate's code is refused); the stand-in and the generator have no globals at all."""
    import _posixsubprocess
    import gc
    import threading

    bare = {"__builtins__": {}}
    calls = FunctionType(audit_rules.fork_exec_calls.__code__, bare)(_posixsubprocess.fork_exec, sys.audit,
                                                                      BaseException)
    next(calls)
    stand_in = FunctionType(audit_rules.fork_exec_stand_in.__code__, bare)(calls, threading.Lock())
    real = _posixsubprocess.fork_exec
    for holder in gc.get_referrers(real):  # module globals: _posixsubprocess, subprocess (_fork_exec), ...
        if type(holder) is dict:
            for key in [k for k, v in holder.items() if v is real]:
                holder[key] = stand_in


def _non_leaking() -> dict:
    import importlib

    found = {}
    for module_name, qualname in NON_LEAKING_FUNCTIONS:
        try:
            target = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError):
            continue
        target = getattr(target, "__func__", target)
        if type(target) is FunctionType:
            found[target.__code__] = target.__globals__
    return found


def _cuda_dirs() -> list[str]:
    dirs = glob.glob("/usr/local/cuda*") + [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", "")]
    try:
        from torch.utils.cpp_extension import CUDA_HOME
        dirs.append(CUDA_HOME or "")
    except Exception:
        pass
    return [d for d in dirs if d]


def _libcuda_dirs() -> list[str]:
    """Where Triton links its launchers against libcuda (-L): ldconfig's answer, /run/nvidia/... on some hosts."""
    try:
        from triton.backends.nvidia.driver import libcuda_dirs
        return list(libcuda_dirs())
    except Exception:
        return []


def _real_dirs(paths) -> tuple[str, ...]:
    """Existing directories by their real names, none inside another (/ is never one)."""
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)} - {"/"})
    return tuple(p for p in real if not any(p.startswith(q + "/") for q in real))
