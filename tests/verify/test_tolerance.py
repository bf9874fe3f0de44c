"""Tolerance profiles: their values, the flags and config keys that choose them, and where the choice shows
(the request to the verifier, the verdict, the prompt, a solve's and a bench's saved settings)."""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future

import pytest

from ..conftest import CANDIDATES, PROBLEMS
from kernelsearch.cli import main
from kernelsearch.config import ConfigError, build
from kernelsearch.llm.client import Completion
from kernelsearch.llm.prompt import build_prompt, strategies
from kernelsearch.verify import Verdict, VerifyRequest
from kernelsearch.verify.tolerance import PROFILES, Tolerance, ToleranceError, describe_settings, resolve_tolerance
from kernelsearch.verify.verdict import format_verdict


@pytest.mark.parametrize("profile, dtype, expected", [
    ("kernelbench", "fp32", 1e-4), ("kernelbench", "fp16", 1e-2), ("kernelbench", "bf16", 1e-2),
    ("kernelbench-v0", "fp32", 1e-2), ("kernelbench-v0", "fp16", 1e-2), ("kernelbench-v0", "bf16", 1e-2)])
def test_profiles_give_atol_and_rtol_per_dtype(profile, dtype, expected):
    assert resolve_tolerance(profile, dtype) == Tolerance(atol=expected, rtol=expected, profile=profile, dtype=dtype)


def test_atol_and_rtol_replace_the_profiles_values_and_say_so():
    t = resolve_tolerance("kernelbench", "fp32", atol=1e-3)
    assert (t.atol, t.rtol) == (1e-3, 1e-4)
    assert t.describe() == "kernelbench (fp32): atol=1e-3 (set), rtol=1e-4"
    assert resolve_tolerance("kernelbench-v0", "bf16", rtol=0).describe() == \
        "kernelbench-v0 (bf16): atol=1e-2, rtol=0 (set)"
    assert resolve_tolerance().describe() == "kernelbench (fp32): atol=1e-4, rtol=1e-4"
    assert describe_settings("kernelbench-v0") == ("kernelbench-v0: fp32 atol=1e-2, rtol=1e-2; fp16 atol=1e-2, "
                                                   "rtol=1e-2; bf16 atol=1e-2, rtol=1e-2")


@pytest.mark.parametrize("profile, atol, rtol, words", [
    ("kernelbench-v2", None, None, "unknown tolerance profile 'kernelbench-v2'"),
    ("kernelbench", -1e-3, None, "atol must be a finite number >= 0"),
    ("kernelbench", None, float("inf"), "rtol must be a finite number >= 0"),
    ("kernelbench", None, float("nan"), "rtol must be a finite number >= 0")])
def test_bad_settings_are_refused(profile, atol, rtol, words):
    with pytest.raises(ToleranceError, match=words):
        resolve_tolerance(profile, "fp32", atol, rtol)


def test_request_resolves_and_verdict_shows_the_tolerance():
    request = VerifyRequest("p", "c", dtype="fp16", tolerance="kernelbench-v0", atol=0.5)
    again = VerifyRequest(**json.loads(json.dumps(request.to_json())))  # as it reaches the worker
    assert again.resolved_tolerance() == Tolerance(atol=0.5, rtol=1e-2, profile="kernelbench-v0", dtype="fp16")
    assert VerifyRequest("p", "c").resolved_tolerance() == resolve_tolerance("kernelbench", "fp32")
    verdict = Verdict("correct", "fine", tolerance=again.resolved_tolerance().describe())
    assert "  tolerance: kernelbench-v0 (fp16): atol=0.5 (set), rtol=1e-2" in format_verdict(verdict).splitlines()
    assert "tolerance" not in format_verdict(Verdict("correct", "fine"))  # a verdict from before the field


def run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    return done.value.code


@pytest.mark.parametrize("command", ["verify", "solve", "bench"])
@pytest.mark.parametrize("flags, words", [
    (["--tolerance", "loose"], "unknown tolerance profile 'loose' (known: kernelbench, kernelbench-v0)"),
    (["--atol", "-1"], "atol must be a finite number >= 0, got -1.0"),
    (["--rtol", "nan"], "rtol must be a finite number >= 0, got nan")])
