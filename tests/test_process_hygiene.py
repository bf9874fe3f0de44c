"""Stopping a command stops its verifier workers: no hung candidate is left spinning, however the command ends.

Workers run in sessions of their own, so a signal to the command's process group never reaches them: the pool
kills them on SIGINT/SIGTERM/SIGHUP (verify.live_pools) and the kernel kills them when the command is SIGKILLed
(PR_SET_PDEATHSIG, sandbox.limit_process). Each test starts the real CLI on a candidate that spins forever."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import CANDIDATES, PROBLEMS, REPO
from .openai_server import ScriptedServer, fenced
from kernelsearch.problem import load_problem
from kernelsearch.search.run_dir import RunDir
from kernelsearch.verify import PoolConfig, WorkerPool, make_request
from kernelsearch.verify.pool.devices import DeviceError, resolve_gpus
from kernelsearch.verify.pool.worker_pool import PoolStopped

WORKER_MODULE = b"kernelsearch.verify.worker"
PROBLEM, HANG = PROBLEMS / "elementwise_add_relu.py", CANDIDATES / "hang.py"
VERIFY_HANG = [sys.executable, "-m", "kernelsearch.cli", "verify", str(PROBLEM), str(HANG), "--device", "cpu"]
STARTUP_S = 120  # torch + triton imports on a busy 2-core machine take ~5 s; generous for a loaded CI box
EXIT_S = 10  # from the signal to the command's exit (measured: 0.3 s)
DEATH_S = 5  # from the command's death to its worker's (pdeathsig is immediate)


# ---- processes, read from /proc ----------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces: state, ppid, ...


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie has died already (its new parent just has not reaped it)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def workers_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat is None or int(stat[1]) != parent:
            continue
        try:
            if WORKER_MODULE in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


def workers_under(root: Path) -> list[int]:
    """This process's workers that run in `root` (the session's shared pool may have one of its own)."""
    found = []
    for pid in workers_of(os.getpid()):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(root):
                found.append(pid)
        except OSError:
            continue
    return found


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def in_a_job(worker: int) -> bool:
    """The worker has taken the candidate (it makes a job_<id> directory in its working directory for each job);
    the hang candidate spins from its second call on, a second or two later."""
    try:
        return any(name.startswith("job_") for name in os.listdir(f"/proc/{worker}/cwd"))
    except OSError:
        return False


def kill_leftovers(workers: list[int], command: int | None = None) -> None:
    """Clean-up whatever a failed test left behind: each worker's process group, then the command."""
    for kill, pid in [(os.killpg, w) for w in workers] + ([(os.kill, command)] if command else []):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def default_stop_signals() -> None:
    """In a child, before exec: SIGINT and SIGHUP at their defaults, as a terminal's command has them. A shell
    without job control starts background commands with SIGINT ignored, and nohup ignores SIGHUP; the tests may
    run under either, and a command keeps an ignored signal ignored (on purpose: see the test below)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@contextmanager
def spinning(command: list[str], **popen):
    """Start `command`, wait until its worker spins in the hang candidate; yield (process, worker pid)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_stop_signals, **popen)
    workers: list[int] = []
    try:
        workers = wait_for(lambda: workers_of(proc.pid), STARTUP_S, "the command starts a worker")
        wait_for(lambda: in_a_job(workers[0]), STARTUP_S, "the worker takes the candidate")
        time.sleep(2)  # into the spin
        assert alive(workers[0])
        yield proc, workers[0]
    finally:
        kill_leftovers(workers, proc.pid)
        proc.communicate(timeout=30)


def stderr_lines(proc: subprocess.Popen) -> list[str]:
    return [line for line in proc.communicate(timeout=30)[1].splitlines() if line.strip()]


# ---- the command is stopped --------------------------------------------------------------------------------
@pytest.mark.parametrize("signum, code, said", [
    (signal.SIGTERM, 143, "kernelsearch: stopped by SIGTERM"),
    (signal.SIGINT, 130, "kernelsearch: interrupted"),
    (signal.SIGHUP, 129, "kernelsearch: stopped by SIGHUP"),
])
def test_a_stop_signal_ends_the_command_and_its_hung_worker(signum, code, said):
    with spinning(VERIFY_HANG) as (proc, worker):
        proc.send_signal(signum)
        assert proc.wait(timeout=EXIT_S) == code
        assert stderr_lines(proc) == [said]  # one line, no traceback
        wait_for(lambda: not alive(worker), DEATH_S, f"worker {worker} dies")


def test_a_sigkilled_command_takes_its_worker_along():
    with spinning(VERIFY_HANG) as (proc, worker):
        proc.kill()  # no handler runs: only the kernel's parent-death signal can end the worker
        assert proc.wait(timeout=EXIT_S) == -signal.SIGKILL
        wait_for(lambda: not alive(worker), DEATH_S, f"worker {worker} dies with its parent")


@pytest.mark.parametrize("signum, code, said", [
    (signal.SIGINT, 130, "kernelsearch: interrupted; finished work is in"),
    (signal.SIGTERM, 143, "kernelsearch: stopped by SIGTERM; finished work is in"),
])
def test_a_stopped_search_records_its_attempts_in_flight_as_cancelled(tmp_path, signum, code, said):
    run = tmp_path / "run"
    # lane 0 verifies the hang candidate; lane 1 waits on the model, whose next answer never comes in time
    script = [{"content": fenced(HANG.read_text())}]
    with ScriptedServer(script, default={"content": "no idea", "delay": 60}) as server:
        solve = [sys.executable, "-m", "kernelsearch.cli", "solve", str(PROBLEM), "--base-url", server.url,
                 "--lanes", "2", "--budget", "10m", "--out", str(run), "--device", "cpu"]
        with spinning(solve) as (proc, worker):
            proc.send_signal(signum)
            assert proc.wait(timeout=EXIT_S) == code
            lines = stderr_lines(proc)
            wait_for(lambda: not alive(worker), DEATH_S, f"worker {worker} dies")
    assert said in lines[-1] and not any("Traceback" in line for line in lines), lines
    db = sqlite3.connect(RunDir(run).store)
    assert [status for (status,) in db.execute("SELECT status FROM attempts ORDER BY id")] == ["cancelled"] * 2


