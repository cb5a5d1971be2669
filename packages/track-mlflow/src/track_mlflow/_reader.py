"""Reading one MLflow run back: ``MlflowRunReader``."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from track_core.backend import Point, SequenceInfo
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_core.values import ValueKind
from track_mlflow._artifacts import MISSING_ARTIFACT_ERRORS, RunArtifacts
from track_mlflow._compat import latest_metrics
from track_mlflow._epochs import EPOCHS_ARTIFACT, EpochRanges, parse_document
from track_mlflow._layout import (
    ERROR_ARTIFACT,
    NON_SCALAR_KINDS,
    PARAMS_ARTIFACT,
    RESERVED_ARTIFACT_DIR,
    TAG_ARCHIVED,
    TAG_ERROR,
    TAG_ERROR_CUT,
    TAG_NOTE,
    artifact_dir_name,
    decode_record,
    is_internal_artifact,
    key_of_artifact_dir,
    labels_of,
    read_metric_value,
)
from track_mlflow.keys import EPOCH_SUFFIX, decode_key, encode_key, is_epoch_key, key_style_of


def milliseconds(seconds: float) -> int:
    """A time as MLflow keeps it (integer milliseconds since the epoch)."""
    return round(seconds * 1000)


def run_times(info: Any, status: Status) -> tuple[float | None, float | None]:
    """A run's start and end times in seconds, from MLflow's ``RunInfo``. A resumed run keeps
    MLflow's old ``end_time`` while it runs again: it has no end time until it ends."""
    start = None if info.start_time is None else info.start_time / 1000.0
    if info.end_time is None or status is Status.RUNNING:
        return start, None
    return start, info.end_time / 1000.0


def read_epochs(artifacts: RunArtifacts) -> dict[str, EpochRanges]:
    """The epochs of a run's scalar sequences by key ({} for a run that has none)."""
    try:
        return parse_document(artifacts.read(EPOCHS_ARTIFACT))
    except MISSING_ARTIFACT_ERRORS:
        return {}


def scalar_points(
    client: MlflowClient, run_id: str, key: str, epochs: EpochRanges | None, companion: bool
) -> list[Point]:
    """A scalar sequence from its metric rows, one point per step (the last written wins).
    Its epochs are in ``epochs``, or for a run written before ``track/epochs.json`` existed, in
    the ``companion`` metric ``<key> :: epoch``."""
    rows = client.get_metric_history(run_id, key)
    by_step: dict[int, Metric] = {}
    for row in sorted(rows, key=lambda m: (m.step, m.timestamp)):
        by_step[row.step] = row
    old_epochs: dict[tuple[int, int], float] = {}
    if companion:
        old_epochs = {
            (m.step, m.timestamp): m.value
            for m in client.get_metric_history(run_id, key + EPOCH_SUFFIX)
        }
    points = []
    for step in sorted(by_step):
        row = by_step[step]
        epoch: int | None
        if companion:
            found = old_epochs.get((row.step, row.timestamp))
            epoch = None if found is None else int(found)
        else:
            epoch = None if epochs is None else epochs.at(step)
        points.append(Point(step, epoch, row.timestamp / 1000.0, read_metric_value(row.value)))
    return points


def stored_sequences(
    client: MlflowClient, run_id: str, artifacts: RunArtifacts
) -> list[SequenceInfo]:
    """The sequences stored for a run: metrics, then artifact sequences."""
    run = client.get_run(run_id)
    tags = run.data.tags
    result: list[SequenceInfo] = []
    for metric in latest_metrics(run):  # the latest row of each key: its step is the last
        if is_epoch_key(metric.key):
            continue
        name, context = decode_key(metric.key, tags)
        result.append(SequenceInfo(name, context, ValueKind.SCALAR, int(metric.step)))
    for kind in NON_SCALAR_KINDS:
        for path, is_dir in artifacts.entries(f"{RESERVED_ARTIFACT_DIR}/{kind.value}"):
            if not is_dir:
                continue
            key = key_of_artifact_dir(path.rsplit("/", 1)[-1])
            steps = [
                int(entry.rsplit("/", 1)[-1].removesuffix(".json"))
                for entry, _ in artifacts.entries(path)
                if entry.endswith(".json")
            ]
            name, context = decode_key(key, tags)
            result.append(SequenceInfo(name, context, kind, max(steps) if steps else -1))
    return result


