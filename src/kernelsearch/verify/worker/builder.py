"""A build process: one CUDA C++ candidate's load_inline modules built on the CPU, into the directory it is started
in, before the candidate reaches a GPU worker (cuda_builds.py says why). It imports the candidate, as a worker
would, under the worker's run-time wall (audit.py) and inside the pool's sandbox with no GPU: its load_inline calls
build for real (load_inline's own ninja and nvcc) into builds/<key>/; a candidate that builds only in __init__ is
built too (ModelNew(*get_init_inputs()) on the CPU, where that works).

Protocol: one JSON line on stdin ({"candidate_source", "problem_source"}), one JSON object on KS_RESPONSE_FD:
{"builds": [{"key", "file", "seconds"}], "failed": null or {"status", "message"}}; `failed` only where a load_inline
call itself raised (the candidate does not build), since anything else a GPU may answer differently."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..containment.audit import install, worker_policy
from ..errors import classify
from ..harness.modules import import_source
from .cuda_builds import build_call, build_key, target_arch


def main() -> None:
    answer = os.fdopen(int(os.environ["KS_RESPONSE_FD"]), "w")
    os.dup2(2, 1)  # the candidate's prints go to the log
    request = json.loads(sys.stdin.readline())
    import torch.utils.cpp_extension as cpp_extension  # before the wall: importing torch reads files all over

    workdir = Path.cwd()
    install(worker_policy(workdir, "cpu"))
    real, builds, failed = cpp_extension.load_inline, [], []

    def load_inline(*args, **kwargs):
        call = build_call(real, args, kwargs)
        key = build_key(request["candidate_source"], call, target_arch())
        directory = workdir / "builds" / key
        directory.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        try:
            module = real(*args, **{**kwargs, "build_directory": str(directory), "verbose": False})
        except Exception as e:
            failed.append(e)
            raise
        builds.append({"key": key, "file": Path(module.__file__).name,
                       "seconds": round(time.perf_counter() - began, 1)})
        return module

    cpp_extension.load_inline = load_inline
    try:
        candidate = import_source(request["candidate_source"], "ks_candidate", workdir / "candidate.py")
        if not builds and hasattr(candidate, "ModelNew"):
            problem = import_source(request["problem_source"], "ks_problem", workdir / "problem.py")
            candidate.ModelNew(*problem.get_init_inputs())
    except Exception:  # only a failure inside load_inline says the candidate does not build
        pass
    outcome = None
    if failed:
        status, message, _ = classify(failed[0], "building the candidate's extension", workdir)
        outcome = {"status": status, "message": message}
    answer.write(json.dumps({"builds": builds, "failed": outcome}) + "\n")
    answer.flush()


if __name__ == "__main__":
    main()