# ---- the pool itself ---------------------------------------------------------------------------------------
def hang_request():
    return make_request(load_problem(PROBLEM), HANG.read_text(), "hang", trials=1, timing=False)


def test_a_stopped_pool_fails_its_requests_instead_of_judging_them(tmp_path):
    with WorkerPool(PoolConfig(device="cpu", workdir=str(tmp_path))) as pool:
        in_flight = pool.submit(hang_request())
        queued = pool.submit(hang_request())
        worker = wait_for(lambda: pool.workers[0].proc and pool.workers[0].proc.pid, STARTUP_S, "a worker")
        try:
            wait_for(lambda: in_a_job(worker), STARTUP_S, "the worker takes the candidate")
            pool.kill_workers()  # what live_pools' signal handler does
            # a killed worker is no verdict on the candidate (it would read "SIGKILL: killed, most likely for memory")
            assert isinstance(in_flight.exception(timeout=EXIT_S), PoolStopped)
            assert isinstance(queued.exception(timeout=EXIT_S), PoolStopped)  # and no worker restarts for it
            assert isinstance(pool.submit(hang_request()).exception(timeout=0), PoolStopped)
            wait_for(lambda: not alive(worker), DEATH_S, f"worker {worker} dies")
            assert workers_under(tmp_path) == []
        finally:
            kill_leftovers([worker])


HANDLERS_WHILE_A_POOL_LIVES = """
import signal
from kernelsearch.verify import PoolConfig, WorkerPool
from kernelsearch.verify.pool import live_pools
stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
with WorkerPool(PoolConfig(device="cpu")):
    during = [signal.getsignal(s) is live_pools._on_signal for s in stops]
after = [signal.getsignal(s) is live_pools._on_signal for s in stops]
print(during, after, signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)
"""


@pytest.mark.parametrize("hangup, expected", [
    (signal.SIG_DFL, "[True, True, True] [False, False, False] False"),
    (signal.SIG_IGN, "[True, True, False] [False, False, False] True"),  # under nohup: SIGHUP stays ignored
])
def test_signal_handlers_are_the_pools_only_while_one_lives(hangup, expected):
    def dispositions():  # a process of its own: this one's may be anything (the session's pool, nohup, a shell)
        default_stop_signals()
        signal.signal(signal.SIGHUP, hangup)

    done = subprocess.run([sys.executable, "-c", HANDLERS_WHILE_A_POOL_LIVES], preexec_fn=dispositions,
                          capture_output=True, text=True, timeout=STARTUP_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected


# ---- a worker that cannot start ----------------------------------------------------------------------------
def test_a_worker_that_dies_at_start_gives_a_verdict_not_a_wait():
    # A broken Python installation, honestly: the interpreter cannot find its standard library and exits.
    with WorkerPool(PoolConfig(device="cpu", extra_env={"PYTHONHOME": "/nonexistent"})) as pool:
        for _ in range(2):  # each request tries a fresh start, and each gets its answer
            verdict = pool.submit(hang_request()).result(timeout=60)
            assert verdict.status == "runtime_error"
            assert "verifier worker failed to start (it exited" in verdict.message
            assert "PYTHONHOME = '/nonexistent'" in verdict.message  # the worker's own words, from its log


def test_a_worker_stuck_at_start_is_given_up_after_the_start_timeout(tmp_path):
    # Interpreter start-up code that never returns, standing in for a CUDA initialisation that hangs.
    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(3600)\n")
    src = str(REPO / "src")
    config = PoolConfig(device="cpu", start_timeout_s=3, workdir=str(tmp_path / "pool"),
                        extra_env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{src}"})
    began = time.monotonic()
    with WorkerPool(config) as pool:
        try:
            verdict = pool.submit(hang_request()).result(timeout=60)
        except FutureTimeout:
            pytest.fail("a worker stuck at start left its caller waiting")
        assert verdict.status == "runtime_error" and "failed to start (not ready after 3s" in verdict.message
    assert time.monotonic() - began < 30  # the warm start and the job's retry: two start timeouts and change
    assert workers_under(tmp_path) == []


# ---- no GPU ------------------------------------------------------------------------------------------------
NO_GPU = "--device cuda: no CUDA GPU is visible here"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("args", [
    ["verify", str(PROBLEM), str(CANDIDATES / "add_relu_triton.py")],
    ["solve", str(PROBLEM), "--out", "{tmp}/solve"],
    ["bench", str(PROBLEMS), "--out", "{tmp}/bench"],
    ["attention", "examples/attention/causal.py", "--out", "{tmp}/attention"],
])
def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = subprocess.run([sys.executable, "-m", "kernelsearch.cli", *args, "--device", "cuda"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"kernelsearch: error: {NO_GPU}"), lines
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_gpus_asked_for_must_exist(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_gpus(None) == [0, 1]
    assert resolve_gpus([1]) == [1]
    with pytest.raises(DeviceError, match="no GPU 5 here: 2 visible"):
        resolve_gpus([1, 5])
    with pytest.raises(DeviceError, match="empty"):  # no worker at all: requests would wait forever
        resolve_gpus([])
