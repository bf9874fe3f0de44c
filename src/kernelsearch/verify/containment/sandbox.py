"""Containment for worker processes: scrubbed environment, resource limits, no network where Linux allows, and
an OS sandbox (bubblewrap) where one works: native code in a candidate (load_inline C++) is seen by no Python
check, so only the operating system can keep it from the caller's files, the network and other processes."""
from __future__ import annotations

import ctypes
import functools
import glob
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .namespaces import Namespaces

# Variables that look like credentials never reach a worker (a candidate could read os.environ via C++).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
PR_SET_PDEATHSIG = 1


def worker_env(device: str, gpu: int | None, workdir: Path, hidden: tuple[str, ...] = ()) -> dict[str, str]:
    """The worker's environment: no variable that looks secret, nor any named in `hidden` (an API key variable
    given by name, whatever it is called)."""
    env = {k: v for k, v in os.environ.items() if not SECRET_NAME.search(k) and k not in hidden}
    package_root = str(Path(__file__).resolve().parents[2])  # .../src, so the worker imports this very code
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["KS_DEVICE"] = device
    env["TMPDIR"] = str(workdir)
    env["TORCH_EXTENSIONS_DIR"] = str(workdir / "torch_extensions")
    env["TRITON_CACHE_DIR"] = str(workdir / "triton_cache")
    env["HOME"] = str(workdir)
    if device == "cuda":
        env.pop("TRITON_INTERPRET", None)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    else:
        env["TRITON_INTERPRET"] = "1"
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def limit_process(memory_bytes: int | None, file_bytes: int, network: bool = True):
    """A preexec_fn for the worker: caps file size (and address space on the CPU, where CUDA's huge virtual
    reservations are not in play), drops the network by entering a new network namespace (unless `network` is
    False: bubblewrap makes its own), and makes the worker die with the process that starts it. Call it in that
    process (the parent): it notes the parent's pid and loads libc there, since a forked child of a threaded
    program should not take the loader's locks."""
    parent = os.getpid()
    libc = _libc()

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        if network:
            _drop_network(libc)
        _die_with_parent(libc, parent)  # last: nothing after it changes credentials, which would clear it

    return apply


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _die_with_parent(libc, parent: int) -> None:
    """SIGKILL this process when its parent dies, however it dies (SIGKILL included, which no handler sees).

    Linux sends it when the parent *thread* that forked us exits: the pool starts each worker from that worker's
    own long-lived thread, which ends only when the pool closes. The flag survives exec, not fork: the worker's own
    children (nvcc, ninja, anything the candidate starts) do not get it. If our parent is SIGKILLed they are
    reparented to init (or the nearest subreaper) and run until they end on their own; they keep the worker's
    process group, so `kill -KILL -- -<worker pid>` still finds them. When the parent ends any other way, the pool
    kills the whole group (live_pools), so they go too."""
    if libc is None:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died between fork and prctl: no signal will ever come
        os._exit(1)


def _drop_network(libc) -> None:
    if libc is None:
        return
    if os.geteuid() == 0:
        libc.unshare(CLONE_NEWNET)
        return
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return
    try:  # map our own ids so that files keep their owner inside the namespace
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError:
        pass


def network_isolated() -> bool:
    """True inside a network namespace with nothing but loopback (called in the worker, reported once)."""
    import socket
    try:
        return {name for _, name in socket.if_nameindex()} <= {"lo"}
    except OSError:
        return False


# ---- the OS sandbox: bubblewrap ------------------------------------------------------------------------------
# The pool tells the worker what it started it in (BUBBLEWRAP or "none: why"); the worker checks it from inside.
SANDBOX_VARIABLE = "KS_OS_SANDBOX"
BUBBLEWRAP = "bubblewrap"
# Hidden from a sandboxed worker, besides the caller's home and working directory (where run directories and
# store.sqlite live): other users' homes, other programs' and pools' temporary files, mounted data, and /run,
# whose sockets (docker.sock, D-Bus) a network namespace does not cut off.
ALWAYS_HIDDEN = ("/home", "/root", "/tmp", "/var/tmp", "/run", "/mnt", "/media")
# A directory that holds one of these is never hidden: a caller working in / would hide the system itself.
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/proc", "/dev", "/sys")


