"""A backend wrapper that fails writes at chosen moments, for the conformance kit's fault tests.

    faulty = FaultyBackend(backend, [Fault("write_points", when="after", times=2)])
    run = track_core.start_run(faulty)

``when="before"`` raises before the wrapped store sees the call (a request that never arrived);
``when="after"`` raises after the store took it (a reply lost on the way back), so the core's
retry hands the same items again and a backend that is not idempotent stores them twice.
``when="partway"`` lets the store take part of a ``write_points`` batch and then raises, as when a
backend keeps several requests of one batch in flight and one of them fails: the store holds
every other sequence of the batch whole and the rest up to half way (``stored_part``); the retry
hands the whole batch again.
A ``Fault("create_run")`` makes the backend unreachable when runs start (the core then starts
them offline). ``step=`` limits a fault to ``write_points`` calls whose batch holds a point at that step, which
is how a value the store refuses for good is modelled (with ``times=None``: forever).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from track_core.backend import (
    Backend,
    Capability,
    RunInfo,
    RunReader,
    RunSpec,
    RunWriter,
    SequenceInfo,
    TrackedPoint,
)
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_core.values import Value, ValueKind


def _injected() -> BaseException:
    return ConnectionError("injected by track_core.testing.faults: the storage is away")


@attrs.define
class Fault:
    """One planned failure of a RunWriter method."""

    method: str = "write_points"
    when: Literal["before", "after", "partway"] = "before"
    #: Makes the exception raised (a new one each time).
    error: Callable[[], BaseException] = _injected
    #: How many calls fail; None: every matching call, forever.
    times: int | None = 1
    #: Only ``write_points`` calls whose batch holds a point at this step.
    step: int | None = None
    #: Only calls whose arguments this predicate accepts.
    accepts: Callable[..., bool] | None = None
    #: Matching calls to let through before the first failure.
    skip: int = 0
    #: Failures so far.
    raised: int = 0
    _seen: int = 0

    def __attrs_post_init__(self) -> None:
        if self.when == "partway" and self.method != "write_points":
            raise ValueError(
                f'when="partway" stores part of a write_points batch; {self.method} has no '
                'batch to cut: use when="before" or "after"'
            )

    def matches(self, method: str, args: tuple[Any, ...]) -> bool:
        if method != self.method:
            return False
        if self.step is not None:
            points: Sequence[TrackedPoint] = args[0]
            if not any(point.step == self.step for point in points):
                return False
        if self.accepts is not None and not self.accepts(*args):
            return False
        if self.times is not None and self.raised >= self.times:
            return False
        self._seen += 1
        return self._seen > self.skip


def stored_part(points: Sequence[TrackedPoint]) -> list[TrackedPoint]:
    """What a ``partway`` fault lets the store take of a batch: of its sequences (by name and
    context, in the order they first appear), the first, third, ... whole, and the second,
    fourth, ... up to half of their points; in the batch's order."""
    counts: dict[tuple[str, Context], int] = {}
    for point in points:
        key = (point.name, point.context)
        counts[key] = counts.get(key, 0) + 1
    limits = {
        key: count if index % 2 == 0 else count // 2
        for index, (key, count) in enumerate(counts.items())
    }
    taken: list[TrackedPoint] = []
    for point in points:
        key = (point.name, point.context)
        if limits[key] > 0:
            limits[key] -= 1
            taken.append(point)
    return taken


@attrs.define(eq=False)
class FaultyRunWriter:
    """A RunWriter that fails as its backend's faults say, and otherwise delegates."""

    _inner: RunWriter
    _owner: FaultyBackend

    @property
    def id(self) -> str:
        return self._inner.id

    def _call(self, method: str, *args: Any) -> Any:
        fault = self._owner._due(method, args)
        if fault is not None and fault.when == "before":
            raise fault.error()
        if fault is not None and fault.when == "partway":  # write_points only (Fault checks)
            getattr(self._inner, method)(stored_part(args[0]))
            raise fault.error()
        result = getattr(self._inner, method)(*args)
        if fault is not None:
            raise fault.error()
        return result

    def sequences(self) -> Sequence[SequenceInfo]:
        return self._inner.sequences()

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        self._call("write_points", list(points))

    def set_params(self, params: Mapping[str, Param]) -> None:
        self._call("set_params", params)

    def set_name(self, name: str) -> None:
        self._call("set_name", name)

    def set_description(self, description: str) -> None:
        self._call("set_description", description)

    def set_tags(self, tags: frozenset[str]) -> None:
        self._call("set_tags", tags)

    def log_artifact(self, path: str, name: str) -> None:
        self._call("log_artifact", path, name)

    def set_archived(self, archived: bool) -> None:
        self._call("set_archived", archived)

    def close(self, status: Status, error: str | None, ended_at: float | None = None) -> None:
        # ``ended_at`` is given only where the inner backend keeps run times (RUN_TIMES)
        self._call("close", status, error, *(() if ended_at is None else (ended_at,)))


class FaultyBackend:
    """Wraps a Backend; its run writers fail as ``faults`` plan. Everything else delegates.
    Runs always write from a thread of this process (the wrapper cannot travel to a writer
    process), so WRITER_PROCESS is not declared."""

    def __init__(self, inner: Backend, faults: Sequence[Fault] = ()) -> None:
        self.inner = inner
        self.faults = list(faults)
        self._lock = threading.Lock()

    def _due(self, method: str, args: tuple[Any, ...]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, args):
                    fault.raised += 1
                    return fault
        return None

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.inner.capabilities - {Capability.WRITER_PROCESS}

    def check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        self.inner.check_sequence(name, context, kind)

    def check_value(self, value: Value) -> None:
        self.inner.check_value(value)

    def create_run(self, spec: RunSpec) -> FaultyRunWriter:
        fault = self._due("create_run", (spec,))  # "before" only: no run was made
        if fault is not None:
            raise fault.error()
        return FaultyRunWriter(self.inner.create_run(spec), self)

    def resume_run(self, run_id: str) -> FaultyRunWriter:
        return FaultyRunWriter(self.inner.resume_run(run_id), self)

    def list_runs(self, experiment: str | None = None) -> Sequence[RunInfo]:
        return self.inner.list_runs(experiment)

    def read_run(self, run_id: str) -> RunReader:
        return self.inner.read_run(run_id)

    def close(self) -> None:
        self.inner.close()
