"""The run-time wall (verify/audit.py): an audit hook refuses what a candidate's Python could do once it has reached
os, gc, ctypes or subprocess, records each refusal where the candidate cannot erase it, and leaves what kernels,
Triton, torch and the toolchain do alone. Hooks cannot be removed, so each check runs in a fresh interpreter: the
candidate files under tests/candidates/escapes/ are imported there as the worker imports a candidate, from a
worker directory, after the hook is installed (CPU, Triton's interpreter)."""
from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ...conftest import CANDIDATES, ON_GPU, REPO

ESCAPES = CANDIDATES / "escapes"
SRC = REPO / "src"
SECRET_TEXT = "kernelsearch-test-secret-7f3a"

# Installs the hook as the worker does (after torch and triton are imported), imports the candidate from the
# worker directory, calls every entry of one of its dicts and prints what each did and what the hook recorded.
CHILD = r"""
import importlib.util, json, os, sys
import torch, triton
from kernelsearch.verify.containment import audit
worker, group, hooked = sys.argv[1], sys.argv[2], sys.argv[3] == "hooked"
refusals = audit.install(audit.worker_policy(worker, "cpu")) if hooked else (lambda: [])
spec = importlib.util.spec_from_file_location("ks_candidate_test", os.path.join(worker, "candidate.py"))
candidate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(candidate)
results = {}
for name, attempt in getattr(candidate, group).items():
    before = len(refusals())
    try:
        results[name] = {"value": repr(attempt())[:3000], "raised": None}
    except BaseException as e:
        results[name] = {"value": None, "raised": f"{type(e).__name__}: {e}"[:3000]}
    results[name]["refused"] = refusals()[before:]
print("RESULTS " + json.dumps(results), flush=True)
"""


@dataclass
class Run:
    results: dict
    root: Path
    listener: socket.socket

    @property
    def markers(self) -> list[str]:
        return sorted(os.listdir(self.root / "markers"))

    @property
    def outside(self) -> list[str]:
        return sorted(os.listdir(self.root / "outside"))


