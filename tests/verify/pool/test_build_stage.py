"""CUDA C++ builds off the GPU worker (verify/build_stage.py, builder.py, cuda_builds.py): a builder process builds a
candidate's load_inline modules into the pool's cache, once per candidate, and a worker's load_inline then loads
them without building. Shown here with a C++-only extension, which this CPU-only torch can build and run."""
from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.utils.cpp_extension as cpp_extension

from ...conftest import CANDIDATES, PROBLEMS
from kernelsearch.verify import PoolConfig, VerifyRequest
from kernelsearch.verify.containment.sandbox import bubblewrap_problem
from kernelsearch.verify.pool import PoolStopped
from kernelsearch.verify.pool.build_stage import BuildStage
from kernelsearch.verify.worker.cuda_builds import MANIFEST, Prebuilt

CPP_CANDIDATE = '''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

source = """
#include <torch/extension.h>
torch::Tensor scaled_add(torch::Tensor a, torch::Tensor b) { return a + SCALE * b; }
"""
module = load_inline(name="scaled_add_ks", cpp_sources=source, functions=["scaled_add"], verbose=False)


class ModelNew(nn.Module):
    def forward(self, a, b):
        return module.scaled_add(a, b)
'''


def stage(tmp_path: Path, slots: int = 2) -> BuildStage:
    """A build stage with a stand-in pool: the GPU's architecture as a started worker would have said it."""
    pool = SimpleNamespace(root=tmp_path, config=PoolConfig(device="cpu"), info={}, device="cpu",
                           sandbox_problem=bubblewrap_problem(), arch=lambda timeout: "9.0")
    return BuildStage(pool, slots)


def request(scale: str) -> VerifyRequest:
    return VerifyRequest(problem_source=(PROBLEMS / "elementwise_add_relu.py").read_text(),
                         candidate_source=CPP_CANDIDATE.replace("SCALE", scale))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One candidate built by a builder process, and the stage that built it."""
    builds = stage(tmp_path_factory.mktemp("pool"))
    runs = []
    real = builds.run_builder
    builds.run_builder = lambda *args: runs.append(1) or real(*args)
    answer = builds.built(request("2"))
    yield builds, answer, runs
    builds.close()


@pytest.mark.slow
def test_a_candidate_is_built_by_a_builder_into_the_cache(built):
    builds, answer, runs = built
    assert answer["failed"] is None, answer
    assert len(answer["builds"]) == 1 and answer["builds"][0]["file"].endswith(".so")
    kept = builds.cache / answer["builds"][0]["key"]
    assert (kept / MANIFEST).is_file() and (kept / answer["builds"][0]["file"]).is_file()
    assert runs == [1]
    assert not list(builds.pool.root.glob("build-*"))  # the builder's own directory is gone


@pytest.mark.slow
def test_the_same_candidate_builds_once_per_pool(built):
    builds, answer, runs = built
    assert builds.built(request("2")) is answer
    assert runs == [1]


@pytest.mark.slow
def test_a_worker_loads_the_built_module_without_building(built, monkeypatch):
    builds, _, _ = built
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")  # as the GPU worker sets it from its device
    prebuilt = Prebuilt(str(builds.cache))
    prebuilt.candidate = request("2").candidate_source
    real = cpp_extension.load_inline

    def never_builds(*args, **kwargs):
        raise AssertionError("load_inline built in the worker")

    monkeypatch.setattr(cpp_extension, "load_inline",
                        lambda *args, **kwargs: prebuilt.load(real, args, kwargs) or never_builds())
    namespace: dict = {}
    exec(compile(prebuilt.candidate, "candidate.py", "exec"), namespace)
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    assert torch.allclose(namespace["ModelNew"]()(a, b), a + 2 * b)
    assert prebuilt.loaded == 1
    prebuilt.candidate = request("3").candidate_source  # another candidate: none of this one's builds
    assert prebuilt.load(real, ("scaled_add_ks", namespace["source"]), {"functions": ["scaled_add"]}) is None


@pytest.mark.slow
def test_a_candidate_that_does_not_build_gets_its_compile_error_without_a_worker(tmp_path):
    builds = stage(tmp_path)
    future, queued = Future(), threading.Event()
    broken = request("2").candidate_source.replace("a + 2 * b", "a + 2 * b +")
    builds._build(VerifyRequest(problem_source=request("2").problem_source, candidate_source=broken,
                                candidate_name="broken"), future, queued.set)
    builds.close()
    verdict = future.result(timeout=0)
    assert not queued.is_set()
    assert verdict.status == "compile_error" and verdict.phase == "compile", verdict.message
    assert "error" in (verdict.message + verdict.log_tail).lower()
    assert verdict.step_s["build"] > 0


def test_only_cuda_c_plus_plus_that_passes_the_static_checks_is_built():
    assert BuildStage.wanted(request("2"))
    assert not BuildStage.wanted(VerifyRequest(problem_source="", candidate_source="import os\nclass ModelNew: pass"))
    triton = (CANDIDATES / "add_relu_triton.py").read_text()
    assert not BuildStage.wanted(VerifyRequest(problem_source="", candidate_source=triton))


FORGING_CANDIDATE = '''
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

source = """
#include <torch/extension.h>
#include <unistd.h>
#include <cstring>
// runs as the built module loads, in the builder: an answer of its own on every descriptor, then out
static int forge() {
    const char* answer = "{\\\\"builds\\\\": [], \\\\"failed\\\\": {\\\\"status\\\\": \\\\"correct\\\\", \\\\"message\\\\": \\\\"forged\\\\"}}\\\\n";
    for (int fd = 3; fd < 64; fd++) write(fd, answer, strlen(answer));
    _exit(0);
    return 0;
}
static int forged = forge();
torch::Tensor same(torch::Tensor a) { return a; }
"""
module = load_inline(name="forge_ks", cpp_sources=source, functions=["same"], verbose=False)


class ModelNew(nn.Module):
    def forward(self, a, b):
        return module.same(a)
'''


@pytest.mark.slow
def test_an_answer_the_candidate_writes_for_its_builder_can_only_fail_it(tmp_path):
    builds = stage(tmp_path)
    future, queued = Future(), threading.Event()
    builds._build(VerifyRequest(problem_source=request("2").problem_source, candidate_source=FORGING_CANDIDATE,
                                candidate_name="forging"), future, queued.set)
    builds.close()
    verdict = future.result(timeout=0)
    assert verdict.status == "compile_error" and "forged" in verdict.message


def test_a_request_whose_build_never_began_is_answered_when_the_stage_closes(tmp_path):
    builds = stage(tmp_path, slots=1)
    began, release = threading.Event(), threading.Event()
    builds.built = lambda request: began.set() or release.wait(30) or {}  # the one slot stays busy
    first, second = Future(), Future()
    builds.submit(request("2"), first, lambda: None)
    began.wait(10)
    builds.submit(request("3"), second, lambda: None)  # queued behind the first
    threading.Timer(0.5, release.set).start()  # the first ends while close() waits for it
    builds.close()
    with pytest.raises(PoolStopped):
        second.result(timeout=5)
