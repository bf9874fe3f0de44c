"""Worker containment: what a candidate's process can and cannot see."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kernelsearch.verify.sandbox import limit_process, worker_env

from .conftest import CANDIDATES


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