def run_child(root: Path, candidate: Path, group: str, hooked: bool = True, timeout: int = 300) -> Run:
    worker, outside, markers = root / "worker", root / "outside", root / "markers"
    for d in (worker, outside, markers):
        d.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text(SECRET_TEXT)
    shutil.copy(candidate, worker / "candidate.py")
    listener = socket.create_server(("127.0.0.1", 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KS_")}
    env.update(PYTHONPATH=str(SRC), TMPDIR=str(worker), HOME=str(worker), TRITON_INTERPRET="1",
               TRITON_CACHE_DIR=str(worker / "triton_cache"), TORCH_EXTENSIONS_DIR=str(worker / "torch_extensions"),
               CUDA_VISIBLE_DEVICES="",
               KS_TEST_MARKERS=str(markers), KS_TEST_SECRET=str(outside / "secret.txt"), KS_TEST_OUTSIDE=str(outside),
               KS_TEST_PORT=str(listener.getsockname()[1]))
    done = subprocess.run([sys.executable, "-c", CHILD, str(worker), group, "hooked" if hooked else "bare"],
                          cwd=worker, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert lines, f"the child printed no results (exit {done.returncode}): {done.stderr[-3000:]}"
    return Run(json.loads(lines[-1][len("RESULTS "):]), root, listener)


def names_in(path: Path, variable: str) -> list[str]:
    """The function names listed in `variable = {f.__name__: f for f in [...]}` of a candidate file."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == variable:
            return [n.id for n in ast.walk(node.value) if isinstance(n, ast.Name) and n.id not in ("f",)]
    raise AssertionError(f"{variable} not found in {path}")


ATTEMPTS = names_in(ESCAPES / "attempts.py", "ATTEMPTS")
LEGIT = names_in(ESCAPES / "attempts.py", "LEGIT")
# The event each attempt must be refused at: the rule that stops it, not some later accident.
REFUSED_AT = {
    "shell_command": "os.system", "subprocess_shell": "subprocess.Popen", "popen_through_importlib": "subprocess.Popen",
    "fork_exec_directly": "kernelsearch.fork_exec", "fresh_posixsubprocess": "import", "posix_spawn": "os.posix_spawn",
    "fork": "os.fork", "compiler_wrapper": "subprocess.Popen", "compiler_with_preload": "subprocess.Popen",
    "nvidia_smi_changing_a_gpu": "subprocess.Popen",
    "link_named_gcc_to_a_shell": "subprocess.Popen", "ninja_running_its_own_rule": "subprocess.Popen",
    "ninja_flags_with_shell_syntax": "subprocess.Popen", "load_inline_flag_injection": "subprocess.Popen",
    "signal_the_parent": "os.kill",
    "ctypes_libc_system": "ctypes.", "ctypes_python_api": "ctypes.", "subinterpreter": "import",
    "second_audit_hook": "sys.addaudithook", "trace_hook": "sys.settrace", "loader_variable": "os.putenv",
    "connect_to_loopback": "socket.", "unix_socket": "socket.__new__", "resolve_a_name": "socket.getaddrinfo",
    "read_outside": "open", "read_through_a_symlink": "open", "read_through_proc_root": "open",
    "read_own_memory": "open", "read_etc_passwd": "open", "list_outside": "os.listdir", "write_outside": "open",
    "move_a_file_out": "os.rename", "leave_the_directory": "os.chdir", "every_live_object": "gc.get_objects",
    "referrers": "gc.get_referrers", "own_frame": "sys._getframe", "inspect_currentframe": "sys._getframe",
    "inspect_stack": "sys._getframe", "walk_the_stack": "sys._getframe", "traceback_frames": "object.__getattr__",
    "generator_frames": "object.__getattr__", "other_threads_frames": "sys._current_frames",
}


@pytest.fixture(scope="module")
def attempts(tmp_path_factory) -> Run:
    return run_child(tmp_path_factory.mktemp("audit"), ESCAPES / "attempts.py", "ATTEMPTS")


@pytest.fixture(scope="module")
def legit(tmp_path_factory) -> Run:
    return run_child(tmp_path_factory.mktemp("audit_legit"), ESCAPES / "attempts.py", "LEGIT")


def test_every_attempt_names_the_rule_that_stops_it():
    assert set(REFUSED_AT) == set(ATTEMPTS)


@pytest.mark.parametrize("name", ATTEMPTS)
def test_attempt_is_refused_and_recorded(attempts, name):
    result = attempts.results[name]
    if name == "second_audit_hook":  # CPython drops the new hook and swallows the refusal: addaudithook returns None
        assert result["raised"] is None and result["value"] == "None", result
    else:
        assert result["raised"] and result["raised"].startswith("PermissionError: kernelsearch: refused"), result
    # recorded even though the candidate caught the exception (the harness catches everything)
    assert result["refused"] and result["refused"][0].startswith(f"refused {REFUSED_AT[name]}"), result


def test_refused_attempts_left_no_trace(attempts):
    assert attempts.markers == []  # no command ran: shells, touch, a second hook, ctypes' system
    assert attempts.outside == ["secret.txt"]  # nothing written or moved out of the worker's directory
    assert not any(SECRET_TEXT in (r["value"] or "") for r in attempts.results.values())
    attempts.listener.setblocking(False)
    with pytest.raises(BlockingIOError):  # nobody connected
        attempts.listener.accept()


@pytest.mark.parametrize("name", LEGIT)
def test_what_kernels_and_the_toolchain_do_still_works(legit, name):
    assert legit.results[name] == {"value": "True", "raised": None, "refused": []}


def test_switching_the_hook_off_from_python_does_not_work(tmp_path):
    """Rewriting the rules' module globals, audit.refusals, os.readlink, posixpath.realpath, builtins.len ...
    changes nothing: the installed hook runs on sealed copies and never calls what a candidate can replace."""
    run = run_child(tmp_path, ESCAPES / "tamper.py", "TAMPER")
    result = run.results["switch_off_then_escape"]
    assert result["raised"] is None, result
    value = ast.literal_eval(result["value"])
    assert all(o.startswith("kernelsearch: refused") for o in value["outcomes"]), value
    assert value["replacements_called"] == []
    assert [r.split(":")[0] for r in result["refused"]] == ["refused os.system", "refused open"]
    assert run.markers == []


@pytest.mark.parametrize("extra_cuda_cflags, refused", [
    (["-O3", "--use_fast_math", "-Xptxas", "-v"], None),
    (["-ccbin", "/bin/sh"], "the flag '-ccbin'"),
    (["-O3", "$(touch /tmp/x)"], "shell syntax"),
    (["-Xcompiler", "-fplugin=/tmp/evil.so"], "-fplugin"),
    (["-o", "/etc/evil"], "an output outside"),
])
def test_torch_s_cuda_build_file(tmp_path, monkeypatch, extra_cuda_cflags, refused):
    """The build.ninja that load_inline writes on a GPU machine (torch's own writer, the flags it passes nvcc),
    judged as ninja is started in its directory: allowed as torch writes it, refused with a candidate's flags."""
    import torch.utils.cpp_extension as cpp

    from kernelsearch.verify.containment import audit

    build = tmp_path / "torch_extensions" / "ks_cuda"
    build.mkdir(parents=True)
    monkeypatch.setattr(cpp, "_join_cuda_home", lambda *parts: "/usr/local/cuda/" + "/".join(parts))
    includes = [f"-isystem {p}" for p in cpp.include_paths()]
    common = ["-DTORCH_EXTENSION_NAME=ks_cuda", "-DTORCH_API_INCLUDE_EXTENSION_H", *includes]
    cuda = [*common, *cpp.COMMON_NVCC_FLAGS, "-gencode=arch=compute_90,code=sm_90", "--compiler-options", "'-fPIC'",
            *extra_cuda_cflags, "-std=c++20"]
    sources = [str(build / "main.cpp"), str(build / "cuda.cu")]
    cpp._write_ninja_file(path=str(build / "build.ninja"), cflags=[*common, "-fPIC", "-std=c++20"], post_cflags=None,
                          cuda_cflags=cuda, cuda_post_cflags=None, cuda_dlink_post_cflags=None, sycl_cflags=None,
                          sycl_post_cflags=None, sycl_dlink_post_cflags=None, sources=sources,
                          objects=["main.o", "cuda.cuda.o"], ldflags=["-shared", "-L/usr/local/cuda/lib64", "-lcudart"],
                          library_target="ks_cuda.so", with_cuda=True, with_sycl=False)
    rules = audit._sealed(audit.worker_policy(tmp_path, "cuda"))  # the rules as the hook runs them
    why = rules["ninja_refusal"](["-v", "-j", "2"], str(build.resolve()))
    if refused is None:
        assert why is None, why
    else:
        assert why is not None and refused in why, why


def test_a_cuda_worker_notes_reads_outside_the_roots_and_refuses_the_rest(tmp_path):
    """The CUDA policy: reads outside the roots are noted (sent to the log), not refused; writes, processes and
    ctypes from the candidate's code are refused as on the CPU."""
    (tmp_path / "worker").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_TEXT)
    (tmp_path / "worker" / "candidate.py").write_text(
        "import ctypes, os\n"
        f"def read():\n    return open({str(secret)!r}).read()\n"
        f"def write():\n    open({str(tmp_path / 'out.txt')!r}, 'w')\n"
        "def shell():\n    os.system('true')\n"
        "def native():\n    ctypes.CDLL(None)\n")
    code = ("import importlib.util, sys\nfrom kernelsearch.verify.containment import audit\n"
            "refusals = audit.install(audit.worker_policy('.', 'cuda'))\n"
            "spec = importlib.util.spec_from_file_location('ks_candidate_cuda', 'candidate.py')\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print(m.read())\n"
            "for attempt in (m.write, m.shell, m.native):\n"
            "    try:\n        attempt()\n    except PermissionError as e:\n        print(e)\n"
            "print(audit.notes())\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "worker", capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC), "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    lines = done.stdout.splitlines()
    assert lines[0] == SECRET_TEXT, done
    assert [line.split(":")[1].strip() for line in lines[1:4]] == ["refused open", "refused os.system",
                                                                    "refused ctypes.dlopen"], done
    assert str(secret) in lines[4], done
    assert not (tmp_path / "out.txt").exists()


def test_nothing_install_leaves_leads_to_the_hook_s_state(tmp_path):
    """The fork_exec stand-in has no globals and holds a generator and a lock; the reader holds a name and
    sys.audit. (The hook itself and its sealed namespace are referred to by nothing Python can reach.)"""
    run = run_child(tmp_path, ESCAPES / "tamper.py", "REACH")
    assert ast.literal_eval(run.results["what_install_left_within_reach"]["value"]) == {
        "fork_exec replaced everywhere": True, "stand-in globals": ["__builtins__"],
        "stand-in holds": ["generator", "lock"], "reader holds": ["builtin_function_or_method", "str"]}


def test_the_hook_is_installed_once(tmp_path):
    """A second install (or any other hook) is refused by the first, which stays."""
    (tmp_path / "worker").mkdir()
    code = ("import sys; from kernelsearch.verify.containment import audit\n"
            f"audit.install(audit.worker_policy({str(tmp_path / 'worker')!r}, 'cpu'))\n"
            "try:\n    audit.install(audit.worker_policy('/', 'cpu'))\nexcept PermissionError as e:\n    print(e)\n"
            "try:\n    open('/etc/passwd')\nexcept PermissionError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "worker", capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120)
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and "refused" in lines[0] and "refused open: reading /etc/passwd" in lines[1], done


def test_the_hook_code_looks_up_no_module_attribute_at_run_time():
    """What the sealing relies on: the rules name no module (os, sys, re ...) inside a function, so a candidate
    that replaces os.readlink or re.compile's results cannot reach the hook through them."""
    import types

    from kernelsearch.verify.containment import audit_processes, audit_rules, audit_values

    modules = {name for m in (audit_values, audit_processes, audit_rules) for name, v in vars(m).items()
               if isinstance(v, types.ModuleType)}
    for module in (audit_values, audit_processes, audit_rules):
        for name, value in vars(module).items():
            if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
                codes = [value.__code__, *(c for c in value.__code__.co_consts if isinstance(c, types.CodeType))]
                used = {n for code in codes for n in code.co_names} & modules
                assert not used, f"{module.__name__}.{name} looks up {used} at run time"


# ---- the escapes that pass the static checks, end to end -------------------------------------------------------
SHELL_MARKER = Path("/tmp/kernelsearch_escape_shell_through_reduce")
WRAPPER_MARKER = Path("/tmp/kernelsearch_escape_compiler_wrapper")
TRIAL = r"""
import torch
def trial():  # stands in for the verifier's trial: the reference's answer is a local of the caller
    a, b = torch.randn(16, 1000), torch.randn(16, 1000)
    refs = [torch.relu(a + b)]
    out = candidate.ModelNew()(a, b)
    return bool(torch.equal(out, refs[0]))
"""


@pytest.mark.parametrize("name", ["shell_through_reduce", "answer_from_gc", "answer_from_frames"])
def test_the_escapes_pass_the_static_checks_and_work_without_the_hook(tmp_path, name):
    from kernelsearch.verify.checks.static_checks import check_source

    source = (ESCAPES / f"{name}.py").read_text()
    assert check_source(source).ok
    SHELL_MARKER.unlink(missing_ok=True)
    (tmp_path / "escape.py").write_text(source + TRIAL.replace("candidate.", "") + "\nLEGIT = {'trial': trial}\n")
    run = run_child(tmp_path, tmp_path / "escape.py", "LEGIT", hooked=False)
    try:
        if name == "shell_through_reduce":
            assert SHELL_MARKER.exists()  # the shell command ran
        else:
            assert run.results["trial"]["value"] == "True", run.results  # it returned the reference's own answer
    finally:
        SHELL_MARKER.unlink(missing_ok=True)


@pytest.mark.skipif(ON_GPU, reason="the CPU worker's Triton interpreter")
@pytest.mark.parametrize("name", ["shell_through_reduce", "answer_from_gc", "answer_from_frames"])
def test_the_verifier_rejects_the_escapes(verify, name):
    SHELL_MARKER.unlink(missing_ok=True)
    v = verify("elementwise_add_relu", ESCAPES / f"{name}.py")
    assert v.status == "rejected", f"{v.status}: {v.message}"
    assert "refused at run time" in v.message
    assert not SHELL_MARKER.exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None or ON_GPU, reason="the CPU compile check needs nvcc")
def test_the_verifier_rejects_a_compiler_wrapper_in_extra_cflags(verify):
    WRAPPER_MARKER.unlink(missing_ok=True)
    v = verify("elementwise_add_relu", ESCAPES / "compiler_wrapper_cuda.py")
    assert v.status == "rejected", f"{v.status}: {v.message}"
    assert "refused subprocess.Popen: the flag '-wrapper'" in v.message
    assert not WRAPPER_MARKER.exists()
