"""The Ray backend (kernelsearch.scale): the local pool's verdicts on a local cluster, lost actors, placement."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future

import pytest

from .conftest import CANDIDATES, DEVICE, PROBLEMS
from .openai_server import ScriptedServer, fenced
from kernelsearch.cli import main
from kernelsearch.problem import load_problem
from kernelsearch.scale.placement import Job, Placement, problem_key
from kernelsearch.search.run_dir import RunDir
from kernelsearch.verify import PoolConfig, make_request

# CI installs the `ray` extra with `.[test]` and sets KS_REQUIRE_RAY=1: there a missing Ray fails, never skips
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None and not os.environ.get("KS_REQUIRE_RAY"),
                               reason="Ray is not installed (pip install 'kernelsearch[ray]')")
ACTORS = 2  # two CPU-worker actors: CI has 2 cores
CONFIG = PoolConfig(device=DEVICE, compile_timeout_s=300, run_timeout_s=15)  # the session pool's limits (conftest)
SUITE = [  # problem, candidate: correct, incorrect, a compile failure and a worker crash
    ("elementwise_add_relu", "add_relu_triton"), ("row_sum", "row_sum_triton"), ("softmax", "softmax_triton"),
    ("elementwise_add_relu", "add_relu_wrong_tail"), ("matmul", "matmul_wrong_scale"),
    ("elementwise_add_relu", "syntax_error"), ("elementwise_add_relu", "out_of_bounds"),
]


def request(problem: str, candidate: str):
    loaded = load_problem(PROBLEMS / f"{problem}.py")
    return make_request(loaded, (CANDIDATES / f"{candidate}.py").read_text(), candidate, timing=False)


def essence(verdict) -> tuple:
    """What must not depend on the backend. A message's counts may (how many unwritten elements happen to hold
    NaN from the poisoned free memory), so only its head is compared: `trial 0 (seed 42)`, the error's kind."""
    return verdict.status, verdict.phase, verdict.message.split(":")[0], [t["ok"] for t in verdict.trials]


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module: starting one takes ~7 s on 2 cores."""
    from kernelsearch.scale.cluster import connect, disconnect
    connect("local", num_cpus=ACTORS)
    yield
    disconnect()


def ray_pool(**options):
    from kernelsearch.scale.ray_pool import RayPool
    return RayPool(CONFIG, "local", **options)


def kill_on_assignment(monkeypatch, times: int) -> list[str]:
    """Kill the actor of each of the first `times` jobs handed out, as the job goes to it (a node lost under it)."""
    import ray

    from kernelsearch.scale.ray_pool import RayPool
    original, killed = RayPool.next_job, []

    def next_job(self, slot):
        job = original(self, slot)
        if job is not None and len(killed) < times:
            killed.append(slot.label)
            ray.kill(slot.actor)
        return job

    monkeypatch.setattr(RayPool, "next_job", next_job)
    return killed


# ---- on a local Ray cluster -----------------------------------------------------------------------------------
@needs_ray
def test_the_same_verdicts_as_the_local_pool_and_a_problem_stays_on_its_actor(cluster, pool):
    local = [pool.submit(request(*case)) for case in SUITE]
    with ray_pool(steal_after_s=600) as remote:  # no stealing: placement alone decides
        assert len(remote.workers) == ACTORS
        futures = [remote.submit(request(*case)) for case in SUITE]
        verdicts = [f.result(timeout=600) for f in futures]
        record = remote.record()
        per_problem = {p: remote.record(p) for p, _ in SUITE}
    assert [essence(v) for v in verdicts] == [essence(f.result()) for f in local]
    assert [v.status for v in verdicts[:3]] == ["correct"] * 3  # the comparison is not of failures only
    assert record["backend"] == "ray" and record["device"] == DEVICE and not record["lost"]
    assert all(a["jobs"] for a in record["actors"].values()), record  # both actors worked
    assert sum(a["jobs"] for a in record["actors"].values()) == len(SUITE)
    for problem, one in per_problem.items():  # every candidate of a problem went to the actor holding it
        assert sum(1 for a in one["actors"].values() if a["jobs"]) == 1, (problem, one)


def wait_for_actor(pool, label: str, timeout: float = 180):
    """The slot of the replacement actor `label`, once it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slot = next((s for s in pool.workers if s.label == label), None)
        if slot is not None:
            return slot
        time.sleep(0.1)
    raise AssertionError(f"{label} did not start in {timeout} s: {pool.record()}")


