"""The audit hook (PEP 578) that audit.install puts in a worker: what a candidate may not do once it is there.

Refused always: starting any process but the toolchain (audit_processes), sockets, writing outside the worker's
directory, reading outside the read roots, gc's object walks, other threads' frames, tracing and profiling hooks,
another audit hook, subinterpreters, signals to other processes, resource limits, terminal ioctls, changing the
environment variables that steer the toolchain, fresh copies of _posixsubprocess (its fork_exec raises no event)
and ctypes (raw memory and native calls; on a CUDA worker only from the candidate's code, since a CUDA candidate
is native code anyway). Refused when the candidate's code is on the stack: frames (sys._getframe, tracebacks'
tb_frame, generators' gi_frame ...), unless a trusted function that only reads frames for itself (logging's
findCaller, traceback's formatters, typing, namedtuple) stands between the request and the candidate.

Sealing (audit.install): this module's functions run with a private copy of the globals and builtins, so that
a candidate that replaces os.readlink, posixpath.realpath or builtins.len changes nothing here. Hence every
outside function used at run time is bound below at import (before any candidate exists) and no attribute of a
module is looked up at run time; arguments are judged as str/bytes/int/list/tuple/dict only, and no object from
an event is ever called (a candidate's __fspath__ or __eq__ would run inside the hook, where nothing is audited)."""
from __future__ import annotations

import _thread
import os
import re
import sys

from .audit_processes import ENV_AT_INSTALL, GUARDED_ENV, READ_ROOTS, WORKER_DIR, process_refusal
from .audit_values import as_text, real_path, within

_getframe, _get_ident = sys._getframe, _thread.get_ident
_write, _getcwd, _readlink, _open, _read, _close, _access = (os.write, os.getcwd, os.readlink, os.open, os.read,
                                                             os.close, os.access)
_O_WRITE = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_O_RDONLY, _X_OK = os.O_RDONLY, os.X_OK

ALWAYS_REFUSED = {
    "os.system": "a shell command", "os.exec": "replacing the worker with another program",
    "os.fork": "forking the worker", "os.forkpty": "forking the worker", "os.spawn": "starting a process",
    "os.startfile": "starting a program", "pty.spawn": "starting a process", "os.killpg": "signalling a group",
    "resource.setrlimit": "changing resource limits", "resource.prlimit": "changing resource limits",
    "fcntl.ioctl": "a device ioctl", "gc.get_objects": "walking every live object (the reference's answers)",
    "gc.get_referrers": "walking live objects", "gc.get_referents": "walking live objects",
    "sys._current_frames": "other threads' frames", "sys._current_exceptions": "other threads' exceptions",
    "sys.settrace": "a trace hook (it is handed every frame)", "sys.setprofile": "a profile hook",
    "sys._setprofileallthreads": "a profile hook", "sys._settraceallthreads": "a trace hook",
    "sys.monitoring.register_callback": "a monitoring hook", "sys.addaudithook": "another audit hook",
    "cpython.PyInterpreterState_New": "a subinterpreter (audit hooks are per interpreter)",
    "sqlite3.enable_load_extension": "native code", "sqlite3.load_extension": "native code",
}
# Modules whose fresh copy escapes the hook: _posixsubprocess.fork_exec starts processes without an event (the
# loaded copy is guarded by audit.install), the others run code in another interpreter or poke at internals.
REFUSED_IMPORTS = frozenset({"_posixsubprocess", "_xxsubinterpreters", "_xxinterpchannels", "_interpreters",
                             "_interpchannels", "_interpqueues", "_testcapi", "_testinternalcapi",
                             "_testsinglephase", "_testmultiphase"})
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
# event -> ((index of the path argument, index of its dir_fd argument or None), ...)
READS = {"os.listdir": ((0, None),), "os.scandir": ((0, None),), "os.chdir": ((0, None),),
         "os.getxattr": ((0, None),), "os.listxattr": ((0, None),)}
WRITES = {"os.mkdir": ((0, 2),), "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.rename": ((0, 2), (1, 3)),
          "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),), "os.truncate": ((0, None),),
          "os.chmod": ((0, 2),), "os.chown": ((0, 3),), "os.utime": ((0, 3),), "os.chflags": ((0, None),),
          "os.lchflags": ((0, None),), "os.setxattr": ((0, None),), "os.removexattr": ((0, None),),
          "sqlite3.connect": ((0, None),)}
OTHER_EVENTS = {"open", "subprocess.Popen", "os.posix_spawn", "kernelsearch.fork_exec", "os.kill", "os.putenv",
                "os.unsetenv", "import", "sys._getframe", "sys._getframemodulename", "object.__getattr__",
                "kernelsearch.refusals", "kernelsearch.notes"}
