"""One run written to several backends at once: ``start_run(["aim", "mlflow:http://..."])``.

Each backend gets a run of its own (``TrackedRun``): its own writer, queue, retries and spool,
so one backend down or slow never slows the training loop nor the others, and loses nothing.
The first run validates every call for all the backends, so a value one of them cannot hold is
refused at the call, for all; then every run gets the same call, with one timestamp.

``run.id`` joins the backends' ids with ``|`` (in the order the backends were given); pass it
as ``run_id=`` with the same backends to resume the run on each. ``run.ids`` maps each
backend (its credential-free string) to its own id.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

from track_core._run import TrackedRun
from track_core._views import SequenceView
from track_core.context import ContextLike
from track_core.params import Param
from track_core.redaction import redact_text
from track_core.status import Status, status_on_exit

#: Separates backend strings in one string (``$TRACK_BACKEND``, a Detectron2 cfg, a spaCy
#: config) and run ids in a multi-backend run's id. ``|`` never appears unescaped in a URL
#: (RFC 3986), so locations such as ``postgresql+psycopg2://u@h/db?x=1,2`` keep whole.
SEPARATOR = "|"


def split_backend_strings(text: str) -> list[str]:
    """The backend strings of ``"aim | mlflow:http://host:5000"`` (one string: one item)."""
    parts = [part.strip() for part in text.split(SEPARATOR)]
    if any(not part for part in parts):
        raise ValueError(
            f"an empty backend in {redact_text(text)!r}: separate backend strings with '{SEPARATOR}', "
            "e.g. 'aim | mlflow:http://127.0.0.1:5000'"
        )
    return parts


class MultiRun:
    """A run on several backends. Satisfies the Run protocol; reads come from the first."""

    def __init__(self, runs: Sequence[TrackedRun], origins: Sequence[str]) -> None:
        if len(runs) < 2:
            raise ValueError("a MultiRun needs at least two runs")
        self._runs = tuple(runs)
        self._first = runs[0]
        self._origins = tuple(origins)
        self._first.validate_for([run.backend for run in runs[1:]])

    # -- identity --------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return SEPARATOR.join(run.id for run in self._runs)

    @property
    def ids(self) -> Mapping[str, str]:
        """Each backend's own id of this run, by backend string (without credentials)."""
        return dict(zip(self._origins, (run.id for run in self._runs), strict=True))

    @property
    def runs(self) -> tuple[TrackedRun, ...]:
        """The run on each backend, in the order the backends were given."""
        return self._runs

    @property
    def experiment(self) -> str | None:
        return self._first.experiment

    @property
    def name(self) -> str | None:
        return self._first.name

    @property
    def description(self) -> str | None:
        return self._first.description

    @property
    def tags(self) -> frozenset[str]:
        return self._first.tags

    @property
    def status(self) -> Status:
        return self._first.status

    @property
    def recording(self) -> bool:
        return self._first.recording

    @property
    def archived(self) -> bool:
        return self._first.archived

    @property
    def pending(self) -> int:
        """Values tracked but not yet stored, over all backends."""
        return sum(run.pending for run in self._runs)

    # -- writing: validated by the first run, for all ----------------------------------------
    @property
    def params(self) -> Mapping[str, Param]:
        return self._first.params

    def __getitem__(self, key: str) -> Param:
        return self._first[key]

    def __setitem__(self, key: str, value: object) -> None:
        self._first[key] = value
        stored = self._first[key]  # converted once: every backend gets the same plain data
        for run in self._runs[1:]:
            run[key] = stored

    def track(
        self,
        value: object,
        name: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        context: ContextLike = None,
        timestamp: float | None = None,
    ) -> None:
        if timestamp is None:
            timestamp = time.time()
        self._first.track(value, name, step, epoch, context, timestamp)
        for run in self._runs[1:]:
            run.track(value, name, step, epoch, context, timestamp)

    def set_name(self, name: str) -> None:
        for run in self._runs:
            run.set_name(name)

    def set_description(self, description: str) -> None:
        for run in self._runs:
            run.set_description(description)

    def add_tag(self, tag: str) -> None:
        for run in self._runs:
            run.add_tag(tag)

    def remove_tag(self, tag: str) -> None:
        for run in self._runs:
            run.remove_tag(tag)

    def set_archived(self, archived: bool = True) -> None:
        for run in self._runs:
            run._require_archive(archived)  # every backend can archive, or none is asked to
        for run in self._runs:
            run.set_archived(archived)

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        for run in self._runs:
            run._require_artifacts()
        for run in self._runs:
            run.log_artifact(path, name)

    def log_artifacts(self, directory: str | os.PathLike[str], prefix: str | None = None) -> None:
        for run in self._runs:
            run._require_artifacts()
        for run in self._runs:
            run.log_artifacts(directory, prefix)

    # -- reading: the first backend ----------------------------------------------------------
    def sequences(self) -> list[SequenceView]:
        return self._first.sequences()

    def sequence(self, name: str, context: ContextLike = None) -> SequenceView:
        return self._first.sequence(name, context)

    # -- ending ----------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        stored = True
        for run in self._runs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stored = run.flush(left) and stored
        return stored

    def close(
        self,
        status: Status = Status.FINISHED,
        error: BaseException | str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Close the run on every backend (each waits its own bounded time; a backend that is
        down keeps what it did not take in its own spool)."""
        closers = [
            threading.Thread(target=run.close, args=(status, error, timeout), daemon=True)
            for run in self._runs[1:]
        ]
        for closer in closers:  # in parallel: the waits for a slow backend do not add up
            closer.start()
        self._first.close(status, error, timeout)
        for closer in closers:
            closer.join()

    def __enter__(self) -> MultiRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(status_on_exit(exc), exc)

    def __repr__(self) -> str:
        return f"MultiRun({', '.join(f'{o}={i}' for o, i in self.ids.items())})"
