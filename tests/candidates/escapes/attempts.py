"""What a candidate's Python could try once it has reached os, sys, gc, ctypes or subprocess (the static checks
stop the plain spellings; the audit hook must stop the rest). tests/verify/containment/test_audit.py copies this file into a worker
directory as candidate.py, installs the hook in a fresh interpreter, imports it as the worker imports a candidate
(so that these frames are the candidate's) and calls each entry of ATTEMPTS (each must be refused and leave no
trace: markers under KS_TEST_MARKERS, the secret in KS_TEST_SECRET, files in KS_TEST_OUTSIDE, a connection to
KS_TEST_PORT) and of LEGIT (what kernels, Triton and torch do, which must still work).

Not a verifier candidate: it imports what a candidate may not."""
import ctypes
import gc
import importlib
import importlib.util
import inspect
import os
import socket
import subprocess
import sys
import traceback

MARKERS = os.environ["KS_TEST_MARKERS"]
SECRET = os.environ["KS_TEST_SECRET"]
OUTSIDE = os.environ["KS_TEST_OUTSIDE"]
PORT = int(os.environ["KS_TEST_PORT"])
HERE = os.path.dirname(os.path.abspath(__file__))  # the worker's directory


def marker(name: str) -> str:
    return os.path.join(MARKERS, name)


def touch(name: str) -> list[str]:
    return ["touch", marker(name)]


# ---- processes ------------------------------------------------------------------------------------------------
def shell_command():
    return os.system(" ".join(touch("shell_command")))


def subprocess_shell():
    return subprocess.run(["sh", "-c", " ".join(touch("subprocess_shell"))]).returncode


def popen_through_importlib():
    return importlib.import_module("subprocess").Popen(touch("popen_through_importlib")).wait()


def fork_exec_directly():
    r, w = os.pipe()
    argv = [a.encode() for a in touch("fork_exec_directly")]
    return sys.modules["_posixsubprocess"].fork_exec(
        argv, [b"/usr/bin/touch"], True, (), None, None, -1, -1, -1, -1, -1, -1, r, w, False, False, -1, None,
        None, None, -1, None, False)


def fresh_posixsubprocess():
    fresh = importlib.util.module_from_spec(importlib.util.find_spec("_posixsubprocess"))
    return fresh.fork_exec


def posix_spawn():
    return os.posix_spawn("/usr/bin/touch", touch("posix_spawn"), dict(os.environ))


def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return pid


def compiler_wrapper():
    """gcc -wrapper runs every subcommand through the given program: a shell here."""
    command = f"/bin/sh,-c,touch {marker('compiler_wrapper')};"
    return subprocess.run(["gcc", "-wrapper", command, "-x", "c", "-fsyntax-only", "/dev/null"]).returncode


def compiler_with_preload():
    env = {**os.environ, "LD_PRELOAD": os.path.join(HERE, "evil.so")}
    return subprocess.run(["g++", "--version"], env=env, capture_output=True).returncode


def nvidia_smi_changing_a_gpu():
    return subprocess.run(["nvidia-smi", "-pm", "1"]).returncode


def link_named_gcc_to_a_shell():
    link = os.path.join(HERE, "gcc")
    os.symlink("/bin/sh", link)
    return subprocess.run([link, "-c", " ".join(touch("link_named_gcc_to_a_shell"))]).returncode


def ninja_running_its_own_rule():
    with open(os.path.join(HERE, "build.ninja"), "w") as f:
        f.write(f"rule evil\n  command = touch {marker('ninja_running_its_own_rule')}\nbuild x: evil\n")
    return subprocess.run(["ninja"], cwd=HERE, capture_output=True).returncode


