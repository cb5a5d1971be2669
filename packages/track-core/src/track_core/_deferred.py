"""A run whose backend was unreachable when it started: it is created there when it is back.

``start_run`` gives such a run an id of track's own (``track-<hex>``) and a ``DeferredRunWriter``:
the first write creates the run on the backend (with its experiment, name, description and
tags), then every spooled item follows in order. Until then each write raises, so the
background writer spools everything and retries, as for any outage. Once created, the
backend's id is written to a marker file next to the spool (``<spool>.created``), so a later
``python -m track_core replay`` of what is left appends to that run instead of creating a second
one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from track_core.backend import RunSpec, RunWriter, SequenceInfo, TrackedPoint
from track_core.params import Param
from track_core.status import Status

#: Ids that track gives runs not yet created on their backend start with this.
OWN_ID_PREFIX = "track-"
#: The marker next to a spool file that names the backend's id of a deferred run.
CREATED_SUFFIX = ".created"


def new_own_id() -> str:
    return f"{OWN_ID_PREFIX}{uuid.uuid4().hex}"


def spec_to_meta(spec: RunSpec) -> dict[str, Any]:
    """A RunSpec as JSON data, for a spool header."""
    return {
        "experiment": spec.experiment,
        "name": spec.name,
        "description": spec.description,
        "tags": sorted(spec.tags),
    }


def spec_from_meta(data: Mapping[str, Any]) -> RunSpec:
    return RunSpec(
        data.get("experiment"),
        data.get("name"),
        data.get("description"),
        frozenset(data.get("tags") or ()),
    )


def marker_of(spool_path: Path) -> Path:
    return spool_path.with_name(spool_path.name + CREATED_SUFFIX)


def created_id(spool_path: Path) -> str | None:
    """The backend's id of the deferred run a spool file belongs to, once created."""
    try:
        return marker_of(spool_path).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


class DeferredRunWriter:
    """A RunWriter that creates its run on first use (see the module docstring)."""

    def __init__(self, create: Callable[[], RunWriter], own_id: str) -> None:
        self._create = create
        self._own_id = own_id
        #: Where the backend's id is written once the run is created (next to the spool).
        self.marker: Path | None = None
        self._inner: RunWriter | None = None

    @property
    def id(self) -> str:
        """Track's own id: the run's id for its whole life in this process."""
        return self._own_id

    @property
    def backend_id(self) -> str | None:
        """The backend's id of the run, once it is created there."""
        return self._inner.id if self._inner is not None else None

    @property
    def pid(self) -> int | None:
        return getattr(self._inner, "pid", None)

    def _target(self) -> RunWriter:
        if self._inner is None:
            inner = self._create()  # raises while the backend is unreachable
            if self.marker is not None:
                self.marker.parent.mkdir(parents=True, exist_ok=True)
                with open(self.marker, "w", encoding="utf-8") as stream:
                    stream.write(inner.id)
                    stream.flush()
                    os.fsync(stream.fileno())
            self._inner = inner
        return self._inner

    def sequences(self) -> Sequence[SequenceInfo]:
        return self._target().sequences()

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        self._target().write_points(points)

    def set_params(self, params: Mapping[str, Param]) -> None:
        self._target().set_params(params)

    def set_name(self, name: str) -> None:
        self._target().set_name(name)

    def set_description(self, description: str) -> None:
        self._target().set_description(description)

    def set_tags(self, tags: frozenset[str]) -> None:
        self._target().set_tags(tags)

    def log_artifact(self, path: str, name: str) -> None:
        self._target().log_artifact(path, name)

    def set_archived(self, archived: bool) -> None:
        self._target().set_archived(archived)

    def close(self, status: Status, error: str | None) -> None:
        self._target().close(status, error)
