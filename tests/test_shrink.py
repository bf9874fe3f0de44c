"""`--shrink auto`: problems too large for the CPU interpreter are refused before any model call, or scaled down
until they fit, keeping odd sizes odd and the model's divisibility rules, and still verify."""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from .conftest import CANDIDATES, DEVICE, ON_GPU, PROBLEMS
from .openai_server import ScriptedServer, fenced
from kernelsearch.cli import main
from kernelsearch.problem import ProblemError, load_problem
from kernelsearch.search.run_dir import RunDir
from kernelsearch.shrink import TARGET_FRACTION, fit_interpreter, fits, half, measure, shrink, shrunk, too_large
from kernelsearch.verify import make_request

KERNELBENCH = Path(os.environ.get("KS_KERNELBENCH_DIR", "/work/shared/kernelbench"))
HUGE = PROBLEMS / "huge_relu.py"
cpu_only = pytest.mark.skipif(ON_GPU, reason="the interpreter's limit applies on the CPU only")


def _sweep():
    spec = importlib.util.spec_from_file_location("sweep", Path(__file__).parents[1] / "benchmarks" /
                                                  "kernelbench_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("value, multiple, expected", [
    (4096, 1, 2048), (393216, 1, 196608),
    (8205, 1, 4103), (33, 1, 17), (5, 1, 3),  # odd stays odd
    (3, 1, 3), (2, 1, 2),  # never down to the broadcast size 1
    (64, 8, 32), (24, 8, 8), (8, 8, 8), (40, 8, 24),  # multiples of 8: 5 units -> 3 (odd stays odd)
    (30, 4, 15),  # 30 is no multiple of 4: the rule is not enforced, so plain halving
])
def test_half_keeps_parity_multiples_and_a_floor(value, multiple, expected):
    assert half(value, multiple) == expected


KERNELBENCH_PROBLEMS = ["level1/19_ReLU.py", "level1/23_Softmax.py", "level1/8_Matmul_with_irregular_shapes_.py",
                        "level1/54_conv_standard_3D__square_input__square_kernel.py", "level1/42_Max_Pooling_2D.py",
                        "level2/19_ConvTranspose2d_GELU_GroupNorm.py",
                        "level2/22_Matmul_Scale_ResidualAdd_Clamp_LogSumExp_Mish.py"]


@pytest.mark.skipif(not KERNELBENCH.is_dir(), reason=f"no KernelBench checkout at {KERNELBENCH} (KS_KERNELBENCH_DIR)")
@pytest.mark.parametrize("name", KERNELBENCH_PROBLEMS)
def test_kernelbench_problems_shrink_to_fit_and_still_verify(name, pool):
    problem = load_problem(KERNELBENCH / name)
    assert too_large(problem) is not None  # at its own size the interpreter refuses it
    changes = shrink(problem)
    small = shrunk(problem, changes, {})
    assert fits(measure(small.source), TARGET_FRACTION) and too_large(small) is None
    for constant, (old, new) in changes.items():
        olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
        for o, n in zip(olds, news):
            assert 2 <= n <= o, (constant, old, new)
            assert n % 2 == 1 or o % 2 == 0, (constant, old, new)  # odd stays odd
    if "num_groups" in small.constants:  # GroupNorm's channels stay a multiple of its groups
        assert small.constants["out_channels"] % small.constants["num_groups"] == 0
    candidate = _sweep().passthrough_candidate(small.source)
    verdict = pool.verify(make_request(small, candidate, "passthrough", timing=False))
    assert verdict.status == "correct", verdict.message
    assert set(verdict.overrides) == set(changes)  # verified at the shrunk sizes, and the verdict says which


def test_odd_sizes_stay_odd(tmp_path):
    if not (KERNELBENCH / KERNELBENCH_PROBLEMS[2]).is_file():
        pytest.skip("no KernelBench checkout")
    changes = shrink(load_problem(KERNELBENCH / KERNELBENCH_PROBLEMS[2]))  # M, K, N = 8205, 2949, 5921
    assert set(changes) == {"M", "K", "N"} and all(new % 2 == 1 for _, new in changes.values())


CONV = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, kernel_size)

    def forward(self, x):
        return self.conv(x)


batch_size = 65536
channels = 16
height = 8
width = 8
kernel_size = 5


def get_inputs():
    return [torch.rand(batch_size, 3, height, width)]


def get_init_inputs():
    return [channels, kernel_size]
