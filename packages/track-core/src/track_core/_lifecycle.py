"""Ending open runs when the process ends: normal exit, an uncaught exception, SIGTERM.

- Normal interpreter exit: open runs are closed FINISHED (bounded wait each).
- An uncaught exception (``sys.excepthook``): open runs are closed FAILED with the error.
- SIGTERM: open runs are closed KILLED, then the previous handler (default: exit) runs.
- ``os.fork()``: the child forgets the runs it inherited (their writers live in the parent),
  so its exit never ends the parent's runs; it can start runs of its own.
The handlers are installed when the first run starts, and only chain to what was there.

A leaf module: it knows runs only through the ``OpenRun`` protocol below.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any, Protocol

from track_core.status import Status


class OpenRun(Protocol):
    """What the registry needs of a run."""

    @property
    def id(self) -> str: ...

    def close(self, status: Status, error: BaseException | str | None = None) -> None: ...

    def forget_after_fork(self) -> None:
        """Called in a forked child: the run's writer lives in the parent, so the child's copy
        must never write or close it."""
        ...


#: Open runs, held until they close: a run the caller dropped without closing it is still
#: ended (FINISHED) at exit, as it would be had it been kept. Its writer thread holds its
#: queue anyway, so holding the run costs nothing more.
_open_runs: set[OpenRun] = set()
_installed = False
_install_lock = threading.Lock()
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = signal.SIG_DFL


#: Seconds to wait for a lock that may be held by the thread a signal handler interrupted.
#: Other threads hold these locks for microseconds; past this only that thread can hold it.
LOCK_WAIT_IN_HANDLER = 1.0


@contextlib.contextmanager
def held_unless_interrupted(lock: threading.Lock) -> Iterator[None]:
    """Hold ``lock`` for a short section that the SIGTERM handler also runs: the handler runs
    on the thread it interrupted, which may be inside ``track()`` holding the lock, so waiting
    is bounded and the section goes on without the lock after ``LOCK_WAIT_IN_HANDLER``."""
    acquired = lock.acquire(timeout=LOCK_WAIT_IN_HANDLER)
    try:
        yield
    finally:
        if acquired:
            lock.release()


def register(run: OpenRun) -> None:
    _install()
    _open_runs.add(run)


def unregister(run: OpenRun) -> None:
    _open_runs.discard(run)


def _after_fork_in_child() -> None:
    inherited = list(_open_runs)
    _open_runs.clear()
    for run in inherited:
        run.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def close_all(status: Status, error: BaseException | str | None = None) -> None:
    for run in list(_open_runs):
        try:
            run.close(status, error)
        except Exception as failure:  # pragma: no cover - closing must go on for the others
            print(f"track: could not close run {run.id}: {failure!r}", file=sys.stderr)


def _at_exit() -> None:
    close_all(Status.FINISHED)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    status = Status.KILLED if issubclass(exc_type, KeyboardInterrupt) else Status.FAILED
    close_all(status, exc.with_traceback(tb))
    _previous_excepthook(exc_type, exc, tb)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    close_all(Status.KILLED, "terminated by SIGTERM")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)


def _install() -> None:
    global _installed, _previous_excepthook, _previous_sigterm
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        _installed = True
        atexit.register(_at_exit)
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None) or callable(current):
                _previous_sigterm = current
                signal.signal(signal.SIGTERM, _on_sigterm)
