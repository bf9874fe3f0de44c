"""A child process of the pool (a worker, its answer keeper) seen from the pool: its JSON event lines in a queue,
the next one before a deadline, and its process group killed whole."""
from __future__ import annotations

import json
import os
import queue
import signal
import time


def read_events(stream, events: queue.Queue) -> None:
    """A process's JSON event lines (its protocol descriptor) into a queue; None at the end of the stream: the
    process is gone."""
    for line in stream:
        try:
            events.put(json.loads(line))
        except json.JSONDecodeError:
            continue
    events.put(None)


TIMED_OUT = object()  # what next_event answers when the deadline passed first


def next_event(events: queue.Queue, deadline: float) -> dict | None | object:
    """The next event; None when the process is gone, TIMED_OUT when the deadline passed first."""
    try:
        return events.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        return TIMED_OUT


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # gone already (macOS answers EPERM for a group of zombies)
        pass