def bubblewrap_problem() -> str | None:
    """None where workers can run inside bubblewrap here, else why not, in a few words."""
    if os.environ.get(SANDBOX_VARIABLE) == "off":
        return f"turned off ({SANDBOX_VARIABLE}=off)"
    return _probe_bubblewrap()


@functools.cache
def _probe_bubblewrap() -> str | None:
    """Once per process. bwrap may be installed and still be refused namespaces (a container's seccomp profile, a
    kernel without unprivileged user namespaces), so start a real sandbox around `python -c pass` (~50 ms)."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if shutil.which("bwrap") is None:
        return "bwrap not installed"
    with tempfile.TemporaryDirectory(prefix="kernelsearch-probe-") as workdir:
        try:
            done = subprocess.run(wrap_command([sys.executable, "-c", "pass"], Path(workdir), "cpu"),
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"bwrap cannot start here: {e}"
    if done.returncode != 0:
        return "bwrap cannot start here: " + (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return None


def wrap_command(argv: list[str], worker_dir: Path, device: str, env: dict[str, str] | None = None,
                 hidden: tuple[str, ...] = (), join: Namespaces | None = None, info_fd: int | None = None,
                 shm: Path | None = None, as_pid_1: bool = False, shown: tuple[str, ...] = ()) -> list[str]:
    """`argv` inside bubblewrap. The whole file system read-only. The caller's home and working directory, the
    pool's directory (other workers' files and logs), the ALWAYS_HIDDEN places and `hidden` replaced by empty
    directories, in which only what the worker runs shows again, read-only (the interpreter, its import path, and
    the PATH, PYTHONPATH, LD_LIBRARY_PATH and CUDA_HOME of `env`), and `worker_dir`, writable. A fresh /dev (with
    the GPU's nodes on CUDA) and /proc; new PID, IPC, UTS and network namespaces; no capabilities (as root, bwrap
    would keep them, and CAP_SYS_ADMIN can remount / writable); killed when the process that started bwrap dies.

    `join`: the user and PID namespaces of another sandbox (its keeper's, namespaces.py) instead of a new PID
    namespace. `info_fd`: bwrap writes its child's pid there. `shm`: a directory shown as /dev/shm, shared with the
    keeper (CUDA IPC between them needs one: namespaces.shared_shm). `as_pid_1`: the
    command is its PID namespace's first process, with no bwrap process there (a process that joins the namespace
    could read that one's memory, descriptors and file system: it is not undumpable, as the keeper is). `shown`:
    more paths shown read-only inside the hidden places (the pool's build cache).

    No --new-session: the pool starts bwrap in a session of its own, without a controlling terminal (so no
    TIOCSTI), and a new session would put the worker out of reach of the pool's killpg."""
    env = os.environ if env is None else env
    worker = os.path.abspath(worker_dir)
    roots = _hidden_roots([*ALWAYS_HIDDEN, str(Path.home()), os.getcwd(), os.path.dirname(worker), *hidden])
    keep = _program_paths(env) + [path for path in shown if os.path.exists(path)]
    command = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if join:  # The namespace's first process is the keeper. Its /proc entry is covered: a worker in a user namespace
        command += ["--tmpfs", "/proc/1"]  # of its own opened its root and cwd links, undumpable or not.
    if device == "cuda":
        for node in sorted(glob.glob("/dev/nvidia*")):  # nvidia0.., nvidiactl, nvidia-uvm, nvidia-caps (MIG)
            command += ["--dev-bind", node, node]
        keep += glob.glob("/run/nvidia*")  # driver roots and the persistence daemon, where a machine keeps them
    if shm is not None:
        command += ["--bind", os.path.realpath(shm), "/dev/shm"]
    if info_fd is not None:
        command += ["--info-fd", str(info_fd)]
    pid_namespace = join.options() if join else ["--unshare-pid", *(["--as-pid-1"] if as_pid_1 else [])]
    mounts = [("--tmpfs", "", root) for root in roots]
    # A kept path equal to a hidden root would show it again (PYTHONPATH=. in the caller's working directory).
    mounts += [("--ro-bind", os.path.realpath(path), name) for path in keep for name in _names(path)
               if any(_within(name, root) for root in roots) and name not in roots]
    mounts += [("--bind", os.path.realpath(worker), name) for name in _names(worker)]
    return command + _mount_options(mounts) + [
        "--chdir", worker, *pid_namespace, "--unshare-ipc", "--unshare-uts", "--unshare-net",
        "--unshare-cgroup-try", "--cap-drop", "ALL", "--die-with-parent", "--", *argv]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _names(path: str) -> set[str]:
    """The name a path is given by and its real one: a worker may reach it through either."""
    return {os.path.abspath(path), os.path.realpath(path)}


def _hidden_roots(paths: list[str]) -> list[str]:
    """Real names of the directories to cover: those that exist, none that holds a system directory."""
    return sorted({real for real in map(os.path.realpath, filter(None, paths))
                   if os.path.isdir(real) and not any(_within(system, real) for system in SYSTEM_DIRS)})


def _program_paths(env) -> list[str]:
    """Where the worker's programs are read from: the interpreter's prefixes and import path (a user's
    site-packages and editable installs included; sys.path[0] is the caller's script directory or working
    directory, not the worker's), and what the worker's environment names."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable), *sys.path[1:]]
    for variable in ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH"):
        paths += env.get(variable, "").split(os.pathsep)
    paths += [env.get("CUDA_HOME", ""), env.get("CUDA_PATH", "")]
    return [p for p in paths if os.path.isabs(p) and os.path.exists(p)]


def _mount_options(mounts: list[tuple[str, str, str]]) -> list[str]:
    """bwrap options for (option, source, target) mounts: outermost first, since a mount lands inside those made
    before it (a hidden directory inside a kept one gets covered after it is shown); at one target, cover, then
    show, then the worker's directory. A mount is left out where the one it lands in shows the same already (a
    tmpfs in a tmpfs; a kept directory inside a kept parent)."""
    rank = {"--tmpfs": 0, "--ro-bind": 1, "--bind": 2}
    made: list[tuple[str, str, str]] = []
    options: list[str] = []
    for option, source, target in sorted(set(mounts), key=lambda m: (m[2].count("/"), m[2], rank[m[0]])):
        under = max((m for m in made if _within(target, m[2])), key=lambda m: len(m[2]), default=None)
        if under and under[0] == option and (option == "--tmpfs" or source == under[1] + target[len(under[2]):]):
            continue
        made.append((option, source, target))
        options += [option, target] if option == "--tmpfs" else [option, source, target]
    return options


def os_sandbox() -> str:
    """Called in the worker, for its "ready" event: "bubblewrap" where it runs in the sandbox the pool asked for,
    checked from inside (a read-only root, a PID namespace of its own or its keeper's), else "none: why"."""
    asked = os.environ.get(SANDBOX_VARIABLE, "none: started without an OS sandbox")
    if asked != BUBBLEWRAP:
        return asked
    if not os.statvfs("/").f_flag & os.ST_RDONLY:
        return "none: bubblewrap was asked for, but the root file system is writable"
    try:  # the first process: bwrap's in a namespace of its own; in the keeper's, covered (wrap_command's join)
        first = "" if not os.listdir("/proc/1") else Path("/proc/1/comm").read_text().strip()
    except OSError:
        first = "?"
    if first not in ("bwrap", ""):
        return "none: bubblewrap was asked for, but the worker shares the PID namespace of the machine"
    return BUBBLEWRAP


def containment(where: str, network_isolated: bool | None) -> str:
    """What a verdict says about where its candidate ran (`where`: what os_sandbox() said in the worker);
    docs/verifier.md, Containment, says it at length."""
    if where == BUBBLEWRAP:
        return ("bubblewrap: read-only file system but for the worker's own directory; the caller's home and "
                "working directory, other homes, /tmp, /run and the other workers hidden; no network; a PID "
                "namespace shared with its answer keeper alone; no capabilities")
    network = "no network" if network_isolated else "network reachable"
    return (f"no OS sandbox ({where.removeprefix('none: ')}): scrubbed environment, resource limits, {network}; "
            "native code can read and write whatever this user can")
