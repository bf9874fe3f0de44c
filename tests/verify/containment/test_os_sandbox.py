"""The OS sandbox (bubblewrap) around verifier workers: native code in a worker reaches none of the caller's files,
no network, no other process, and leaves nothing behind on the machine; honest candidates still verify.

Native code runs only on a GPU (on the CPU a CUDA candidate is compile-checked, never run), so on the CPU the
escapes run as a script inside the very command line the pool builds (sandbox.wrap_command), calling libc from
ctypes as C++ would; each is run once without the sandbox too, to show it is a real attempt."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ...conftest import CANDIDATES, DEVICE, ON_GPU, PROBLEMS, REPO
from ...test_process_hygiene import VERIFY_HANG, alive, spinning, wait_for
from kernelsearch.problem import load_problem
from kernelsearch.search.run_dir import RunDir
from kernelsearch.verify import PoolConfig, WorkerPool, make_request
from kernelsearch.verify.containment.sandbox import (BUBBLEWRAP, SANDBOX_VARIABLE, bubblewrap_problem, os_sandbox,
                                                     worker_env, wrap_command)

ESCAPES = CANDIDATES / "escapes_native"
PROBLEM = PROBLEMS / "elementwise_add_relu.py"
WHY_NOT = bubblewrap_problem()
if WHY_NOT and os.environ.get("KS_REQUIRE_OS_SANDBOX") == "1":  # CI installs bubblewrap: a skip there is a failure
    raise RuntimeError(f"KS_REQUIRE_OS_SANDBOX=1 but workers cannot run in bubblewrap here: {WHY_NOT}")
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no OS sandbox here ({WHY_NOT}); CI installs "
                                "Debian's bubblewrap")

# Attempts that must fail inside the sandbox (and succeed outside it), and what each would have left behind.
ESCAPE_NAMES = ["read the caller's home", "read the run's store", "list the caller's working directory",
                "read another worker's log", "write outside the worker's directory", "system() touching a file",
                "connect to the caller's TCP port", "connect to a unix socket in the working directory",
                "signal the caller"]
CONTROLS = ["write in the worker's directory", "import kernelsearch"]


# ---- a caller's world: home, working directory with a run, a pool ---------------------------------------------
@pytest.fixture(scope="module")
def world():
    """Made outside /tmp (which the sandbox hides whole, so a test there could pass for the wrong reason): next to
    the repository, removed afterwards."""
    scratch = Path(tempfile.mkdtemp(dir=REPO, prefix=".os-sandbox-test-"))
    home, project, pool = scratch / "home", scratch / "project", scratch / "pool"
    for directory in (home, project / "runs" / "r", pool / "worker0", pool / "worker1"):
        directory.mkdir(parents=True)
    (home / "secret.txt").write_text("the user's secret\n")
    with sqlite3.connect(RunDir(project / "runs" / "r").store) as db:
        db.execute("CREATE TABLE attempts (answer TEXT)")
        db.execute("INSERT INTO attempts VALUES ('another lane''s kernel')")
    (pool / "worker1.log").write_text("another candidate's output\n")
    listener = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(project / "agent.sock"))
    unix.listen()
    targets = {"home_secret": str(home / "secret.txt"), "store": str(RunDir(project / "runs" / "r").store),
               "working_directory": str(project), "other_worker_log": str(pool / "worker1.log"),
               "outside_file": str(scratch / "written-from-the-worker"),
               "system_marker": str(scratch / "touched-by-system"), "port": listener.getsockname()[1],
               "unix_socket": str(project / "agent.sock"), "caller_pid": os.getpid(),
               "worker_file": str(pool / "worker0" / "scratch.txt")}
    try:
        yield {"targets": targets, "home": home, "project": project, "worker": pool / "worker0",
               "listeners": (listener, unix), "store_digest": _digest(targets["store"])}
    finally:
        listener.close()
        unix.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _run_attempts(world, sandboxed: bool) -> dict:
    targets = {**world["targets"], "try_remount": sandboxed}
    argv = [sys.executable, "-c", (ESCAPES / "attempts.py").read_text(), json.dumps(targets)]
    env = worker_env("cpu", None, world["worker"])
    if sandboxed:
        with pytest.MonkeyPatch.context() as caller:  # the sandbox hides the home and working directory of its caller
            caller.setenv("HOME", str(world["home"]))
            caller.chdir(world["project"])
            argv = wrap_command(argv, world["worker"], "cpu", env)
    done = subprocess.run(argv, env=env, cwd=world["worker"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _accepted(listener: socket.socket) -> int:
    """Connections waiting on a listener (accepted and closed here, so that the next run starts at none)."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def _effects(world) -> dict:
    """What the attempts could have left on the machine."""
    t = world["targets"]
    return {"outside file": Path(t["outside_file"]).exists(), "system marker": Path(t["system_marker"]).exists(),
            "store changed": _digest(t["store"]) != world["store_digest"],
            "tcp connections": _accepted(world["listeners"][0]), "unix connections": _accepted(world["listeners"][1])}


