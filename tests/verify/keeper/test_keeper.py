"""The answer keeper: the reference's answers live in a process the candidate cannot reach, and the pool holds
every verdict against the keeper's own record of what it compared."""
import json
import os
import socket
import sys
import threading
import time

import pytest
import torch

from ...conftest import CANDIDATES, ON_GPU, PROBLEMS
from kernelsearch.problem import load_problem
from kernelsearch.verify import PoolConfig, WorkerPool, make_request
from kernelsearch.verify.keeper.link import describe_tensors, recv_message, send_message, send_tensor
from kernelsearch.verify.pool.child_events import kill_group
from kernelsearch.verify.pool.keeper_process import JobRecord, KeeperProcess, KeeperStartError, unbacked
from kernelsearch.verify.verdict import FRESH_SEED, VARIANT_SEED, Verdict

ESCAPES = CANDIDATES / "escapes"
pytestmark = pytest.mark.skipif(ON_GPU, reason="CPU workers (the escapes use the Triton interpreter)")


@pytest.fixture(scope="module")
def unhooked(tmp_path_factory):
    """Workers without the audit hook: what the keeper alone holds, as native code would see it."""
    config = PoolConfig(device="cpu", run_timeout_s=30, extra_env={"KS_AUDIT": "off"})
    with WorkerPool(config) as pool:
        def run(candidate: str, problem: str = "elementwise_add_relu"):
            loaded = load_problem(PROBLEMS / f"{problem}.py")
            path = ESCAPES / f"{candidate}.py"
            return pool.verify(make_request(loaded, path.read_text(), path.stem, timing=False))
        yield run


@pytest.mark.parametrize("name", ["answer_from_gc", "answer_from_frames"])
def test_no_answer_to_find_in_the_candidate_s_process(unhooked, name):
    v = unhooked(name)  # with the answers in the worker, both passed as `correct` without the hook
    assert "no run-time audit hook" in v.containment
    assert v.status == "incorrect", f"{v.status}: {v.message}"
    assert "trial 0" in v.message


def test_a_forged_verdict_is_rejected(unhooked):
    v = unhooked("forge_verdict")
    assert v.status == "rejected", f"{v.status}: {v.message}"
    assert "verdict not backed by the comparisons" in v.message
    honest = unhooked("stash_file")  # the worker that was lied through was replaced; the next one judges anew
    assert honest.status == "correct", honest.message


def test_a_forged_verdict_is_rejected_with_the_hook_on(verify):
    v = verify("elementwise_add_relu", ESCAPES / "forge_verdict.py")
    assert v.status == "rejected", f"{v.status}: {v.message}"


def test_files_a_candidate_leaves_are_gone_after_its_job(pool, verify):
    v = verify("elementwise_add_relu", ESCAPES / "stash_file.py")
    assert v.status == "correct", v.message
    assert not list(pool.root.glob("worker*/stash.txt"))


# ---- the keeper as a hostile worker sees it -------------------------------------------------------------------
@pytest.fixture()
def keeper(tmp_path):
    k = KeeperProcess("cpu", None, tmp_path / "keeper", tmp_path / "keeper.log", (), {}, None, 1 << 30, 120.0)
    yield k
    k.stop()


def begin(keeper, job_id: str, trials: int = 2):
    problem = load_problem(PROBLEMS / "elementwise_add_relu.py")
    request = make_request(problem, "", "hostile", trials=trials, timing=False)
    keeper.begin((json.dumps({"id": job_id, **request.to_json()}) + "\n").encode())
    return problem, request


def right_answer(problem, seed: int) -> list:
    namespace: dict = {}
    exec(problem.source, namespace)
    torch.manual_seed(seed)
    a, b = namespace["get_inputs"]()
    return [torch.relu(a + b)]


def compare(sock, job_id, seed, kind, outs) -> dict:
    send_message(sock, op="compare", job=job_id, seed=seed, kind=kind, outputs=describe_tensors(outs))
    reply = recv_message(sock)
    if reply.get("send"):
        for t in outs:
            send_tensor(sock, t)
        reply = recv_message(sock)
    return reply


def test_the_keeper_compares_each_of_the_job_s_seeds_once_and_nothing_else(keeper):
    sock: socket.socket = keeper.worker_end
    problem, request = begin(keeper, "job1")
    seed = request.seed
    assert compare(sock, "job1", seed + 7, "trial", right_answer(problem, seed + 7))["status"] == "rejected"
    assert compare(sock, "job2", seed, "trial", right_answer(problem, seed))["status"] == "rejected"
    assert compare(sock, "job1", seed, "trial", right_answer(problem, seed))["result"]["ok"]
    again = compare(sock, "job1", seed, "trial", right_answer(problem, seed))
    assert again["status"] == "rejected" and "again or out of turn" in again["message"]
    wrong = compare(sock, "job1", seed + 1, "trial", [torch.zeros(16, 1000)])["result"]
    assert not wrong["ok"]
    send_message(sock, op="done", job="job1")
    recv_message(sock)
    record = keeper.record("job1")
    assert [(c["seed"], c["ok"]) for c in record.compared] == [(seed, True), (seed + 1, False)]


