"""The pool's side of a worker's answer keeper: start it beside the worker, hand it each job, collect what it
compared, and hold the worker's verdict against that record (a `correct` the keeper did not see is rejected)."""
from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..containment.namespaces import Namespaces, read_child_pid
from ..containment.sandbox import limit_process, worker_env
from ..verdict import FRESH_SEED, VARIANT_SEED, Status
from .child_events import TIMED_OUT, kill_group, next_event, read_events

JOB_DONE_WAIT_S = 30.0  # the keeper says a job is done as the worker's last message reaches it: normally at once


class KeeperStartError(RuntimeError):
    """The keeper did not say it was ready: why, in the words the pool uses for a worker that does not start."""


@dataclass
class JobRecord:
    """What the keeper did for one job: its comparisons (`compared` events) and how often it ran the reference."""
    compared: list[dict]
    reference_calls: int


class KeeperProcess:
    """One keeper process. `worker_end` is the socket end the worker must be started with (KS_KEEPER_FD).

    With `wrap` (argv, env, info_fd -> argv) it runs inside the OS sandbox that returns, and `namespaces` holds that
    sandbox's PID (and user) namespace for the worker to join (namespaces.py says why). `started` is told its
    process's pid as soon as it runs: a stop that comes while it starts must be able to end it (a bwrap left
    waiting on its setup forever was seen after a run stopped then)."""

    def __init__(self, device: str, gpu: int | None, workdir: Path, log_path: Path, hidden_env: tuple[str, ...],
                 extra_env: dict[str, str], memory_bytes: int | None, file_bytes: int, start_timeout_s: float,
                 wrap: Callable[[list[str], dict, int], list[str]] | None = None,
                 started: Callable[[int], None] | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.namespaces: Namespaces | None = None
        ours, self.worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.worker_end.set_inheritable(True)
        ours.set_inheritable(True)
        read_fd, write_fd = os.pipe()
        env = {**worker_env(device, gpu, workdir, hidden_env), **extra_env,
               "KS_RESPONSE_FD": str(write_fd), "KS_KEEPER_FD": str(ours.fileno())}
        env.pop("TRITON_INTERPRET", None)  # the keeper runs the reference, never a Triton kernel
        argv, pass_fds = [sys.executable, "-m", "kernelsearch.verify.keeper"], [write_fd, ours.fileno()]
        info_read = info_write = None
        if wrap is not None:
            info_read, info_write = os.pipe()
            argv = wrap(argv, env, info_write)
            pass_fds.append(info_write)
        deadline = time.monotonic() + start_timeout_s
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=log, stderr=log, env=env, cwd=workdir, pass_fds=pass_fds,
                start_new_session=True, preexec_fn=limit_process(memory_bytes, file_bytes, network=wrap is None))
        if started is not None:  # killable from now on, before it is ready (PoolWorker.kill)
            started(self.proc.pid)
        for fd in (write_fd, info_write):
            if fd is not None:
                os.close(fd)
        ours.close()
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=read_events, args=(os.fdopen(read_fd), self.events), daemon=True).start()
        if info_read is not None:
            try:
                self.namespaces = Namespaces.of(read_child_pid(info_read, deadline))
            except OSError as e:
                self.stop()
                raise KeeperStartError(f"its sandbox did not start: {e}") from None
            finally:
                os.close(info_read)
        ready = self.next_event(deadline)
        if not isinstance(ready, dict) or ready.get("event") != "ready":
            self.stop()
            raise KeeperStartError(f"not ready after {start_timeout_s:g}s" if ready is TIMED_OUT else "it exited"
                                   if ready is None else f"it answered {ready!r}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def begin(self, job_line: bytes) -> None:
        """The job as the pool sends it to the worker: the keeper takes problem, seeds and tolerance from here."""
        while not self.events.empty():  # anything left from a job the worker never finished
            self.events.get_nowait()
        self.proc.stdin.write(job_line)
        self.proc.stdin.flush()

    def record(self, job_id: str) -> JobRecord | None:
        """The keeper's record of a job, once it has said the job is done; None if it never did."""
        compared, deadline = [], time.monotonic() + JOB_DONE_WAIT_S
        while True:
            event = self.next_event(deadline)
            if not isinstance(event, dict):
                return None
            if event.get("id") != job_id:
                continue
            if event.get("event") == "compared":
                compared.append(event)
            elif event.get("event") == "job_done":
                return JobRecord(compared, int(event.get("reference_calls", 0)))

    def next_event(self, deadline: float):
        return next_event(self.events, deadline)

    def kill(self) -> None:
        proc = self.proc
        if proc is not None:
            kill_group(proc.pid)

    def stop(self) -> None:
        self.kill()
        self.worker_end.close()
        if self.namespaces is not None:
            self.namespaces.close()
            self.namespaces = None
        if self.proc is not None:
            self.proc.wait()
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc = None


def unbacked(verdict, request, record: JobRecord | None) -> str | None:
    """Why a `correct` verdict is not what the keeper saw (a forged or tampered verdict), or None when it is."""
    if verdict.status != Status.CORRECT:
        return None
    if record is None:
        return "the answer keeper never finished the job"
    compared = record.compared
    # under KernelBench's rules a second shape may fail in a correct verdict (extra_checks.check_variant)
    failed = [c for c in compared if not c.get("ok") and not (c.get("kind") == "variant" and
                                                               request.rules == "kernelbench")]
    if failed:
        return f"the answer keeper saw seed {failed[0]['seed']} ({failed[0]['kind']}) fail"
    ok = {(c["seed"], c["kind"]) for c in compared}
    missing = [f"trial {t}" for t in range(request.trials) if (request.seed + t, "trial") not in ok]
    if verdict.checks.get("second_shape", {}).get("ok") and (request.seed + VARIANT_SEED, "variant") not in ok:
        missing.append("the second shape")
    if verdict.timing and (request.seed + FRESH_SEED, "fresh") not in ok:
        missing.append("the fresh inputs after timing")
    if missing:
        return f"the answer keeper never compared {', '.join(missing)}"
    return None