@pytest.fixture(scope="module")
def outcomes(world):
    """Each attempt without any sandbox, then inside it, with what each run left behind."""
    plain = _run_attempts(world, sandboxed=False)
    plain_effects = _effects(world)
    for name in ("outside_file", "system_marker"):
        Path(world["targets"][name]).unlink(missing_ok=True)
    boxed = _run_attempts(world, sandboxed=True)
    return {"plain": plain, "plain effects": plain_effects, "boxed": boxed, "boxed effects": _effects(world)}


# Where the repository lies under a place the sandbox replaces with a private in-memory file system (/tmp, a
# home directory: seen in a clean clone under /tmp), a write inside succeeds there and lands nowhere on the
# machine: it cannot act, which is what these two must show.
LANDS_ON_THE_MACHINE = {"write outside the worker's directory": "outside file", "system() touching a file": "system marker"}


@pytest.mark.parametrize("name", ESCAPE_NAMES)
def test_an_escape_that_works_outside_fails_inside_the_sandbox(outcomes, name):
    assert outcomes["plain"][name]["ok"], f"not a real attempt: {outcomes['plain'][name]}"
    if outcomes["boxed"][name]["ok"] and name in LANDS_ON_THE_MACHINE:
        assert not outcomes["boxed effects"][LANDS_ON_THE_MACHINE[name]], f"{name} acted on the machine"
        return
    assert not outcomes["boxed"][name]["ok"], f"{name} got through the sandbox: {outcomes['boxed'][name]}"


def test_the_sandbox_cannot_be_remounted_writable(outcomes):
    assert not outcomes["boxed"]["remount / writable"]["ok"], outcomes["boxed"]["remount / writable"]


def test_nothing_the_escapes_tried_happened_on_the_machine(outcomes):
    assert outcomes["plain effects"] == {"outside file": True, "system marker": True, "store changed": False,
                                         "tcp connections": 1, "unix connections": 1}  # the attempts can act
    assert outcomes["boxed effects"] == {"outside file": False, "system marker": False, "store changed": False,
                                         "tcp connections": 0, "unix connections": 0}


@pytest.mark.parametrize("name", CONTROLS)
def test_the_worker_can_still_work_in_the_sandbox(outcomes, name):
    assert outcomes["boxed"][name]["ok"], outcomes["boxed"][name]


def test_the_worker_sees_from_inside_that_it_is_sandboxed(world):
    probe = [sys.executable, "-c", "from kernelsearch.verify.containment.sandbox import os_sandbox; print(os_sandbox())"]
    env = {**worker_env("cpu", None, world["worker"]), SANDBOX_VARIABLE: BUBBLEWRAP}
    inside = subprocess.run(wrap_command(probe, world["worker"], "cpu", env), env=env, capture_output=True,
                            text=True, timeout=60)
    assert inside.stdout.strip() == BUBBLEWRAP, inside.stderr
    # told so, but not in it: the worker says so rather than repeat what it was told
    outside = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60)
    assert outside.stdout.strip().startswith("none: bubblewrap was asked for"), outside.stderr


def test_os_sandbox_says_why_when_not_sandboxed(monkeypatch):
    monkeypatch.setenv(SANDBOX_VARIABLE, "none: bwrap not installed")
    assert os_sandbox() == "none: bwrap not installed"
    monkeypatch.delenv(SANDBOX_VARIABLE)
    assert os_sandbox() == "none: started without an OS sandbox"


# ---- processes: nothing outlives the sandbox -------------------------------------------------------------------
def _sleeping(seconds: str) -> list[int]:
    """Live `sleep SECONDS` processes (a number no other test uses: the marker of a stray process)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{entry}/cmdline").read_bytes() == f"sleep\0{seconds}\0".encode() and alive(int(entry)):
                found.append(int(entry))
        except OSError:
            continue
    return found


def _start_stray(argv: list[str], marker: str) -> tuple[subprocess.Popen, int]:
    """Start `argv` as the pool starts a worker (a session of its own, killed by process group); it starts a
    `sleep` in yet another session, as a candidate could. Returns the process and the sleep's pid."""
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    stray = wait_for(lambda: _sleeping(marker), 10, "the stray sleep starts")
    return proc, stray[0]


STRAY = ("import subprocess, sys, time; subprocess.Popen(['sleep', sys.argv[1]], start_new_session=True); "
         "print('ready', flush=True); time.sleep(600)")