@needs_ray
def test_an_actor_killed_mid_job_is_retried_once_on_another_and_replaced(cluster):
    import ray
    with ray_pool() as remote:
        future = remote.submit(request("elementwise_add_relu", "add_relu_slow"))
        deadline = time.monotonic() + 60
        while not any(s.job for s in remote.workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = next(s for s in remote.workers if s.job)
        time.sleep(0.5)  # the job is running in the actor's worker (it takes seconds in the interpreter)
        assert not future.done()
        ray.kill(victim.actor)
        verdict = future.result(timeout=300)
        assert verdict.status == "correct", verdict.message
        replacement = wait_for_actor(remote, f"actor-{ACTORS}")  # in the lost one's place, on the CPU it freed
        record = remote.record()
        lost = record["actors"][victim.label]
        assert lost["alive"] is False and lost["jobs"] == 0
        assert sum(a["jobs"] for name, a in record["actors"].items() if name != victim.label) == 1
        assert len(record["lost"]) == 1 and record["lost"][0].startswith(f"{victim.label} on ")
        assert record["actors"][replacement.label]["alive"] is True and len(record["actors"]) == ACTORS + 1
        survivor = next(s for s in remote.workers if s.alive and s is not replacement)
        ray.kill(survivor.actor)  # with the other original gone too, the replacement answers alone
        assert remote.verify(request("row_sum", "row_sum_triton")).status == "correct"
        assert remote.record()["actors"][replacement.label]["jobs"] >= 1


@needs_ray
def test_a_job_lost_twice_is_reported_and_replacements_answer_later_jobs(cluster, monkeypatch):
    killed = kill_on_assignment(monkeypatch, times=ACTORS)
    with ray_pool() as remote:
        verdict = remote.verify(request("elementwise_add_relu", "add_relu_triton"))
        after = remote.verify(request("row_sum", "row_sum_triton"))  # waits for a replacement to start
        record = remote.record()
    assert sorted(killed) == ["actor-0", "actor-1"]
    assert verdict.status == "runtime_error" and "were lost: actor-" in verdict.message
    assert "retried once" in verdict.message
    assert after.status == "correct", after.message
    assert sum(record["actors"][f"actor-{i}"]["jobs"] for i in (ACTORS, ACTORS + 1) if f"actor-{i}" in record[
        "actors"]) == 1


@needs_ray
def test_replacements_are_bounded_then_jobs_are_answered_unverified(cluster, monkeypatch):
    killed = kill_on_assignment(monkeypatch, times=2 * ACTORS)  # the originals, then their replacements
    with ray_pool() as remote:
        first = remote.verify(request("elementwise_add_relu", "add_relu_triton"))
        second = remote.verify(request("row_sum", "row_sum_triton"))
        third = remote.verify(request("softmax", "softmax_triton"))
        record = remote.record()
    assert sorted(killed) == [f"actor-{i}" for i in range(2 * ACTORS)]  # one replacement per actor started
    assert "retried once" in first.message and "retried once" in second.message
    assert third.status == "runtime_error" and "no Ray verifier actor is left" in third.message
    assert not any(a["alive"] for a in record["actors"].values()) and len(record["lost"]) == 2 * ACTORS


@needs_ray
def test_bench_over_ray_completes_when_an_actor_dies_and_records_where_it_ran(cluster, monkeypatch, tmp_path, capsys):
    killed = kill_on_assignment(monkeypatch, times=1)
    level = tmp_path / "kb" / "KernelBench" / "level1"
    level.mkdir(parents=True)
    for number, name in {1: "elementwise_add_relu", 2: "row_sum"}.items():
        (level / f"{number}_{name}.py").write_text((PROBLEMS / f"{name}.py").read_text())
    script = [{"content": fenced((CANDIDATES / "add_relu_triton.py").read_text()), "match": "torch.relu(a + b)"},
              {"content": fenced((CANDIDATES / "row_sum_triton.py").read_text()), "match": "torch.sum(x, dim=self.dim"}]
    run = RunDir(tmp_path / "run")
    with ScriptedServer(script) as server, pytest.raises(SystemExit) as done:
        main(["bench", "kernelbench", "--kernelbench-dir", str(tmp_path / "kb"), "--base-url", server.url,
              "--lanes", "1", "--budget", "2m", "--max-attempts", "1", "--device", DEVICE, "--ray", "local",
              "--out", str(run.path)])
    assert done.value.code == 0 and len(killed) == 1, capsys.readouterr()
    assert run.read_summary()["correct"] == 2  # the lost job ran again on the other actor
    context = json.loads(run.context.read_text())
    # the lost actor, the survivor and the lost one's replacement
    assert context["verifier"].startswith(f"ray (local): {ACTORS + 1} actor(s) on 1 node(s)"), context
    assert f"lost: {killed[0]} on " in context["verifier"]


@needs_ray
def test_solve_over_ray_records_the_backend_and_nodes_in_its_summary(cluster, tmp_path, capsys):
    script = [{"content": fenced((CANDIDATES / "add_relu_triton.py").read_text())}]
    with ScriptedServer(script) as server, pytest.raises(SystemExit) as done:
        main(["solve", str(PROBLEMS / "elementwise_add_relu.py"), "--base-url", server.url, "--lanes", "1",
              "--max-attempts", "1", "--device", DEVICE, "--ray", "local", "--out", str(tmp_path / "run")])
    assert done.value.code == 0, capsys.readouterr()
    verifier = RunDir(tmp_path / "run").read_summary()["verifier"]
    assert verifier["backend"] == "ray" and len(verifier["nodes"]) == 1 and not verifier["lost"]
    assert sum(a["jobs"] for a in verifier["actors"].values()) == 2  # the attempt and its cold re-check


@needs_ray
def test_retime_over_ray_uses_the_clusters_device_and_says_so_in_one_line(cluster, tmp_path, capsys):
    from .test_retime import FAST, make_run
    run = make_run(tmp_path, [FAST])
    with pytest.raises(SystemExit) as done:  # the cluster has CPUs only: nothing to time on
        main(["retime", str(run.path), "--ray", "local"])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "\n" not in err
    assert "re-timing needs a GPU" in err and "or on a Ray cluster with GPUs" in err
    with pytest.raises(SystemExit) as done:
        main(["retime", str(run.path), "--ray", "local", "--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "the Ray cluster has no GPU" in err and "\n" not in err
    assert run.read_summary()["best"]["attempt"] == 1  # untouched


# ---- one-line errors ------------------------------------------------------------------------------------------
def verify_cli(*extra: str) -> list[str]:
    return [str(PROBLEMS / "elementwise_add_relu.py"), str(CANDIDATES / "add_relu_triton.py"), "--device", DEVICE,
            *extra]


def test_ray_not_installed_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(SystemExit) as done:
        main(["verify", *verify_cli("--ray", "local")])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "\n" not in err
    assert err == "kernelsearch: error: --ray needs Ray, which is not installed here: pip install 'kernelsearch[ray]'"


@needs_ray
@pytest.mark.parametrize("address, said", [("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
                                           ("not-an-address", "not an address")])
def test_an_unreachable_or_malformed_address_is_one_line(address, said):
    # a process of its own: this one may already be connected to the module's local cluster
    done = subprocess.run([sys.executable, "-m", "kernelsearch", "verify", *verify_cli("--ray", address)],
                          capture_output=True, text=True, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2 and said in err and "\n" not in err, err


def test_gpus_with_ray_is_one_line(capsys):
    with pytest.raises(SystemExit) as done:
        main(["bench", "kernelbench", "--gpus", "0", "--ray", "local"])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "with --ray every GPU of the cluster verifies" in err and "\n" not in err


# ---- placement: plain functions, no Ray ----------------------------------------------------------------------
def job(problem: str = "p", submitted: float = 0.0, dtype: str = "fp32") -> Job:
    req = make_request(load_problem(PROBLEMS / "elementwise_add_relu.py"), "src", "c", dtype=dtype)
    req.problem_source += f"\n# {problem}"
    return Job(req, Future(), problem_key(req), submitted=submitted)


def test_the_problem_key_is_the_problem_at_its_shapes_and_dtype():
    assert job("a").key == job("a").key
    assert len({job("a").key, job("b").key, job("a", dtype="fp16").key}) == 3


def test_a_problems_jobs_go_to_the_actor_that_holds_it():
    placement = Placement(steal_after_s=10)
    first, second, other = job("a"), job("a"), job("b")
    for j in (first, second, other):
        placement.add(j)
    assert placement.take(0, live={0, 1}, busy=set(), now=1) is first  # unheld: whoever is free
    assert placement.take(1, live={0, 1}, busy={0}, now=1) is other  # slot 1 leaves problem a to its holder
    assert placement.take(1, live={0, 1}, busy={0}, now=1) is None  # a's holder is busy, but not for long yet
    assert placement.take(0, live={0, 1}, busy=set(), now=1) is second


def test_an_overdue_job_is_stolen_only_from_a_busy_or_lost_holder():
    placement = Placement(steal_after_s=10)
    placement.add(job("a"))
    placement.take(0, live={0, 1}, busy=set(), now=0)
    waiting = job("a", submitted=0)
    placement.add(waiting)
    assert placement.next_overdue_in(now=4) == 6
    assert placement.take(1, live={0, 1}, busy=set(), now=11) is None  # holder 0 is idle: it takes its own
    assert placement.take(1, live={0, 1}, busy={0}, now=11) is waiting  # holder busy past 10 s: stolen
    assert placement.holders[waiting.key] == {0, 1}  # now both hold the reference
    lost = job("b")
    placement.holders[lost.key] = {0}
    placement.add(lost)
    assert placement.take(1, live={1}, busy=set(), now=0) is lost  # holder 0 is gone: no wait


def test_a_retried_job_goes_first():
    placement = Placement()
    waiting, retried = job("a"), job("b")
    placement.add(waiting)
    placement.add(retried, front=True)
    assert placement.take(0, live={0}, busy=set(), now=0) is retried
    assert placement.remove(waiting.future) is waiting and placement.drain() == []