def ninja_flags_with_shell_syntax():
    """What load_inline(extra_cflags=["-O2; touch ..."]) writes: ninja hands the command to /bin/sh."""
    with open(os.path.join(HERE, "build.ninja"), "w") as f:
        f.write(f"cxx = c++\ncflags = -O2; touch {marker('ninja_flags_with_shell_syntax')}\n"
                "rule compile\n  command = $cxx $cflags -c $in -o $out\nbuild x.o: compile x.cpp\n")
    return subprocess.run(["ninja", "-v"], cwd=HERE, capture_output=True).returncode


def load_inline_flag_injection():
    """extra_cflags land unquoted in the build.ninja that ninja runs through /bin/sh."""
    from torch.utils.cpp_extension import load_inline
    return load_inline(name="ks_injected", cpp_sources="int one() { return 1; }", functions=["one"],
                       extra_cflags=[f"-O2; touch {marker('load_inline_flag_injection')}"])


def signal_the_parent():
    return os.kill(os.getppid(), 0)


# ---- native code and the interpreter --------------------------------------------------------------------------
def ctypes_libc_system():
    return ctypes.CDLL(None).system(" ".join(touch("ctypes_libc_system")).encode())


def ctypes_python_api():
    """ctypes.pythonapi was loaded before the hook: calling through it is refused all the same."""
    return ctypes.pythonapi.PyRun_SimpleString(f"open({marker('ctypes_python_api')!r}, 'w')".encode())


def subinterpreter():
    return importlib.import_module("_xxsubinterpreters").create()


def second_audit_hook():
    sys.addaudithook(lambda event, args: open(marker("second_audit_hook"), "w").close())
    open(os.path.join(HERE, "after_hook.txt"), "w").close()  # an event the second hook would see


def trace_hook():
    return sys.settrace(lambda frame, event, arg: None)


def loader_variable():
    os.environ["LD_PRELOAD"] = os.path.join(HERE, "evil.so")


# ---- network --------------------------------------------------------------------------------------------------
def connect_to_loopback():
    return socket.create_connection(("127.0.0.1", PORT), timeout=5)


def unix_socket():
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)


def resolve_a_name():
    return socket.getaddrinfo("localhost", 80)


# ---- files ----------------------------------------------------------------------------------------------------
def read_outside():
    with open(SECRET) as f:
        return f.read()


def read_through_a_symlink():
    link = os.path.join(HERE, "secret_link")
    os.symlink(SECRET, link)
    with open(link) as f:
        return f.read()


def read_through_proc_root():
    with open("/proc/self/root" + SECRET) as f:
        return f.read()


def read_own_memory():
    with open("/proc/self/mem", "rb") as f:
        return f.read(16)


def read_etc_passwd():
    with open("/etc/passwd") as f:
        return f.read()


def list_outside():
    return os.listdir(OUTSIDE)


def write_outside():
    with open(os.path.join(OUTSIDE, "written.txt"), "w") as f:
        f.write("escaped")


def move_a_file_out():
    inside = os.path.join(HERE, "moved.txt")
    open(inside, "w").close()
    return os.rename(inside, os.path.join(OUTSIDE, "moved.txt"))


def leave_the_directory():
    return os.chdir(OUTSIDE)


# ---- the verifier's memory ------------------------------------------------------------------------------------
def every_live_object():
    return len(gc.get_objects())


def referrers():
    return len(gc.get_referrers(SECRET))


def own_frame():
    return sys._getframe().f_back


def inspect_currentframe():
    return inspect.currentframe().f_back


def inspect_stack():
    return len(inspect.stack())


def walk_the_stack():
    return [f for f, _ in traceback.walk_stack(None)]


def traceback_frames():
    try:
        raise ValueError("look up")
    except ValueError as e:
        return e.__traceback__.tb_frame.f_back


def generator_frames():
    def gen():
        yield 1
    g = gen()
    next(g)
    return g.gi_frame.f_back


def other_threads_frames():
    return sys._current_frames()