def test_after_a_failed_comparison_the_keeper_answers_no_more(keeper):
    sock = keeper.worker_end
    problem, request = begin(keeper, "job1", trials=3)
    seed = request.seed
    assert not compare(sock, "job1", seed, "trial", [torch.zeros(16, 1000)])["result"]["ok"]
    # a candidate could otherwise fail once to read the answers in the mismatch report, then pass
    assert compare(sock, "job1", seed + 1, "trial", right_answer(problem, seed + 1))["status"] == "rejected"


def test_announced_outputs_that_cannot_match_are_not_read(keeper):
    sock = keeper.worker_end
    problem, request = begin(keeper, "job1")
    reply = compare(sock, "job1", request.seed, "trial", [torch.zeros(3, 3)])
    assert not reply["result"]["ok"] and "shape (3, 3)" in reply["result"]["message"]


def verdict(**fields) -> Verdict:
    return Verdict(status="correct", message="", problem="p", candidate="c", **fields)


def test_a_correct_verdict_needs_every_comparison_it_claims():
    problem = load_problem(PROBLEMS / "elementwise_add_relu.py")
    request = make_request(problem, "", "c", trials=2, timing=True)
    s = request.seed
    trials = [{"seed": s, "kind": "trial", "ok": True}, {"seed": s + 1, "kind": "trial", "ok": True}]

    def saw(*compared):
        return JobRecord(list(compared), reference_calls=1)

    assert unbacked(verdict(), request, saw(*trials)) is None
    assert "trial 1" in unbacked(verdict(), request, saw(trials[0]))
    assert "never finished" in unbacked(verdict(), request, None)
    assert "fail" in unbacked(verdict(), request, saw(trials[0], {**trials[1], "ok": False}))
    variant = verdict(checks={"second_shape": {"ok": True}})
    assert "second shape" in unbacked(variant, request, saw(*trials))
    assert unbacked(variant, request, saw(*trials, {"seed": s + VARIANT_SEED, "kind": "variant", "ok": True})) is None
    timed = verdict(timing={"candidate": {"median_ms": 1.0}})
    assert "fresh inputs" in unbacked(timed, request, saw(*trials))
    assert unbacked(timed, request, saw(*trials, {"seed": s + FRESH_SEED, "kind": "fresh", "ok": True})) is None
    assert unbacked(Verdict(status="incorrect", message="", problem="p", candidate="c"), request, saw()) is None


def test_the_pool_process_does_not_load_torch():
    # The keeper's wire is shared by the pool (seeds) and both processes (tensors): only the latter may load torch,
    # which costs the pool ~250 MiB of RSS (the soak benchmark saw 22 MiB grow to 275 MiB).
    import subprocess
    import sys
    code = "import sys, kernelsearch.verify.pool, kernelsearch.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_shared_gpu_tensor_that_reaches_past_its_memory_is_not_opened():
    # The keeper opens a worker's output through its CUDA IPC handle only within the bytes the handle names: a
    # hostile worker cannot make it read other memory of the worker's. (Checked before any CUDA call: CPU test.)
    from kernelsearch.verify.keeper.link import open_cuda
    ipc = {"stride": [1], "offset": 0, "gpu": 0, "handle": "", "size_bytes": 4 * 1000, "offset_bytes": 0,
           "counter": "", "counter_offset": 0, "event": None, "event_sync": False}
    with pytest.raises(ValueError, match="reaches past"):
        open_cuda({"dtype": "float32", "shape": [1001], "ipc": ipc})
    with pytest.raises(ValueError, match="reaches past"):
        open_cuda({"dtype": "float32", "shape": [10, 10], "ipc": {**ipc, "stride": [1000, 1]}})
    with pytest.raises(ValueError, match="reaches past"):
        open_cuda({"dtype": "float32", "shape": [10], "ipc": {**ipc, "stride": [-1]}})
    if not ON_GPU:  # in bounds, but nothing to open here: the keeper falls back to the socket
        with pytest.raises(ValueError, match="did not open"):
            open_cuda({"dtype": "float32", "shape": [1000], "ipc": ipc})


def test_a_keeper_that_is_still_starting_can_be_killed(tmp_path):
    # Its pid is given out as soon as it runs: a stop that comes before it is ready ends it (a bwrap left waiting on
    # its own setup forever was seen after a run was stopped while a keeper started).
    never_ready = lambda argv, env, info_fd: [sys.executable, "-c", "import time; time.sleep(120)"]  # noqa: E731
    pids, failures = [], []

    def start():
        try:
            KeeperProcess("cpu", None, tmp_path / "keeper", tmp_path / "keeper.log", (), {}, None, 1 << 30, 120.0,
                          wrap=never_ready, started=pids.append)
        except KeeperStartError as e:
            failures.append(str(e))

    starting = threading.Thread(target=start)
    starting.start()
    deadline = time.monotonic() + 30
    while not pids and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids, "the keeper's pid was not given out while it started"
    kill_group(pids[0])
    starting.join(30)
    assert not starting.is_alive() and failures  # its start ended as soon as it was killed, not after 120 s
    assert not os.path.exists(f"/proc/{pids[0]}") or open(f"/proc/{pids[0]}/stat").read().split()[2] in "ZX"
