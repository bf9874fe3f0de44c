"""Workers end with the process that started them: at exit, and on SIGINT, SIGTERM or SIGHUP.

Workers run in sessions of their own (so that one killpg takes a candidate's nvcc and ninja along), which means
the signals a terminal, `timeout` or a job scheduler sends to our process group never reach them. So every live
WorkerPool is registered here, and while any is, this module's handler owns the three stop signals: it kills each
worker's process group, then hands over to whatever handled the signal before (Python's KeyboardInterrupt,
asyncio's graceful Ctrl-C, a caller's own), or, where that was the default action, raises `Stopped`, a SystemExit
with the conventional code 128 + signal (143 for SIGTERM, 129 for SIGHUP). A SIGKILL cannot be caught: for that
the worker asks the kernel to kill it when we die (sandbox.limit_process)."""
from __future__ import annotations

import atexit
import os
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_pools: list = []  # live WorkerPools, in the order they started
_previous: dict[int, object] = {}  # the handler each stop signal had before ours; empty while ours is not installed
_signalled = False  # a stop signal has come: a second one exits at once, without unwinding again


class Stopped(SystemExit):
    """SIGTERM or SIGHUP (or SIGINT where no KeyboardInterrupt handler was installed) ended the process once its
    workers were gone; uncaught, it exits with 128 + the signal number and prints nothing."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum
        self.signal_name = signal.Signals(signum).name


def register(pool) -> None:
    _pools.append(pool)
    if not _previous:
        _install()


def unregister(pool) -> None:
    if pool in _pools:
        _pools.remove(pool)
    if not _pools and _previous:
        _restore()


def end_all_workers() -> None:
    """Kill every live pool's workers (their whole process groups) and stop the pools from starting new ones.
    Safe inside a signal handler: it only sets flags and sends signals, it takes no lock and waits for nothing."""
    for pool in list(_pools):
        pool.kill_workers()


def _on_signal(signum: int, frame) -> None:
    global _signalled
    end_all_workers()
    if _signalled:  # the first one is still unwinding (or stuck): the workers are gone, so just go
        os._exit(128 + signum)
    _signalled = True
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):  # default_int_handler raises KeyboardInterrupt; asyncio's cancels the main task
        previous(signum, frame)
        return
    raise Stopped(signum)


def _install() -> None:
    # Python lets only the main thread set handlers; a pool started elsewhere still gets the atexit clean-up
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN or previous is None:  # nohup, or a handler set outside Python: leave it be
            continue
        _previous[signum] = previous
        signal.signal(signum, _on_signal)


def _restore() -> None:
    """Put back what was there before the first pool, unless someone has replaced our handler since."""
    global _signalled
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in _previous.items():
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous)
    _previous.clear()
    _signalled = False


atexit.register(end_all_workers)  # a pool left open at exit: its workers go too
