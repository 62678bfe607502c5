"""Ctrl-C and SIGTERM during a task: the first stops it as KeyboardInterrupt (the task writes
its 'interrupted' record on the way out) as soon as Python runs again, i.e. where a running call
into TensorFlow ends (trainer.steps_per_execution steps); a second exits on the spot. Exit codes
follow the shell: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).

A job that Hydra's joblib launcher runs in a worker process is stopped the same way (as by
SIGTERM) when the sweep's parent process goes away, e.g. `kill` on it: otherwise the workers would
go on training, orphaned, until their jobs end. Ctrl-C ends that parent at once, so that joblib
cannot kill the workers before they record that they stopped.

Two guards: inside `deferred()` (a group of files written together at an epoch's end) the stop
waits for the block to end; and `raise_if_stopped()`, called between training steps, raises it
again when library code swallowed it (Keras's saving has a bare `except:`)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """The task was stopped by `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


@dataclass
class _State:
    signum: int | None = None  # the stopping signal, once Python's handler ran for it
    arrived: bool = False  # a stopping signal reached the process (its handler may be waiting)
    deferring: int = 0  # depth of deferred() blocks
    pending: bool = False  # a signal came inside a deferred() block
    parent: int | None = None  # a worker's parent pid, once a thread watches it (_watch_parent)


_state = _State()


@contextmanager
def interruptible() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM raise Interrupted; a second one exits at once
    (every file the task writes is renamed into place whole, so nothing is left half-written)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; a worker thread keeps the defaults
        return
    _state.signum, _state.pending, _state.arrived = None, False, False

    def handler(signum: int, frame: FrameType | None) -> None:
        if _state.signum is not None:
            os._exit(128 + signum)
        _state.signum = signum
        if _state.deferring:
            _state.pending = True
            return
        raise Interrupted(signum)

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    wakeup = _exit_on_second_signal()
    if multiprocessing.parent_process() is not None:
        _watch_parent()
    try:
        yield
    finally:
        wakeup()
        for s, previous in saved.items():
            signal.signal(s, previous)


def _exit_on_second_signal() -> Callable[[], None]:
    """Python runs a signal's handler only between bytecodes of the main thread, so while that
    thread is inside one call into TensorFlow (trainer.steps_per_execution steps) both signals
    would wait for the call to end. The first may (training stops where the call ends), the
    second must not: a thread reads each signal's number from the wakeup fd, which the C-level
    handler writes at once, and exits on the second. Returns what puts things back."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        seen = 0
        with os.fdopen(read_end, "rb", buffering=0) as signals:
            while numbers := signals.read(16):
                for signum in numbers:
                    seen += signum in (signal.SIGINT, signal.SIGTERM)
                    _state.arrived = seen > 0
                    if seen == 2:
                        os._exit(128 + signum)

    threading.Thread(target=watch, name="mnist-second-signal", daemon=True).start()

    def restore() -> None:
        signal.set_wakeup_fd(previous)
        os.close(write_end)  # the thread reads the end of the pipe and ends

    return restore


def _watch_parent(interval: float = 1.0) -> None:
    """In a worker process, send this process SIGTERM once its parent has gone (the worker is
    then re-parented, so its parent pid changes). One thread per process, for all its jobs."""
    if _state.parent is not None:
        return
    _state.parent = os.getppid()

    def watch() -> None:
        while os.getppid() == _state.parent:
            time.sleep(interval)
        # A signal that came already (the terminal's Ctrl-C reaches the parent and its workers
        # at once) stops the job, though its handler may still wait for a call into TensorFlow
        # to end: a second one would cut its record short.
        if _state.signum is None and not _state.arrived:
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mnist-parent-watch", daemon=True).start()


def end_sweep_on_ctrl_c(note: str) -> None:
    """In the launching process of a parallel sweep: Ctrl-C ends it at once with `note` (exit
    130), rather than as KeyboardInterrupt inside joblib, which would SIGKILL the workers before
    they record 'interrupted'. The workers stop on their own, each recording so: the terminal's
    Ctrl-C reaches them too, and a worker notices within a second that its parent has gone."""

    def handler(signum: int, frame: FrameType | None) -> None:
        print(note, file=sys.stderr, flush=True)
        os._exit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)


def orphaned() -> bool:
    """Whether this worker process's parent has gone (so nothing will give it another job)."""
    return _state.parent is not None and os.getppid() != _state.parent


@contextmanager
def deferred() -> Iterator[None]:
    """A stop signal that arrives inside this block takes effect when the block ends."""
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if _state.pending and not _state.deferring:
        _state.pending = False
        raise Interrupted(_state.signum)


def raise_if_stopped() -> None:
    """Raise Interrupted if a stop signal came (for code that runs only while the task should
    be going on: if it runs after the signal, the first Interrupted was swallowed)."""
    if _state.signum is not None:
        raise Interrupted(_state.signum)