'''


def test_a_size_whose_halving_breaks_the_model_stays(tmp_path):
    path = tmp_path / "conv.py"
    path.write_text(CONV)
    problem = load_problem(path)
    changes = shrink(problem)
    small = shrunk(problem, changes, {})
    # 8 -> 4 would leave the 5x5 kernel no room: height and width stay; the batch shrinks instead
    assert "height" not in changes and "width" not in changes and changes["batch_size"][1] < 65536
    assert fits(measure(small.source), TARGET_FRACTION) and measure(small.source).runs


def test_a_problem_that_cannot_shrink_enough_is_one_line(tmp_path):
    path = tmp_path / "fixed.py"
    path.write_text(HUGE.read_text().replace("torch.rand(batch_size, dim)", "torch.rand(4096, 393216)"))
    with pytest.raises(ProblemError, match="cannot make it fit the CPU interpreter") as error:
        shrink(load_problem(path))
    assert "\n" not in str(error.value)


# ---- before the first model call ----------------------------------------------------------------------------------
def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    return done.value.code


RELU = {"content": fenced((CANDIDATES / "relu_triton.py").read_text())}


@cpu_only
def test_solve_refuses_a_problem_too_large_for_the_interpreter_before_any_model_call(tmp_path, capsys):
    out = tmp_path / "run"
    with ScriptedServer([], default=RELU) as server:
        status = cli("solve", str(HUGE), "--base-url", server.url, "--budget", "2m", "--out", str(out),
                     "--device", DEVICE)
        assert server.requests == []
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and "too large for the CPU interpreter" in err and "--shrink auto" in err
    assert not out.exists()


@cpu_only
def test_solve_shrink_auto_searches_the_shrunk_problem_and_records_it(tmp_path):
    out = tmp_path / "run"
    with ScriptedServer([], default=RELU) as server:
        status = cli("solve", str(HUGE), "--shrink", "auto", "--base-url", server.url, "--lanes", "1",
                     "--max-attempts", "1", "--budget", "2m", "--out", str(out), "--device", DEVICE)
    assert status == 0
    run = RunDir(out)
    shrink_record = run.load_settings().shrink
    assert set(shrink_record) == {"batch_size", "dim"} and shrink_record["dim"][0] == 393216
    prompt = run.attempts()[0].prompt
    new_dim = shrink_record["dim"][1]
    assert f"dim = {new_dim}" in prompt and "originally 393216" in prompt  # the model knows the target
    verdict = run.read_summary()["best"]["cold_check"]
    assert verdict["status"] == "correct" and verdict["overrides"]["dim"] == ["393216", str(new_dim)]


@cpu_only
def test_bench_checks_each_problem_before_its_first_model_call(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copyfile(HUGE, suite / "huge_relu.py")
    with ScriptedServer([], default=RELU) as server:
        refused, shrunk_run = tmp_path / "refused", tmp_path / "shrunk"
        assert cli("bench", str(suite), "--base-url", server.url, "--lanes", "1", "--max-attempts", "1",
                   "--budget", "2m", "--out", str(refused), "--device", DEVICE) == 1
        assert server.requests == []
        error = RunDir(refused).problem("001_huge_relu").error.read_text()
        assert "too large for the CPU interpreter" in error

        assert cli("bench", str(suite), "--shrink", "auto", "--base-url", server.url, "--lanes", "1",
                   "--max-attempts", "1", "--budget", "2m", "--out", str(shrunk_run), "--device", DEVICE) == 0
        assert len(server.requests) == 1
    problem = RunDir(shrunk_run).problem("001_huge_relu")
    assert set(problem.shrink()) == {"batch_size", "dim"}
    assert problem.read_summary()["solved"] is True


def test_a_recorded_shrink_holds_on_the_cpu_only(tmp_path):
    from kernelsearch.search.suite_run import _sized

    run = RunDir(tmp_path / "problem")
    run.path.mkdir()
    shutil.copyfile(HUGE, run.problem_file)
    run.record_shrink({"dim": (393216, 6144)})
    assert _sized(run, "off", "cpu", None).constants["dim"] == 6144  # a resumed CPU bench keeps its sizes
    assert _sized(run, "off", "cuda", None).constants["dim"] == 393216  # on a GPU, the original sizes are searched


def test_auto_shrinks_a_problem_under_the_limit_to_the_same_target(tmp_path):
    # a quarter of the interpreter's element limit: it fits, but a search would verify it at full size
    path = tmp_path / "near.py"
    path.write_text(HUGE.read_text().replace("batch_size = 4096", "batch_size = 8").replace("dim = 393216",
                                                                                         "dim = 262144"))
    problem = load_problem(path)
    assert too_large(problem) is None and not fits(measure(problem.source), TARGET_FRACTION)
    small, changes = fit_interpreter(problem, "auto", {})
    assert changes and fits(measure(small.source), TARGET_FRACTION)
    assert fit_interpreter(problem, "off", {}) == (problem, {})  # without --shrink auto: as it is


def test_a_problem_under_the_limit_that_cannot_reach_the_target_goes_as_far_as_it_can(tmp_path):
    # 4 x 1048576 = 4.2M elements: under the limit, over the target; only the batch may halve (to 2)
    path = tmp_path / "fixed_dim.py"
    path.write_text(HUGE.read_text().replace("batch_size = 4096", "batch_size = 4").replace(
        "torch.rand(batch_size, dim)", "torch.rand(batch_size, 1048576)"))
    changes = shrink(load_problem(path))
    assert changes["batch_size"] == (4, 2)
