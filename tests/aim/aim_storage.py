"""A RunReader written directly on Aim's own SDK.

``AimStorageReader`` never goes through track_aim: it opens the repo with ``aim.Repo``, indexes the
run with Aim's ``RepoIndexManager`` (what ``aim up`` / ``aim storage reindex`` do) and reads it
with ``aim.Run(hash, read_only=True)``, so the conformance kit checks what really landed in Aim.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aim
from aim.sdk.index_manager import RepoIndexManager
from aim.sdk.repo import ContainerConfig, Repo
from aim.storage.context import Context as AimContext

from track_core.backend import Point, SequenceInfo
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_core.values import Distribution, Image, Text, Value, ValueKind

_KINDS = {
    "float": ValueKind.SCALAR,
    "int": ValueKind.SCALAR,
    "number": ValueKind.SCALAR,
    "aim.image": ValueKind.IMAGE,
    "aim.text": ValueKind.TEXT,
    "aim.distribution": ValueKind.DISTRIBUTION,
}


def open_aim_run(repo_root: Path | str, run_hash: str) -> aim.Run:
    """A read-only aim.Run, after indexing it as ``aim up`` would."""
    repo = Repo.from_path(str(repo_root))
    if run_hash not in repo.list_all_runs():
        raise KeyError(run_hash)
    with contextlib.suppress(Exception):  # a live aim server may hold the index: it is indexed
        RepoIndexManager.get_index_manager(repo).index(run_hash)
    # A read-only RocksDB is a snapshot: drop the cached index so that reads see the new one.
    # (Clearing the whole pool also drops write handles that still hold their RocksDB lock.)
    repo.container_pool.pop(ContainerConfig("meta", None, True), None)
    # Aim's structured DB keeps one SQLAlchemy session per thread, and a query does not refresh
    # an object already in its identity map: a pooled Repo would read props (archived, name,
    # tags) as they were at the first read. Expire them so that this read sees the database.
    repo.structured_db.get_session().expire_all()
    run = repo.get_run(run_hash)
    if run is None:
        raise KeyError(run_hash)
    return run


class AimStorageReader:
    """track_core's RunReader, implemented on ``aim.Run`` alone."""

    def __init__(self, run: aim.Run) -> None:
        self.run = run

    @property
    def id(self) -> str:
        return str(self.run.hash)

    @property
    def experiment(self) -> str | None:
        return self.run.experiment  # type: ignore[no-any-return]

    @property
    def name(self) -> str | None:
        return self.run.name  # type: ignore[no-any-return]

    @property
    def description(self) -> str | None:
        return self.run.description  # type: ignore[no-any-return]

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.run.tags)

    @property
    def status(self) -> Status:
        if self.run.active:
            return Status.RUNNING
        return Status(self.run["__system_params", "track", "status"])

    @property
    def created_at(self) -> float | None:
        """Aim's ``Run.creation_time``."""
        return self.run.creation_time  # type: ignore[no-any-return]

    @property
    def ended_at(self) -> float | None:
        """Aim's ``Run.end_time`` (None while the run is active)."""
        return self.run.end_time  # type: ignore[no-any-return]

    @property
    def archived(self) -> bool:
        return bool(self.run.archived)  # Aim's own flag, the one its UI filters on

    @property
    def error(self) -> str | None:
        return self.run["__system_params", "track", "error"]  # type: ignore[no-any-return]

    @property
    def params(self) -> Mapping[str, Param]:
        params = dict(self.run[...])
        params.pop("__system_params", None)  # track's status block, Aim's system params
        return params

    def sequences(self) -> Sequence[SequenceInfo]:
        infos = []
        for ctx_id, traces in self.run.meta_run_tree.collect("traces").items():
            context = Context(self.run.idx_to_ctx(ctx_id).to_dict())
            for name, trace in traces.items():
                infos.append(
                    SequenceInfo(name, context, _KINDS[trace["dtype"]], trace["last_step"])
                )
        return infos

    def points(self, name: str, context: Context) -> Sequence[Point]:
        aim_context = AimContext(dict(context))
        getters = [
            (self.run.get_metric, ValueKind.SCALAR),
            (self.run.get_image_sequence, ValueKind.IMAGE),
            (self.run.get_text_sequence, ValueKind.TEXT),
            (self.run.get_distribution_sequence, ValueKind.DISTRIBUTION),
        ]
        for getter, kind in getters:
            sequence = getter(name, aim_context)
            if sequence is not None:
                steps, (values, epochs, stamps) = sequence.data.numpy()
                return [
                    Point(
                        int(step),
                        None if math.isnan(epoch) else int(epoch),
                        float(stamp),
                        _value(value, kind),
                    )
                    for step, value, epoch, stamp in zip(steps, values, epochs, stamps, strict=True)
                ]
        raise KeyError((name, context))

    def artifacts(self) -> Sequence[str]:
        return sorted(self.run.artifacts)

    def artifact_bytes(self, name: str) -> bytes:
        with tempfile.TemporaryDirectory() as directory:
            return Path(self.run.artifacts[name].download(directory)).read_bytes()


def _value(stored: Any, kind: ValueKind) -> Value:
    if kind is ValueKind.SCALAR:
        return float(stored)
    if kind is ValueKind.IMAGE:
        return Image(stored.to_pil_image(), caption=stored.caption)
    if kind is ValueKind.TEXT:
        return Text(stored.data)
    weights, edges = stored.to_np_histogram()
    return Distribution(bin_edges=edges, counts=weights)