WATCHED = frozenset(ALWAYS_REFUSED) | frozenset(READS) | frozenset(WRITES) | frozenset(OTHER_EVENTS)
WATCHED_PREFIXES = ("socket.", "ctypes.")
# Inside /proc/<pid>: the process's memory, byte for byte (the reference's answers are in it).
DENIED_READ = re.compile(r"/proc/[^/]+/(?:task/[^/]+/)?(?:mem|pagemap)")
TRUSTED_JOB_FILES = ("/problem.py", "/variant.py")  # in a job's directory beside candidate.py: the problem's code
CONTROL_CHARACTERS = {c: " " for c in range(32)}

# Filled in by audit.install in the sealed copy (see audit.Policy).
JOB_PREFIX = "/"  # the worker's directory + "/job_": each job's files
READ_FILES: frozenset = frozenset()  # single files readable outside READ_ROOTS
LOG_READS = False  # True: a read outside the roots is noted, not refused
CTYPES_ANYWHERE = True  # False: ctypes is refused only with the candidate's code on the stack
NON_LEAKING: dict = {}  # code object -> the globals it runs with: trusted functions that keep frames to themselves
OWN_PID = 0
REPORT_FD = -1
REFUSED: list = []
NOTED: list = []
INSIDE: set = set()  # threads now running the hook: events the hook itself raises are not judged


def hook(event, args):
    if event not in WATCHED and not event.startswith(WATCHED_PREFIXES):
        return
    thread = _get_ident()
    if thread in INSIDE:
        return
    INSIDE.add(thread)
    try:
        try:
            why = judge(event, args, _getframe(1))
        except Exception as e:  # an event we cannot read is not waved through
            why = f"could not be judged ({type(e).__name__}: {e})"
    finally:
        INSIDE.discard(thread)
    if why is not None:
        refuse(event, why)


def refuse(event: str, why: str):
    line = f"refused {event}: {why}"
    REFUSED.append(line)
    report("refused", line)
    raise PermissionError(f"kernelsearch: {line}")


def report(kind: str, line: str) -> None:
    """To the worker log, and as a protocol event to the pool where the worker gave its descriptor: a record
    outside this process, which nothing the candidate does afterwards can take back."""
    try:
        _write(2, f"kernelsearch audit: {line}\n".encode("utf-8", "replace"))
        if REPORT_FD >= 0:
            text = line[:1000].replace("\\", "\\\\").replace('"', '\\"').translate(CONTROL_CHARACTERS)
            _write(REPORT_FD, f'{{"event": "{kind}", "what": "{text}"}}\n'.encode("utf-8", "replace"))
    except OSError:
        pass


def judge(event: str, args: tuple, frame) -> str | None:
    if event in ALWAYS_REFUSED:
        return ALWAYS_REFUSED[event]
    if event == "open":
        return open_refusal(args[0], args[1], args[2])
    if event in READS or event in WRITES:
        writing = event in WRITES
        for path_index, fd_index in (WRITES if writing else READS)[event]:
            why = path_refusal(args[path_index], args[fd_index] if fd_index is not None else None, writing)
            if why:
                return why
        return None
    if event == "subprocess.Popen":
        return process_refusal(args[0], args[1], args[2], args[3])
    if event == "os.posix_spawn":
        return process_refusal(args[0], args[1], None, args[2])
    if event == "kernelsearch.fork_exec":
        return fork_exec_refusal(args[0], args[1], args[2], args[3])
    if event == "os.kill":
        return kill_refusal(args[0], args[1])
    if event in ("os.putenv", "os.unsetenv"):
        name, value = as_text(args[0]), as_text(args[1]) if event == "os.putenv" else None
        if name is None or GUARDED_ENV.fullmatch(name) and value != ENV_AT_INSTALL.get(name):
            return f"changing {name} (it steers which programs the toolchain runs, and where)"
        return None
    if event == "import":
        return f"loading a fresh copy of {args[0]}" if args[0] in REFUSED_IMPORTS else None
    if event in ("sys._getframe", "sys._getframemodulename"):
        return frame_refusal(frame)
    if event == "object.__getattr__":
        return frame_refusal(frame) if args[1] in FRAME_ATTRIBUTES else None
    if event.startswith("socket."):
        return None if event == "socket.gethostname" else "network access (any socket, AF_UNIX included)"
    if event.startswith("ctypes."):
        if CTYPES_ANYWHERE:
            return "ctypes (native calls and raw memory)"
        return frame_refusal(frame) and "ctypes from the candidate's code"
    if event in ("kernelsearch.refusals", "kernelsearch.notes") and type(args[0]) is list:
        args[0].extend(REFUSED if event == "kernelsearch.refusals" else NOTED)
    return None


