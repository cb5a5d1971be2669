"""The conformance kit's storage reader: reads a run with ``MlflowClient`` only.

It does not use ``track_mlflow``'s reader. It reuses the pure key decoding (``decode_key``),
since how a sequence is named in MLflow is part of the storage format; everything else (metric
rows, tags, the artifact layout) is read here from MLflow's own API.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from track_core.backend import Point, SequenceInfo
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_core.values import Distribution, Image, Text, Value, ValueKind
from track_mlflow.keys import decode_key

_STATUS = {
    "FINISHED": Status.FINISHED,
    "FAILED": Status.FAILED,
    "KILLED": Status.KILLED,
    "RUNNING": Status.RUNNING,
}
_KINDS = {"image": ValueKind.IMAGE, "text": ValueKind.TEXT, "distribution": ValueKind.DISTRIBUTION}


def _read(client: MlflowClient, run_id: str, path: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()


class MlflowStorageReader:
    """A ``RunReader`` over ``MlflowClient`` calls."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self._client = MlflowClient(tracking_uri)
        self._run = self._client.get_run(run_id)
        self._tags: dict[str, str] = dict(self._run.data.tags)

    @property
    def id(self) -> str:
        return str(self._run.info.run_id)

    @property
    def experiment(self) -> str | None:
        experiment_id = self._run.info.experiment_id
        if experiment_id == "0":
            return None
        return str(self._client.get_experiment(experiment_id).name)

    @property
    def name(self) -> str | None:
        return self._run.info.run_name  # type: ignore[no-any-return]

    @property
    def description(self) -> str | None:
        return self._tags.get("mlflow.note.content")

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(json.loads(self._tags.get("mlflow.track.tags", "[]")))

    @property
    def status(self) -> Status:
        return _STATUS[self._run.info.status]

    @property
    def created_at(self) -> float | None:
        """MlflowClient's ``info.start_time`` (ms), in seconds."""
        start = self._run.info.start_time
        return None if start is None else start / 1000.0

    @property
    def ended_at(self) -> float | None:
        """MlflowClient's ``info.end_time`` (ms), in seconds; None while the run runs."""
        end = self._run.info.end_time
        if end is None or self._run.info.status == "RUNNING":
            return None
        return end / 1000.0

    @property
    def archived(self) -> bool:
        return self._tags.get("track.archived") == "true"

    @property
    def error(self) -> str | None:
        if self._tags.get("track.error.cut") == "true":
            return _read(self._client, self.id, "track/error.txt").decode()
        return self._tags.get("track.error")

    @property
    def params(self) -> Mapping[str, Param]:
        document: dict[str, Any] = json.loads(_read(self._client, self.id, "track/params.json"))
        return document["params"]  # type: ignore[no-any-return]

    def _listing(self) -> dict[tuple[str, Context], tuple[ValueKind, str]]:
        found: dict[tuple[str, Context], tuple[ValueKind, str]] = {}
        for key in self._run.data.metrics:
            if not key.endswith(" :: epoch"):
                found[decode_key(key, self._tags)] = (ValueKind.SCALAR, key)
        for kind_dir, kind in _KINDS.items():
            for info in self._client.list_artifacts(self.id, f"track/{kind_dir}"):
                key = info.path.rsplit("/", 1)[-1].replace("~", "/")
                found[decode_key(key, self._tags)] = (kind, info.path)
        return found

    def sequences(self) -> Sequence[SequenceInfo]:
        result = []
        for (name, context), (kind, _) in self._listing().items():
            steps = [p.step for p in self.points(name, context)]
            result.append(SequenceInfo(name, context, kind, max(steps) if steps else -1))
        return result

    def _epoch_ranges(self, key: str) -> list[tuple[int, int | None]]:
        """``(first step, epoch)`` pairs of ``key`` in ``track/epochs.json`` ([] if none)."""
        try:
            document = json.loads(_read(self._client, self.id, "track/epochs.json"))
        except Exception:  # a run without epochs has no such file
            return []
        assert document["format"] == 1
        return [(int(start), epoch) for start, epoch in document["sequences"].get(key, [])]

    def _epochs(self, key: str, rows: Sequence[Any]) -> dict[tuple[int, int], int | None]:
        """The epoch of each metric row, by (step, timestamp)."""
        if key + " :: epoch" in self._run.data.metrics:  # a run written before epochs.json
            return {
                (m.step, m.timestamp): int(m.value)
                for m in self._client.get_metric_history(self.id, key + " :: epoch")
            }
        ranges = self._epoch_ranges(key)
        result: dict[tuple[int, int], int | None] = {}
        for row in rows:  # the range that starts last at or before the row's step
            starting = [(start, epoch) for start, epoch in ranges if start <= row.step]
            result[(row.step, row.timestamp)] = (
                max(starting, key=lambda pair: pair[0])[1] if starting else None
            )
        return result

    def points(self, name: str, context: Context) -> Sequence[Point]:
        kind, where = self._listing()[(name, Context.of(context))]
        if kind is ValueKind.SCALAR:
            rows = self._client.get_metric_history(self.id, where)
            epochs = self._epochs(where, rows)
            last: dict[int, Any] = {}
            for row in sorted(rows, key=lambda m: (m.step, m.timestamp)):
                last[row.step] = row
            points = []
            for step in sorted(last):
                row = last[step]
                number: float = row.value
                if number == sys.float_info.max:
                    number = math.inf
                elif number == -sys.float_info.max:
                    number = -math.inf
                points.append(
                    Point(step, epochs.get((step, row.timestamp)), row.timestamp / 1000, number)
                )
            return points
        records = []
        for info in self._client.list_artifacts(self.id, where):
            records.append(json.loads(_read(self._client, self.id, info.path)))
        records.sort(key=lambda record: record["step"])
        result = []
        for record in records:
            value: Value
            if kind is ValueKind.IMAGE:
                png = _read(self._client, self.id, record["png"])
                value = Image.from_png(png, record["caption"] or None)
            elif kind is ValueKind.TEXT:
                value = Text(record["text"])
            else:
                value = Distribution(bin_edges=record["bin_edges"], counts=record["counts"])
            result.append(Point(record["step"], record["epoch"], record["timestamp"], value))
        return result

    def artifacts(self) -> Sequence[str]:
        files: list[str] = []
        pending: list[str | None] = [None]
        while pending:
            for info in self._client.list_artifacts(self.id, pending.pop()):
                if info.is_dir:
                    pending.append(info.path)
                elif not info.path.startswith("track/") and not (
                    info.path.startswith("images/") and "+step+" in info.path
                ):
                    files.append(info.path)
        return sorted(files)

    def artifact_bytes(self, name: str) -> bytes:
        return _read(self._client, self.id, name)
