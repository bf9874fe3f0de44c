"""What a candidate's native code could try (load_inline C++ is seen by no Python check), done through libc from
ctypes: the same calls C++ would make. tests/verify/containment/test_os_sandbox.py runs it once without any sandbox, to show that
each attempt is real, and once inside the OS sandbox. Argument: a JSON object of targets. Prints a JSON object:
attempt -> {"ok": whether it did what it tried, "detail": what happened}."""
import ctypes
import json
import os
import socket
import sys

O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC = os.O_RDONLY, os.O_WRONLY, os.O_CREAT, os.O_TRUNC
MS_REMOUNT, MS_BIND = 32, 4096

targets = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]


def refused(call: str) -> str:
    return f"{call}: {os.strerror(ctypes.get_errno())}"


def read_file(path: str) -> tuple[bool, str]:
    fd = libc.open(path.encode(), O_RDONLY, 0)
    if fd < 0:
        return False, refused("open")
    buffer = ctypes.create_string_buffer(64)
    count = libc.read(fd, buffer, 64)
    libc.close(fd)
    return count > 0, f"read {count} bytes"


def write_file(path: str) -> tuple[bool, str]:
    fd = libc.open(path.encode(), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if fd < 0:
        return False, refused("open")
    count = libc.write(fd, b"escaped\n", 8)
    libc.close(fd)
    return count == 8, f"wrote {count} bytes"


def shell(command: str) -> tuple[bool, str]:
    status = libc.system(command.encode())
    return status == 0, f"system() returned {status}"


def list_directory(path: str) -> tuple[bool, str]:
    try:
        names = os.listdir(path)
    except OSError as e:
        return False, str(e)
    return bool(names), f"{len(names)} entries"  # an empty directory in place of a full one shows nothing


def connect(address) -> tuple[bool, str]:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect(address if isinstance(address, str) else tuple(address))
        except OSError as e:
            return False, str(e)
    return True, "connected"


def signal_caller(pid: int) -> tuple[bool, str]:
    if libc.kill(pid, 0) != 0:  # signal 0: may we signal it at all (nothing is sent)
        return False, refused("kill")
    return True, "may signal it"


def remount_root() -> tuple[bool, str]:
    if libc.mount(b"none", b"/", None, MS_REMOUNT | MS_BIND, None) != 0:
        return False, refused("mount")
    return True, "remounted / writable"


attempts = {
    "read the caller's home": lambda: read_file(targets["home_secret"]),
    "read the run's store": lambda: read_file(targets["store"]),
    "list the caller's working directory": lambda: list_directory(targets["working_directory"]),
    "read another worker's log": lambda: read_file(targets["other_worker_log"]),
    "write outside the worker's directory": lambda: write_file(targets["outside_file"]),
    "system() touching a file": lambda: shell(f"touch {targets['system_marker']}"),
    "connect to the caller's TCP port": lambda: connect(["127.0.0.1", targets["port"]]),
    "connect to a unix socket in the working directory": lambda: connect(targets["unix_socket"]),
    "signal the caller": lambda: signal_caller(targets["caller_pid"]),
    # controls: what a worker must still be able to do
    "write in the worker's directory": lambda: write_file(targets["worker_file"]),
    "import kernelsearch": lambda: (__import__("kernelsearch") is not None, "imported"),
}
if targets.get("try_remount"):  # never outside a sandbox: it would change the machine's own mount
    attempts["remount / writable"] = remount_root
outcomes = {}
for name, attempt in attempts.items():
    ok, detail = attempt()
    outcomes[name] = {"ok": ok, "detail": detail}
print(json.dumps(outcomes))