# ---- files ----------------------------------------------------------------------------------------------------
def open_refusal(path, mode, flags) -> str | None:
    writing = (type(flags) is int and flags & _O_WRITE != 0) or (type(mode) is str and (
        "w" in mode or "a" in mode or "x" in mode or "+" in mode))
    return path_refusal(path, None, writing)


def path_refusal(path, dir_fd, writing: bool) -> str | None:
    if type(path) is int:  # a descriptor: judged by what it is open on (pipes and sockets are not paths)
        real = fd_target(path)
        if real is None:
            return None
    else:
        if path is None:
            path = "."
        text = as_text(path)
        if text is None:
            return f"a path given as {type(path).__name__}"
        base = fd_target(dir_fd) if type(dir_fd) is int and dir_fd >= 0 and not text.startswith("/") else None
        real = real_path(text, base or _getcwd())
        if real is None:
            return f"too many symbolic links in {text!r}"
    if writing:
        if real == "/dev/null" or within(real, WORKER_DIR):
            return None
        return f"writing {real} (outside the worker's directory {WORKER_DIR})"
    if (real in READ_FILES or any(within(real, root) for root in READ_ROOTS)) and not DENIED_READ.fullmatch(real):
        return None
    if LOG_READS:
        if real not in NOTED:
            NOTED.append(real)
            report("read_outside_roots", f"read {real} (outside the read roots; allowed on this worker)")
        return None
    return f"reading {real} (outside the read roots)"


def fd_target(fd: int) -> str | None:
    """The real path a descriptor is open on, or None for pipes, sockets and anonymous inodes."""
    try:
        target = _readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return real_path(target, "/") if target.startswith("/") else None


# ---- processes ------------------------------------------------------------------------------------------------
def fork_exec_refusal(argv, executables, cwd, env) -> str | None:
    """_posixsubprocess.fork_exec tries each path in turn: every one that exists must be allowed."""
    if type(executables) not in (list, tuple):
        return "fork_exec without a list of programs"
    for program in executables:
        text = as_text(program)
        if text is None:
            return "a program path that is not a plain string"
        if _access(text, _X_OK):
            why = process_refusal(text, argv, cwd, env)
            if why:
                return why
    return None


def kill_refusal(pid, signal) -> str | None:
    if type(pid) is int and ((pid == OWN_PID and signal == 0) or is_child(pid)):
        return None  # subprocess kills a compiler that ran past its timeout
    return f"signalling process {pid}"


def is_child(pid: int) -> bool:
    try:
        fd = _open(f"/proc/{pid}/stat", _O_RDONLY)
    except OSError:
        return False
    try:
        stat = _read(fd, 4096).decode("ascii", "replace")
    finally:
        _close(fd)
    fields = stat[stat.rfind(")") + 2:].split(" ")
    return len(fields) > 1 and fields[1] == f"{OWN_PID}"


# ---- frames ---------------------------------------------------------------------------------------------------
def frame_refusal(frame) -> str | None:
    """Frames reach every local of the verifier's own calls (the reference's answers among them). Walking out
    from the request: a trusted function that keeps frames to itself ends the walk (allowed); the candidate's
    code ends it first (refused)."""
    while frame is not None:
        code = frame.f_code
        expected = NON_LEAKING.get(code)
        if expected is not None and frame.f_globals is expected:
            return None
        if is_candidates(code.co_filename, frame.f_globals):
            return f"frames, with the candidate's code on the stack ({code.co_filename}:{frame.f_lineno})"
        frame = frame.f_back
    return None


def is_candidates(filename: str, namespace) -> bool:
    """Code of the candidate's module (ks_candidate_<job>) or from a file in a job's directory other than the
    problem's (problem.py, variant.py: trusted, and torch.compile traces them). Inductor's generated modules under
    TMPDIR are the verifier's."""
    if filename.startswith(JOB_PREFIX) and not filename.endswith(TRUSTED_JOB_FILES):
        return True
    name = dict.get(namespace, "__name__") if issubclass(type(namespace), dict) else None
    return type(name) is str and name.startswith("ks_candidate")


# ---- the fork_exec stand-in -----------------------------------------------------------------------------------
def fork_exec_calls(real, audit, base_exception):
    """A generator that raises an audit event before each call of the real fork_exec it holds. Built by audit.py
    with no globals at all: only this generator's frame (gi_frame, itself refused) holds `real`."""
    call = yield
    while True:
        try:
            audit("kernelsearch.fork_exec", call[0], call[1], call[4], call[5])
            outcome = (True, real(*call))
        except base_exception as e:
            outcome = (False, e)
        call = yield outcome


def fork_exec_stand_in(calls, lock):
    def fork_exec(*call):
        with lock:
            ok, value = calls.send(call)
        if ok:
            return value
        raise value

    return fork_exec