ATTEMPTS = {f.__name__: f for f in [
    shell_command, subprocess_shell, popen_through_importlib, fork_exec_directly, fresh_posixsubprocess,
    posix_spawn, fork, compiler_wrapper, compiler_with_preload, nvidia_smi_changing_a_gpu, link_named_gcc_to_a_shell,
    ninja_running_its_own_rule, ninja_flags_with_shell_syntax, load_inline_flag_injection, signal_the_parent,
    ctypes_libc_system,
    ctypes_python_api, subinterpreter, second_audit_hook, trace_hook, loader_variable, connect_to_loopback,
    unix_socket, resolve_a_name, read_outside, read_through_a_symlink, read_through_proc_root, read_own_memory,
    read_etc_passwd, list_outside, write_outside, move_a_file_out, leave_the_directory, every_live_object,
    referrers, own_frame, inspect_currentframe, inspect_stack, walk_the_stack, traceback_frames,
    generator_frames, other_threads_frames,
]}


# ---- what must keep working -----------------------------------------------------------------------------------
def triton_kernel_in_the_interpreter():
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask),
                 mask=mask)

    x, y = torch.randn(1000), torch.randn(1000)
    out = torch.empty_like(x)
    add_kernel[(triton.cdiv(1000, 256),)](x, y, out, 1000, BLOCK=256)
    return bool(torch.equal(out, x + y))


def torch_ops():
    import torch
    a = torch.randn(64, 64)
    return bool(torch.allclose(torch.softmax(a @ a.T, -1).sum(-1), torch.ones(64), atol=1e-5))


def files_in_the_worker_directory():
    import tempfile
    path = os.path.join(HERE, "scratch", "note.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("kept")
    with tempfile.NamedTemporaryFile(suffix=".ptx") as tmp:  # TMPDIR is the worker's directory
        tmp.write(b"x")
    with open(path) as f:
        return f.read() == "kept" and "note.txt" in os.listdir(os.path.dirname(path))


def warnings_and_logging():
    import logging
    import warnings
    warnings.warn("a kernel warning", stacklevel=2)
    logging.getLogger("kernel").warning("a kernel log line")
    return True


def tracebacks_as_text():
    try:
        raise ValueError("formatted")
    except ValueError:
        return "formatted" in traceback.format_exc()


def classes_made_by_the_standard_library():
    import collections
    import dataclasses
    import enum
    import typing
    point = collections.namedtuple("Point", "x y")
    color = enum.Enum("Color", "RED GREEN")
    pair = typing.NamedTuple("Pair", [("a", int)])
    box = dataclasses.make_dataclass("Box", ["w"])
    return point(1, 2).y == 2 and color.RED.value == 1 and pair(3).a == 3 and box(4).w == 4


def imports_and_source():
    import numpy
    importlib.import_module("numpy.polynomial")
    return numpy.add(1, 2) == 3 and "def imports_and_source" in inspect.getsource(imports_and_source)


def the_toolchain():
    version = subprocess.run(["g++", "--version"], capture_output=True, text=True)
    libs = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True)
    return version.returncode == 0 and "libc.so" in libs.stdout


def nvidia_smi_query():
    """torch.compile's Inductor asks nvidia-smi what the GPU is: allowed (where there is none, nothing runs)."""
    try:
        subprocess.run(["nvidia-smi", "-L"], capture_output=True)
    except FileNotFoundError:
        pass
    return True


def load_inline_cpp():
    """torch writes build.ninja, runs ninja, ninja runs c++ through /bin/sh: the path of every CUDA candidate."""
    from torch.utils.cpp_extension import load_inline
    module = load_inline(name="ks_legit", cpp_sources="int add(int a, int b) { return a + b; }", functions=["add"])
    return module.add(2, 3) == 5


LEGIT = {f.__name__: f for f in [
    triton_kernel_in_the_interpreter, torch_ops, files_in_the_worker_directory, warnings_and_logging,
    tracebacks_as_text, classes_made_by_the_standard_library, imports_and_source, the_toolchain, nvidia_smi_query,
    load_inline_cpp,
]}
