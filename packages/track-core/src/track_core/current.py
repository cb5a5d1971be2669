"""The current run of the process: the one integrations find when they are given none.

    import track_core as track

    run = track.start_run("aim", experiment="mnist")
    track.set_current_run(run)          # or: with track.using_run(run): ...
    ...                                 # integrations (SummaryWriter, hooks) call current_run()
    track.clear_current_run()

One run per process, not per thread: a writer made in a data-loader thread or a framework's
callback finds the run the training script set. A run that has ended is not current any more.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from track_core.protocols import Run
from track_core.status import Status

_lock = threading.Lock()
_current: Run | None = None


def current_run() -> Run | None:
    """The run set with ``set_current_run`` (or ``using_run``), while it is running; else None."""
    run = _current
    if run is None:
        return None
    try:
        running = run.status is Status.RUNNING
    except Exception:  # a run whose status cannot be read is not one to write to
        running = False
    return run if running else None


def set_current_run(run: Run | None) -> Run | None:
    """Make ``run`` the process's current run (None: no current run); return the previous one."""
    global _current
    if run is not None and not isinstance(run, Run):
        raise TypeError(
            f"set_current_run() takes a track run (from track_core.start_run), got "
            f"{type(run).__name__}"
        )
    with _lock:
        previous, _current = _current, run
    return previous


def clear_current_run(run: Run | None = None) -> None:
    """No current run any more; with ``run``, only if ``run`` is the current one."""
    global _current
    with _lock:
        if run is None or _current is run:
            _current = None


@contextmanager
def using_run(run: Run) -> Iterator[Run]:
    """``with using_run(run):`` makes ``run`` current inside the block, then restores the
    previous one. It does not close the run."""
    previous = set_current_run(run)
    try:
        yield run
    finally:
        global _current
        with _lock:
            if _current is run:
                _current = previous
