"""Ctrl-C and SIGTERM during a task: the first stops it at once as KeyboardInterrupt (the task
writes its 'interrupted' record on the way out); a second exits on the spot. Exit codes follow
the shell: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """The task was stopped by `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


@contextmanager
def interruptible() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM raise Interrupted; a second one exits at once
    (every file the task writes is renamed into place whole, so nothing is left half-written)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; a worker thread keeps the defaults
        return
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            os._exit(128 + signum)
        stopping = True
        raise Interrupted(signum)

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, previous in saved.items():
            signal.signal(s, previous)