def test_bad_flags_are_usage_errors_in_one_line(command, flags, words, capsys, tmp_path):
    problem = str(PROBLEMS / "elementwise_add_relu.py")
    positional = {"verify": [problem, str(CANDIDATES / "add_relu_triton.py")], "solve": [problem],
                  "bench": [str(PROBLEMS)]}[command]
    assert run_cli(command, *positional, *flags, "--out" if command != "verify" else "--json",
                   *([str(tmp_path / "run")] if command != "verify" else [])) == 2
    err = capsys.readouterr().err
    assert err == f"kernelsearch: error: {words}\n"
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("command", ["verify", "solve", "bench"])
def test_help_shows_the_tolerance_defaults(command, capsys):
    assert run_cli(command, "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default kernelbench)" in text
    assert "kernelbench: fp32 1e-4, fp16/bf16 1e-2; kernelbench-v0: 1e-2 for every dtype" in text
    assert text.count("(default: the profile's)") == 2  # --atol and --rtol


def test_config_file_sets_the_tolerance_and_flags_override_it(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[search]\ntolerance = "kernelbench-v0"\nrtol = 0.05\n')
    _, search = build(str(path), {}, {"tolerance": None, "atol": None, "rtol": None})
    assert (search.tolerance, search.atol, search.rtol) == ("kernelbench-v0", None, 0.05)
    _, search = build(str(path), {}, {"tolerance": "kernelbench", "atol": 1e-3})
    assert search.resolved_tolerance() == Tolerance(atol=1e-3, rtol=0.05, profile="kernelbench", dtype="fp32")
    path.write_text("[search]\natol = -0.5\n")
    with pytest.raises(ConfigError, match="atol must be a finite number >= 0"):
        build(str(path), {}, {})


def test_the_prompt_states_the_profile_in_force():
    def prompt(tolerance):
        return build_prompt("class Model: ...", language="triton", dtype="fp32", device="H100", strict=False,
                            strategy=strategies()["first"], tolerance=tolerance)

    assert "atol = rtol = 1e-4 (the kernelbench profile for fp32)" in prompt(None)
    assert "atol = rtol = 1e-2 (the kernelbench-v0 profile for fp32)" in prompt(resolve_tolerance("kernelbench-v0"))
    custom = prompt(resolve_tolerance("kernelbench", "fp32", atol=1e-3))
    assert "atol = 1e-3, rtol = 1e-4 (the kernelbench profile for fp32)" in custom and "$" not in custom


class RecordingPool:
    """Stands in for the worker pool: records each request and answers `incorrect`."""
    device, info = "cpu", {"device_name": "cpu"}

    def __init__(self):
        self.requests: list[VerifyRequest] = []

    def submit(self, request: VerifyRequest) -> Future:
        self.requests.append(request)
        future = Future()
        future.set_result(Verdict("incorrect", "wrong", tolerance=request.resolved_tolerance().describe()))
        return future


class OneAnswer:
    async def complete(self, prompt, on_progress=None):
        return Completion(answer="```python\nclass ModelNew: pass\n```", reasoning="", finish_reason="stop")


def test_solve_verifies_and_prompts_under_its_tolerance_and_saves_it(tmp_path):
    from kernelsearch.problem import load_problem
    from kernelsearch.search.display import Display
    from kernelsearch.search.lanes import Search
    from kernelsearch.search.run_dir import RunDir, Settings
    from kernelsearch.search.solve_config import SolveConfig

    config = SolveConfig(dtype="fp16", tolerance="kernelbench-v0", rtol=2e-2, lanes=1)
    pool, store = RecordingPool(), RunDir(tmp_path).open_store()
    search = Search(load_problem(PROBLEMS / "elementwise_add_relu.py"), config, OneAnswer(), pool, store,
                    Display(live=False))
    search.display.start(search.name, config.budget_s, config.budget_s, 1)
    asyncio.run(search.attempt(search.lanes[0]))
    [request] = pool.requests
    assert (request.tolerance, request.atol, request.rtol) == ("kernelbench-v0", None, 2e-2)
    assert "atol = 1e-2, rtol = 2e-2 (the kernelbench-v0 profile for fp16)" in store.attempts()[0].prompt
    store.close()

    from kernelsearch.llm.client import ModelConfig
    RunDir(tmp_path).save_settings(Settings(str(PROBLEMS / "elementwise_add_relu.py"), {}, config,
                                            ModelConfig(model="m")))
    assert RunDir(tmp_path).load_settings().search.resolved_tolerance() == config.resolved_tolerance()


def test_runs_saved_before_the_setting_keep_the_default(tmp_path):
    from kernelsearch.search.solve_config import SolveConfig
    from kernelsearch.search.suite_run import judging_of

    assert judging_of({}) == {"rules": "kernelsearch", "tolerance": "kernelbench", "atol": None, "rtol": None}
    assert SolveConfig(**{"budget_s": 60.0}).resolved_tolerance() == resolve_tolerance("kernelbench", "fp32")
    assert set(PROFILES) == {"kernelbench", "kernelbench-v0"}
