"""Compile check for load_inline candidates on a machine with nvcc but no GPU (or a CPU-only torch)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import Outcome
from ..verdict import Status

# Hopper is what we run on; sm_90 keeps the check honest about features such as wgmma-free PTX.
DEFAULT_ARCH = ["-gencode=arch=compute_90,code=sm_90"]


class RecordedBuild(dict):
    """The arguments of one load_inline call, recorded instead of building."""


def recording_load_inline(builds: list[RecordedBuild]):
    """A stand-in for load_inline that records its arguments; the module it returns cannot run anything."""

    def load_inline(name, cpp_sources, cuda_sources=None, functions=None, extra_cflags=None,
                    extra_cuda_cflags=None, extra_include_paths=None, **_ignored):
        builds.append(RecordedBuild(name=name, cpp_sources=_as_list(cpp_sources), cuda_sources=_as_list(cuda_sources),
                                    functions=functions, extra_cflags=list(extra_cflags or []),
                                    extra_cuda_cflags=list(extra_cuda_cflags or []),
                                    extra_include_paths=list(extra_include_paths or [])))
        return _NeedsGPU(name)

    return load_inline


class _NeedsGPU:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        def call(*args, **kwargs):
            raise RuntimeError(f"{self._name}.{attr}: a GPU is needed to run this CUDA extension")
        return call


def _as_list(sources) -> list[str]:
    if sources is None:
        return []
    return [sources] if isinstance(sources, str) else list(sources)


def compile_check(builds: list[RecordedBuild], build_dir: Path, timeout_s: float) -> tuple[bool, str]:
    """Compile each recorded build's sources as load_inline would (C++ with g++, CUDA with nvcc), without
    linking. Returns (ok, message): on failure the message holds the first compiler errors."""
    nvcc = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
                                    if os.environ.get("CUDA_HOME") else None)
    if nvcc is None or not os.path.exists(nvcc):
        return False, "nvcc not found: cannot compile-check a CUDA candidate on this machine"
    jobs = []
    for build in builds:
        directory = build_dir / build["name"]
        directory.mkdir(parents=True, exist_ok=True)
        includes = [f"-I{p}" for p in _torch_includes() + build["extra_include_paths"]]
        defines = [f"-DTORCH_EXTENSION_NAME={build['name']}"]
        cpp = directory / "main.cpp"
        cpp.write_text("\n".join(["#include <torch/extension.h>", *build["cpp_sources"], _module_def(build)]))
        jobs.append(["g++", "-std=c++17", "-fsyntax-only", *defines, *includes, *build["extra_cflags"], str(cpp)])
        if build["cuda_sources"]:
            cu = directory / "cuda.cu"
            cu.write_text("\n".join(["#include <torch/types.h>", "#include <cuda.h>", "#include <cuda_runtime.h>",
                                     *build["cuda_sources"]]))
            # --ptx runs the full C++/CUDA front end on host and device code but skips the host compiler and
            # ptxas: 50 s instead of ~100 s for a torch/extension.h file on 2 cores.
            jobs.append([nvcc, "-std=c++17", "--ptx", *DEFAULT_ARCH, "--expt-relaxed-constexpr", *defines, *includes,
                         *build["extra_cuda_cflags"], str(cu), "-o", str(directory / "cuda.ptx")])
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda cmd: _run(cmd, timeout_s), jobs))
    errors = [message for ok, message in results if not ok]
    if errors:
        return False, "\n".join(errors)
    return True, f"compiled {len(jobs)} translation unit(s) for sm_90 (front end and PTX, not linked)"


def _run(cmd: list[str], timeout_s: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"{Path(cmd[0]).name} ran past {timeout_s:.0f}s"
    if done.returncode == 0:
        return True, ""
    return False, error_excerpt(done.stdout + done.stderr)


def error_excerpt(log: str, limit: int = 12) -> str:
    """The lines of a compiler log that say what is wrong, not the include chain around them."""
    lines = [line for line in log.splitlines() if "error" in line.lower() or line.lstrip().startswith("^")]
    return "\n".join((lines or log.splitlines()[-limit:])[:limit])


def _module_def(build: RecordedBuild) -> str:
    functions = build["functions"] or []
    if isinstance(functions, str):
        functions = [functions]
    names = list(functions.keys()) if isinstance(functions, dict) else list(functions)
    body = "".join(f'm.def("{n}", torch::wrap_pybind_function({n}), "{n}");\n' for n in names)
    return f"PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {{\n{body}}}\n"


def _torch_includes() -> list[str]:
    from torch.utils.cpp_extension import include_paths
    return include_paths() + [sysconfig.get_paths()["include"]]


def compile_only(job, init_inputs) -> Outcome:
    """A CUDA candidate on a machine without a GPU: record its load_inline calls and compile them. The outcome the
    job ends with: `compiled` (it builds; nothing ran), `compile_error` or `rejected`."""
    import torch.utils.cpp_extension as cpp_extension

    job.send_phase("compile")
    builds: list = []
    real = cpp_extension.load_inline
    cpp_extension.load_inline = recording_load_inline(builds)
    try:
        module = job.import_file(job.req.candidate_source, "candidate")
        if not builds:
            module.ModelNew(*init_inputs)  # some candidates build in __init__
    except Exception as e:
        if not builds:
            return job.calls.fail(e, "importing the candidate")
    finally:
        cpp_extension.load_inline = real
    if not builds:
        return Outcome(Status.REJECTED, "a CUDA candidate that never calls load_inline")
    ok, message = compile_check(builds, job.workdir / "build", timeout_s=float(os.environ.get(
        "KS_COMPILE_TIMEOUT", "300")))
    if not ok:
        return Outcome(Status.COMPILE_ERROR, message)
    return Outcome(Status.COMPILED, f"{message}; a GPU is needed to run it, so it is not verified")