@attrs.define
class MlflowRunReader:
    """Reads one MLflow run back."""

    _client: MlflowClient
    _run_id: str
    _artifacts: RunArtifacts
    _experiment: str | None
    _name: str | None
    _tags: dict[str, str]
    _status: Status
    _params_flat: dict[str, str]
    #: The run's metric keys (to tell runs with ``<key> :: epoch`` companion metrics).
    _metric_keys: frozenset[str] = frozenset()
    _created_at: float | None = None
    _ended_at: float | None = None
    _params_cache: dict[str, Param] | None = None
    _epochs_cache: dict[str, EpochRanges] | None = None
    #: The kind of each sequence, from the last listing (``points`` looks a sequence up here,
    #: and lists the run's sequences again only for one it does not know yet).
    _kinds_cache: dict[tuple[str, Context], ValueKind] | None = None

    @property
    def id(self) -> str:
        return self._run_id

    @property
    def experiment(self) -> str | None:
        return self._experiment

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def description(self) -> str | None:
        return self._tags.get(TAG_NOTE)

    @property
    def tags(self) -> frozenset[str]:
        return labels_of(self._tags)

    @property
    def status(self) -> Status:
        return self._status

    @property
    def archived(self) -> bool:
        return self._tags.get(TAG_ARCHIVED) == "true"

    @property
    def created_at(self) -> float | None:
        """MLflow's ``start_time``, in seconds."""
        return self._created_at

    @property
    def ended_at(self) -> float | None:
        """MLflow's ``end_time``, in seconds (None while the run runs)."""
        return self._ended_at

    @property
    def error(self) -> str | None:
        error = self._tags.get(TAG_ERROR)
        if error is not None and self._tags.get(TAG_ERROR_CUT) == "true":
            return self._artifacts.read(ERROR_ARTIFACT).decode()
        return error

    @property
    def params(self) -> Mapping[str, Param]:
        if self._params_cache is None:
            try:
                document = json.loads(self._artifacts.read(PARAMS_ARTIFACT))
                self._params_cache = document["params"]
            except MISSING_ARTIFACT_ERRORS:  # a run track did not write: MLflow's params
                self._params_cache = dict(self._params_flat)
        return copy.deepcopy(self._params_cache)

    def sequences(self) -> Sequence[SequenceInfo]:
        infos = stored_sequences(self._client, self._run_id, self._artifacts)
        self._kinds_cache = {(info.name, Context.of(info.context)): info.kind for info in infos}
        return infos

    def _kind(self, name: str, context: Context) -> ValueKind:
        kind = None if self._kinds_cache is None else self._kinds_cache.get((name, context))
        if kind is None:  # not listed yet, or new since: list the run's sequences again
            self.sequences()
            assert self._kinds_cache is not None
            kind = self._kinds_cache.get((name, context))
        if kind is None:
            raise KeyError(
                f"run {self._run_id} has no sequence {name!r} in context {dict(context)}"
            )
        return kind

    def points(self, name: str, context: Context) -> Sequence[Point]:
        context = Context.of(context)
        key = encode_key(name, context, key_style_of(self._tags))
        kind = self._kind(name, context)
        if kind is ValueKind.SCALAR:
            companion = key + EPOCH_SUFFIX in self._metric_keys
            if self._epochs_cache is None and not companion:
                self._epochs_cache = read_epochs(self._artifacts)
            epochs = None if companion else (self._epochs_cache or {}).get(key)
            return scalar_points(self._client, self._run_id, key, epochs, companion)
        directory = f"{RESERVED_ARTIFACT_DIR}/{kind.value}/{artifact_dir_name(key)}"
        records = [json.loads(data) for data in self._artifacts.read_dir(directory).values()]
        records.sort(key=lambda r: int(r["step"]))
        points = []
        for record in records:
            png = self._artifacts.read(record["png"]) if kind is ValueKind.IMAGE else None
            points.append(decode_record(kind, record, png))
        return points

    def artifacts(self) -> Sequence[str]:
        return [p for p in self._artifacts.files() if not is_internal_artifact(p)]

    def artifact_bytes(self, name: str) -> bytes:
        if is_internal_artifact(name):
            raise KeyError(f"no artifact {name!r} in run {self._run_id}")
        try:
            return self._artifacts.read(name)
        except MISSING_ARTIFACT_ERRORS as error:
            raise KeyError(f"no artifact {name!r} in run {self._run_id}: {error}") from None
