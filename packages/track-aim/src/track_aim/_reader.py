"""Reading one stored Aim run back: the core's RunReader.

A reader holds no Aim object between calls. Each call opens the run's own containers afresh,
reads, converts what it read into track values, and releases them, so a reader (or a view a
user keeps in a variable) never holds a snapshot open: on an Aim server a held read-only
container is served to every other client (see ``_aim_private``), which hid later runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from aim.sdk.run import Run as AimRun

from track_aim import _aim_private as private
from track_aim._convert import KIND_OF_DTYPE, SEQUENCE_TYPE, epoch_of, from_aim
from track_aim._mapping import (
    HIDDEN_PARAMS,
    run_status,
    status_block,
    status_of_block,
    tag_names,
    text_or_none,
)
from track_core.backend import Point, SequenceInfo
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status

if TYPE_CHECKING:
    from track_aim.backend import AimBackend

T = TypeVar("T")


def sequence_infos(
    traces: Sequence[tuple[int, str, str, int]], contexts: Mapping[int, Mapping[str, Any]]
) -> list[SequenceInfo]:
    """track's sequences from Aim's traces (Aim's own sequences, such as logs, are left out)."""
    infos = []
    for ctx_id, name, dtype, last_step in traces:
        kind = KIND_OF_DTYPE.get(dtype)
        if kind is None:  # Aim's own sequences (terminal logs, log records, figures...)
            continue
        context = Context.of(dict(contexts.get(ctx_id, {})))
        infos.append(SequenceInfo(name, context, kind, last_step))
    return infos


def created_at(props: Any) -> float | None:
    """Aim's ``creation_time`` of a run's structured props."""
    created = props.creation_time
    return None if created is None else float(created)


def stored_status(stored: private.StoredRun) -> Status:
    return run_status(status_of_block(status_block(stored.param)), stored.end_time)


@attrs.define
class AimRunReader:
    """One stored Aim run; every call reads what is stored now."""

    _backend: AimBackend
    _hash: str

    def _read(self, action: Callable[[private.StoredRun], T]) -> T:
        with self._backend._read_session() as session:
            return action(session.run(self._hash))

    @property
    def aim_run(self) -> AimRun:
        """Aim's own read-only ``aim.Run`` of this run (indexed first), for what track does not
        cover. Drop it when done: while an ``aim.Run(read_only=True)`` is referenced, an Aim
        3.29 server answers every client's index reads from the snapshot it holds."""
        repo = self._backend._open_repo()
        private.index_run(repo, self._hash)
        run: AimRun = AimRun(self._hash, repo=repo, read_only=True)
        return run

    @property
    def id(self) -> str:
        return self._hash

    @property
    def experiment(self) -> str | None:
        return self._read(lambda run: text_or_none(run.props.experiment))

    @property
    def name(self) -> str | None:
        return self._read(lambda run: text_or_none(run.props.name))

    @property
    def description(self) -> str | None:
        return self._read(lambda run: text_or_none(run.props.description))

    @property
    def tags(self) -> frozenset[str]:
        return self._read(lambda run: frozenset(tag_names(run.props.tags)))

    @property
    def status(self) -> Status:
        return self._read(stored_status)

    @property
    def archived(self) -> bool:
        return self._read(lambda run: bool(run.props.archived))

    @property
    def created_at(self) -> float | None:
        """Aim's ``creation_time``."""
        return self._read(lambda run: created_at(run.props))

    @property
    def ended_at(self) -> float | None:
        """Aim's ``end_time`` (None while the run is active)."""
        return self._read(lambda run: run.end_time)

    @property
    def error(self) -> str | None:
        def action(run: private.StoredRun) -> str | None:
            block = status_block(run.param)
            error = block.get("error") if isinstance(block, dict) else None
            return error if isinstance(error, str) else None

        return self._read(action)

    @property
    def params(self) -> Mapping[str, Param]:
        def action(run: private.StoredRun) -> Mapping[str, Param]:
            return {k: v for k, v in run.params().items() if k not in HIDDEN_PARAMS}

        return self._read(action)

    def sequences(self) -> Sequence[SequenceInfo]:
        return self._read(lambda run: sequence_infos(run.traces(), run.contexts()))

    def points(self, name: str, context: Context) -> Sequence[Point]:
        context = Context.of(context)

        def action(run: private.StoredRun) -> list[Point]:
            dtype = run.dtype(name, context.to_dict())
            kind = None if dtype is None else KIND_OF_DTYPE.get(dtype)
            sequence = (
                None if kind is None else run.sequence(SEQUENCE_TYPE[kind], name, context.to_dict())
            )
            if sequence is None or kind is None or dtype is None:
                raise KeyError(
                    f"run {self._hash} has no sequence {name!r} in context {dict(context)}"
                )
            steps, (values, epochs, timestamps) = sequence.data.numpy()
            return [
                Point(int(step), epoch_of(epoch), float(timestamp), from_aim(value, kind, dtype))
                for step, value, epoch, timestamp in zip(
                    steps, values, epochs, timestamps, strict=True
                )
            ]

        return self._read(action)

    def artifacts(self) -> Sequence[str]:
        return self._read(lambda run: sorted(run.artifacts()))

    def artifact_bytes(self, name: str) -> bytes:
        def action(run: private.StoredRun) -> bytes:
            artifacts = run.artifacts()
            if name not in artifacts:
                raise KeyError(f"run {self._hash} has no artifact {name!r}")
            with tempfile.TemporaryDirectory(prefix="track-aim-") as directory:
                return Path(artifacts[name].download(directory)).read_bytes()

        return self._read(action)
