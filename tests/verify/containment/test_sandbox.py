"""Worker containment: what a candidate's process can and cannot see."""
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ...conftest import CANDIDATES, PROBLEMS
from kernelsearch.problem import load_problem
from kernelsearch.verify import PoolConfig, WorkerPool, make_request
from kernelsearch.verify.containment import sandbox
from kernelsearch.verify.containment.sandbox import limit_process, worker_env


def test_credentials_never_reach_a_worker(monkeypatch, tmp_path):
    for name in ("OPENAI_API_KEY", "NVIDIA_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"):
        monkeypatch.setenv(name, "s3cret")
    monkeypatch.setenv("KS_HARMLESS", "1")
    env = worker_env("cpu", None, tmp_path)
    assert not [k for k, v in env.items() if v == "s3cret"]
    assert env["KS_HARMLESS"] == "1"
    assert env["TRITON_INTERPRET"] == "1" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)


def test_a_key_variable_named_by_the_user_is_hidden_too(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_R1", "s3cret")  # --api-key-env MY_R1: nothing in the name says it is secret
    assert "MY_R1" in worker_env("cpu", None, tmp_path)
    assert "MY_R1" not in worker_env("cpu", None, tmp_path, hidden=("MY_R1",))


def test_gpu_worker_sees_only_its_gpu(tmp_path):
    env = worker_env("cuda", 3, tmp_path)
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and "TRITON_INTERPRET" not in env


@pytest.mark.skipif(os.geteuid() != 0, reason="an unprivileged user may not be allowed a network namespace")
def test_worker_runs_without_network(pool, verify):
    verify("elementwise_add_relu", CANDIDATES / "add_relu_triton.py", trials=1)  # the worker is up
    assert pool.info["network_isolated"] is True


def test_worker_is_another_process_in_its_own_directory(pool, verify):
    verify("elementwise_add_relu", CANDIDATES / "add_relu_triton.py", trials=1)
    assert pool.info["pid"] != os.getpid()
    assert (Path(pool.root) / "worker0").is_dir()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_is_set_to_die_with_the_process_that_starts_it():
    # Asked from inside the started program, so the flag is seen to survive the network namespace and exec.
    probe = ("import ctypes; v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); "  # GET
             "print(v.value)")
    done = subprocess.run([sys.executable, "-c", probe], preexec_fn=limit_process(None, 2**30), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == signal.SIGKILL


# ---- the OS sandbox's command line (bubblewrap need not be installed) -----------------------------------------
def _mounts(command: list[str]) -> list[tuple[str, ...]]:
    """The mount options of a bwrap command line, in order: (option, target) or (option, source, target)."""
    assert command[0] == "bwrap"
    found, i = [], 1
    while command[i] != "--":
        option = command[i]
        width = {"--tmpfs": 1, "--ro-bind": 2, "--bind": 2, "--dev-bind": 2, "--dev": 1, "--proc": 1,
                 "--chdir": 1, "--cap-drop": 1}.get(option, 0)
        if option not in ("--cap-drop", "--chdir") and width:
            found.append(tuple(command[i:i + 1 + width]))
        i += 1 + width
    return found


@pytest.fixture
def caller(tmp_path, monkeypatch):
    """A caller working in a project that holds its venv, its source and its runs; a pool beside it."""
    project, home = tmp_path / "project", tmp_path / "home"
    for directory in (project / ".venv", project / "src", project / "runs", home, tmp_path / "pool" / "worker0"):
        directory.mkdir(parents=True)
    monkeypatch.setattr(sandbox, "ALWAYS_HIDDEN", ())  # tmp_path is in /tmp, hidden whole: look at the rules alone
    monkeypatch.setattr(sys, "prefix", str(project / ".venv"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    return SimpleNamespace(project=str(project), home=str(home), worker=tmp_path / "pool" / "worker0",
                           env={"PYTHONPATH": os.pathsep.join([str(project / "src"), "."])})


def test_the_callers_places_are_hidden_and_what_the_worker_runs_shown_again(caller):
    command = sandbox.wrap_command(["python", "-m", "w"], caller.worker, "cpu", caller.env)
    mounts = _mounts(command)
    assert mounts[:3] == [("--ro-bind", "/", "/"), ("--dev", "/dev"), ("--proc", "/proc")]
    hide_project = mounts.index(("--tmpfs", caller.project))
    assert ("--tmpfs", caller.home) in mounts and ("--tmpfs", str(caller.worker.parent)) in mounts  # other workers
    for kept in (f"{caller.project}/.venv", f"{caller.project}/src"):
        assert mounts.index(("--ro-bind", kept, kept)) > hide_project
    assert not [m for m in mounts if m[-1] == caller.project and m[0] != "--tmpfs"]  # PYTHONPATH=. shows nothing
    worker = mounts.index(("--bind", str(caller.worker), str(caller.worker)))
    assert all(i <= worker for i, m in enumerate(mounts) if str(caller.worker).startswith(m[-1]))  # over them
    assert command[command.index("--chdir") + 1] == str(caller.worker)
    assert command[command.index("--") + 1:] == ["python", "-m", "w"]
    for option in ("--unshare-pid", "--unshare-net", "--die-with-parent"):
        assert option in command
    assert command[command.index("--cap-drop") + 1] == "ALL"  # as root bwrap would keep every capability


def test_a_hidden_directory_inside_a_kept_one_is_covered_after_it(caller, tmp_path):
    # PYTHONPATH names a directory that holds the pool: shown, then the pool covered, then the worker shown
    env = {"PYTHONPATH": str(tmp_path)}
    mounts = _mounts(sandbox.wrap_command(["w"], caller.worker, "cpu", env, hidden=(str(tmp_path.parent),)))
    order = [mounts.index(m) for m in [("--tmpfs", str(tmp_path.parent)), ("--ro-bind", str(tmp_path), str(tmp_path)),
                                       ("--tmpfs", str(caller.worker.parent)),
                                       ("--bind", str(caller.worker), str(caller.worker))]]
    assert order == sorted(order)


def test_a_caller_working_in_the_root_hides_no_system_directory(caller, monkeypatch):
    monkeypatch.chdir("/")
    mounts = _mounts(sandbox.wrap_command(["w"], caller.worker, "cpu", caller.env))
    assert not [m for m in mounts if m[0] == "--tmpfs" and m[1] in ("/", "/usr")]


def test_gpu_nodes_are_passed_only_to_cuda_workers(caller, monkeypatch):
    nodes = {"/dev/nvidia*": ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"], "/run/nvidia*": []}
    monkeypatch.setattr(sandbox.glob, "glob", lambda pattern: nodes[pattern])
    cuda = _mounts(sandbox.wrap_command(["w"], caller.worker, "cuda", caller.env))
    assert [m for m in cuda if m[0] == "--dev-bind"] == [("--dev-bind", n, n) for n in sorted(nodes["/dev/nvidia*"])]
    assert not [m for m in _mounts(sandbox.wrap_command(["w"], caller.worker, "cpu", caller.env))
                if m[0] == "--dev-bind"]


def test_why_there_is_no_os_sandbox(monkeypatch, tmp_path):
    monkeypatch.setenv(sandbox.SANDBOX_VARIABLE, "off")
    assert sandbox.bubblewrap_problem() == "turned off (KS_OS_SANDBOX=off)"
    monkeypatch.delenv(sandbox.SANDBOX_VARIABLE)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    sandbox._probe_bubblewrap.cache_clear()
    try:
        assert sandbox.bubblewrap_problem() == "bwrap not installed"
        assert sandbox.containment("none: bwrap not installed", True).startswith(
            "no OS sandbox (bwrap not installed): scrubbed environment, resource limits, no network;")
    finally:
        sandbox._probe_bubblewrap.cache_clear()


def test_without_the_os_sandbox_the_worker_starts_as_it_always_did(tmp_path):
    problem = load_problem(PROBLEMS / "elementwise_add_relu.py")
    candidate = CANDIDATES / "add_relu_triton.py"
    with WorkerPool(PoolConfig(device="cpu", os_sandbox=False, workdir=str(tmp_path))) as pool:
        verdict = pool.verify(make_request(problem, candidate.read_text(), "c", trials=1, timing=False))
        worker = pool.workers[0].proc.pid
        assert Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")[:3] == [
            sys.executable.encode(), b"-m", b"kernelsearch.verify.worker"]
    assert verdict.status == "correct", verdict.message
    assert pool.info["os_sandbox"] == "none: turned off by the caller"
    assert verdict.containment.startswith("no OS sandbox (turned off by the caller)")
