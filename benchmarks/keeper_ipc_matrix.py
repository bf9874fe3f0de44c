"""Which sandbox settings let one process open another's GPU memory through a CUDA IPC handle? An exporter (the
worker's role) shares a 4 MiB tensor, an importer (the keeper's role) opens it and sums it; each setting is one
line: where each step failed, or the sum. Settings differ in the flags wrap_command would give.

    python benchmarks/keeper_ipc_matrix.py      (needs a GPU, and bwrap on the PATH)"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kernelsearch.verify.containment.namespaces import Namespaces, read_child_pid, shared_shm  # noqa: E402
from kernelsearch.verify.containment.sandbox import worker_env, wrap_command  # noqa: E402

IMPORTER = r'''
import json, os, socket, sys, traceback
from kernelsearch.verify.containment.namespaces import undumpable
if os.environ["KS_MATRIX_UNDUMPABLE"] == "1":
    undumpable()
sock = socket.socket(fileno=int(os.environ["KS_MATRIX_FD"]))
spec = json.loads(sock.makefile().readline())
try:
    import torch
    from kernelsearch.verify.keeper.link import open_cuda
    t = open_cuda(spec)
    reply = {"sum": float(t.sum().item()), "pid": os.getpid()}
except BaseException as e:
    reply = {"error": f"importer: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}
sock.sendall((json.dumps(reply) + "\n").encode())
'''

EXPORTER = r'''
import json, os, socket, sys, traceback
sock = socket.socket(fileno=int(os.environ["KS_MATRIX_FD"]))
step = "cuda init"
try:
    import torch
    x = torch.arange(1 << 20, device="cuda", dtype=torch.float32)
    step = "share (cudaIpcGetMemHandle)"
    from kernelsearch.verify.keeper.link import describe_tensors
    spec = describe_tensors([x], share=True)[0]
    if "ipc" not in spec:
        raise RuntimeError("CUDA made no handle (describe_tensors left it out: the socket would carry the bytes)")
except BaseException as e:
    print(json.dumps({"error": f"exporter at {step}: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}))
    sys.exit(0)
sock.sendall((json.dumps(spec) + "\n").encode())
reply = json.loads(sock.makefile().readline() or "{}")
print(json.dumps({**reply, "expected": float(x.sum().item()), "exporter_pid": os.getpid()}))
'''


def run_setting(name: str, importer_box: str, exporter_box: str, cover_proc_1: bool = True, shm: str = "host",
                undumpable: bool = True) -> None:
    """importer_box: plain | own (bwrap, --as-pid-1) | own-reaper (bwrap with its init);
    exporter_box: plain | own (bwrap, new PID namespace) | join (the importer's namespaces);
    shm: the /dev/shm both see: host (a directory on the machine's /dev/shm) | dir (on a disk) | "" (each its own)."""
    root = Path(tempfile.mkdtemp(prefix="ks-matrix-"))
    (root / "imp").mkdir()
    (root / "exp").mkdir()
    (root / "shm").mkdir()
    shm_dir = shared_shm() if shm == "host" else root / "shm" if shm == "dir" else None
    a, b = socket.socketpair()
    for s in (a, b):
        s.set_inheritable(True)
    env_i = {**worker_env("cuda", None, root / "imp"), "KS_MATRIX_FD": str(a.fileno()),
             "KS_MATRIX_UNDUMPABLE": "1" if undumpable else "0"}
    argv = [sys.executable, "-c", IMPORTER]
    fds, info_r = [a.fileno()], None
    if importer_box != "plain":
        info_r, info_w = os.pipe()
        argv = wrap_command(argv, root / "imp", "cuda", env_i, info_fd=info_w, shm=shm_dir,
                            as_pid_1=importer_box == "own")
        fds.append(info_w)
    importer = subprocess.Popen(argv, env=env_i, pass_fds=fds, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    a.close()
    namespaces = None
    if info_r is not None:
        os.close(info_w)
        namespaces = Namespaces.of(read_child_pid(info_r, time.monotonic() + 30))
    env_e = {**worker_env("cuda", None, root / "exp"), "KS_MATRIX_FD": str(b.fileno())}
    argv, fds = [sys.executable, "-c", EXPORTER], [b.fileno()]
    if exporter_box != "plain":
        join = namespaces if exporter_box == "join" else None
        argv = wrap_command(argv, root / "exp", "cuda", env_e, join=join, shm=shm_dir)
        if join:
            fds += list(join.fds())
        if not cover_proc_1:
            i = argv.index("/proc/1")
            del argv[i - 1:i + 1]
    try:
        done = subprocess.run(argv, env=env_e, pass_fds=fds, capture_output=True, text=True, timeout=90)
        line = (done.stdout.strip().splitlines() or [f"no output; stderr: {done.stderr.strip()[-300:]}"])[-1]
    except subprocess.TimeoutExpired:
        line = "exporter timed out"
    b.close()
    try:
        importer.wait(timeout=30)
    except subprocess.TimeoutExpired:
        importer.kill()
    tail = importer.stderr.read().strip().splitlines()[-1:] if importer.stderr else []
    if shm == "host" and shm_dir is not None:
        shutil.rmtree(shm_dir, ignore_errors=True)
    print(f"{name:58s} {line}" + (f"  [importer stderr: {tail[0][:200]}]" if tail and "error" in line else ""),
          flush=True)


def main() -> None:
    import torch
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU (the settings still run)"
    print("torch", torch.__version__, gpu, "uid", os.getuid(), flush=True)
    run_setting("A plain / plain", "plain", "plain")
    run_setting("B plain keeper / worker in its own namespace (before)", "plain", "own")
    run_setting("C keeper pid 1 / worker joins (now)", "own", "join")
    run_setting("G as C, no shared /dev/shm", "own", "join", shm="")
    run_setting("I as C, the shared /dev/shm on a disk", "own", "join", shm="dir")
    run_setting("H keeper in own box / worker plain", "own", "plain")


if __name__ == "__main__":
    main()