def test_a_process_that_leaves_the_workers_group_still_ends_with_the_sandbox(tmp_path):
    marker = f"{600 + os.getpid() % 1000}.{time.monotonic_ns() % 10**6}"
    # Without the sandbox a new session escapes the pool's killpg: the gap the PID namespace closes.
    proc, stray = _start_stray([sys.executable, "-c", STRAY, marker], marker)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(0.5)
        assert alive(stray), "a new session died with the group: this control shows nothing"
    finally:
        os.kill(stray, signal.SIGKILL)
    marker += "1"
    proc, stray = _start_stray(wrap_command([sys.executable, "-c", STRAY, marker], tmp_path, "cpu"), marker)
    os.killpg(proc.pid, signal.SIGKILL)  # what the pool does on a timeout or a stop signal
    proc.wait(timeout=10)
    wait_for(lambda: not _sleeping(marker), 5, "the stray process ends with the sandbox's PID namespace")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_command_leaves_no_sandbox_process(signum):
    with spinning(VERIFY_HANG) as (proc, worker):
        tree = _descendants(proc.pid)
        assert _command(worker).endswith("bwrap"), "the pool did not start its worker in bubblewrap"
        # the keeper's and the worker's (which joins the keeper's namespace: no init of its own)
        assert len([p for p in tree if _command(p).endswith("bwrap")]) == 2
        assert any(_command(p) == sys.executable for p in tree)  # the worker itself, under them
        proc.send_signal(signum)
        proc.wait(timeout=10)
        wait_for(lambda: not [p for p in tree if alive(p)], 5, f"every process under the command ends: {tree}")


# ---- the pool ----------------------------------------------------------------------------------------------------
def _request(candidate: Path, **options):
    return make_request(load_problem(PROBLEM), candidate.read_text(), candidate.stem, trials=2, timing=False,
                        **options)


def test_a_sandboxed_pool_verifies_an_honest_candidate_and_says_where_it_ran(tmp_path):
    with WorkerPool(PoolConfig(device=DEVICE, workdir=str(tmp_path / "pool"))) as pool:
        verdict = pool.verify(_request(CANDIDATES / "add_relu_triton.py"))
        worker = pool.workers[0].proc.pid
        assert _command(worker).endswith("bwrap")
        assert verdict.status == "correct", verdict.message
        assert pool.info["os_sandbox"] == BUBBLEWRAP and pool.info["network_isolated"] is True
        assert verdict.containment == pool.info["containment"] and verdict.containment.startswith("bubblewrap:")


@pytest.mark.skipif(not ON_GPU, reason="native code runs only on a GPU (on the CPU it is compile-checked)")
def test_a_cuda_candidate_calling_system_leaves_nothing_on_the_machine(tmp_path):
    markers = [Path(p) / "kernelsearch-escape-marker" for p in ("/", "/root", "/tmp", "/var/tmp")]
    for marker in markers:
        marker.unlink(missing_ok=True)
    with WorkerPool(PoolConfig(device=DEVICE, workdir=str(tmp_path / "pool"))) as pool:
        verdict = pool.verify(_request(ESCAPES / "system_call_cuda.py"))
        assert verdict.status in ("correct", "rejected"), verdict.message  # it computes add+ReLU, and cannot act
    assert [m for m in markers if m.exists()] == []
    wait_for(lambda: not _sleeping("600.4242"), 5, "the candidate's stray process ends with its worker")


def test_the_keeper_shares_the_workers_pid_namespace_and_stays_out_of_its_reach(tmp_path):
    """The worker joins its keeper's PID namespace (CUDA IPC needs it); the candidate reaches neither the keeper's
    memory nor its file system nor its descriptors (its /proc entry is covered, and it is undumpable), and its
    signals do not end it. The run-time audit is off: the OS alone must hold."""
    config = PoolConfig(device=DEVICE, workdir=str(tmp_path / "pool"), extra_env={"KS_AUDIT": "off"})
    with WorkerPool(config) as pool:
        verdict = pool.verify(_request(CANDIDATES / "escapes" / "reach_the_keeper.py"))
        assert verdict.status == "correct", verdict.message
        keeper, worker = pool.workers[0].keeper.proc.pid, pool.workers[0].proc.pid
        assert _command(keeper).endswith("bwrap") and _command(worker).endswith("bwrap")
        assert _pid_namespace_of_children(keeper) == _pid_namespace_of_children(worker)
        assert _pid_namespace_of_children(worker) != os.readlink("/proc/self/ns/pid")
        assert _ns_pid(_children(keeper)[0]) == 1  # the namespace's first process: its /proc entry is the covered one


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _pid_namespace_of_children(pid: int) -> str:
    """The PID namespace of the processes bwrap `pid` started (bwrap itself stays in ours)."""
    return os.readlink(f"/proc/{_children(pid)[0]}/ns/pid")


def _ns_pid(pid: int) -> int:
    """Process `pid`'s number in its own PID namespace."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1])
