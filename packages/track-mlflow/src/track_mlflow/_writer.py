"""Writing one MLflow run: ``MlflowRunWriter``."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
from mlflow.entities import Metric, RunTag
from mlflow.entities import Param as MlflowParam
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from track_core.backend import PermanentWriteError, SequenceInfo, TrackedPoint
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_mlflow._artifacts import RunArtifacts
from track_mlflow._epochs import EPOCHS_ARTIFACT, EpochWriter
from track_mlflow._layout import (
    ERROR_ARTIFACT,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VALUE_LENGTH,
    PARAMS_ARTIFACT,
    RESERVED_ARTIFACT_DIR,
    STATUS_TO_MLFLOW,
    TAG_ARCHIVED,
    TAG_ERROR,
    TAG_ERROR_CUT,
    TAG_LOGGED_IMAGES,
    TAG_NOTE,
    TAG_PARAMS_CHANGED,
    encode_points,
    is_image_file,
    label_tag_key,
    label_tags,
    metric_row,
)
from track_mlflow._reader import milliseconds, stored_sequences
from track_mlflow._sql import SqlBatchPath
from track_mlflow.errors import ParamCutWarning, is_unreachable
from track_mlflow.keys import DEFAULT_KEY_STYLE, hash_registry_entry, hashed_key
from track_mlflow.params import fit_value, flatten_params

logger = logging.getLogger("track_mlflow")


#: MLflow error codes that say the request itself is wrong: retrying the same batch never helps
#: (the core then isolates the offending point; see track_core.backend.PermanentWriteError).
PERMANENT_ERROR_CODES = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_LIMIT_EXCEEDED"})


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_missing(error: MlflowException) -> bool:
    return error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def log_batch(
    client: MlflowClient,
    run_id: str,
    metrics: Sequence[Metric] = (),
    params: Sequence[MlflowParam] = (),
    tags: Sequence[RunTag] = (),
) -> None:
    """``log_batch`` within MLflow's limits: params and tags first, then metrics by 1000."""
    params, tags = list(params), list(tags)
    while params or tags:
        params_now, params = params[:MAX_PARAMS_TAGS_PER_BATCH], params[MAX_PARAMS_TAGS_PER_BATCH:]
        tags_now, tags = tags[:MAX_PARAMS_TAGS_PER_BATCH], tags[MAX_PARAMS_TAGS_PER_BATCH:]
        client.log_batch(run_id, params=params_now, tags=tags_now, synchronous=True)
    for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=list(chunk), synchronous=True)


#: ``log_batch`` requests a writer keeps in flight to an MLflow server (its workers take them at
#: once; one sequence's rows are never in two of them).
IN_FLIGHT = 4

#: Full ``log_batch`` requests each of the ``IN_FLIGHT`` lanes sends in turn for a batch of the
#: backend's declared size. A request of whole keys' rows costs an MLflow store less per value
#: the fewer keys it holds (its ``_update_latest_metrics_if_necessary`` reads and writes one
#: ``latest_metrics`` row per key of a request): a lane of several requests holds each key's
#: rows for more steps per request.
REQUESTS_PER_LANE = 4


def _lanes(metrics: Sequence[Metric], lanes: int) -> list[list[Metric]]:
    """The metric rows in at most ``lanes`` groups of whole keys (so one sequence's rows are
    all in one group, in their order), of about equal size; an empty group is left out."""
    by_key: dict[str, list[Metric]] = {}
    for metric in metrics:
        rows = by_key.get(metric.key)
        if rows is None:
            rows = by_key[metric.key] = []
        rows.append(metric)
    groups: list[list[Metric]] = [[] for _ in range(min(lanes, len(by_key)))]
    for rows in sorted(by_key.values(), key=len, reverse=True):
        min(groups, key=len).extend(rows)
    return groups


def log_metrics_in_flight(
    client: MlflowClient, run_id: str, metrics: Sequence[Metric], pool: ThreadPoolExecutor
) -> None:
    """``log_batch`` of ``metrics`` with up to ``IN_FLIGHT`` requests in flight: each group of
    whole keys (``_lanes``) goes in order, in requests of at most 1000 rows, beside the others.
    Returns once every request has ended; raises the first error after all have (a retry of
    the whole batch then stores each row once: MLflow's store keeps one row per (key, timestamp,
    step, value))."""
    groups = _lanes(metrics, IN_FLIGHT)
    if len(groups) <= 1:
        log_batch(client, run_id, metrics)
        return
    futures = [pool.submit(log_batch, client, run_id, group) for group in groups]
    errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


@attrs.define
class MlflowRunWriter:
    """Writes one MLflow run. Every method may be retried: each is idempotent."""

    _client: MlflowClient
    _run_id: str
    _artifacts: RunArtifacts
    _params: dict[str, Param] = attrs.field(factory=dict)
    _logged_params: dict[str, str] = attrs.field(factory=dict)
    _changed_params: list[str] = attrs.field(factory=list)
    _labels: frozenset[str] = frozenset()
    _keys: dict[tuple[str, Context], str] = attrs.field(factory=dict)
    _registered: set[str] = attrs.field(factory=set)
    _images_tagged: bool = False
    _epochs: EpochWriter = attrs.field(factory=EpochWriter)
    #: The run's key style (``track_mlflow.keys``), recorded on the run when it was created.
    _key_style: str = DEFAULT_KEY_STYLE
    #: Send each batch's metric rows newest first (see ``write_points``).
    _newest_first: bool = False
    _warned_long: bool = False
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    #: The bulk path into MLflow's SQL store, for a database tracking URI whose schema is a
    #: known one (``track_mlflow._sql``); None: MLflow's ``log_batch``.
    _sql: SqlBatchPath | None = None
    #: For a tracking server: threads that keep several ``log_batch`` requests in flight.
    _remote: bool = False
    _pool: ThreadPoolExecutor | None = None

    @property
    def id(self) -> str:
        return self._run_id

    def sequences(self) -> Sequence[SequenceInfo]:
        return stored_sequences(self._client, self._run_id, self._artifacts)

    def _registry_tag(self, name: str, context: Context) -> RunTag | None:
        """The registry tag a shortened key needs, unless it was written already."""
        if self._keys[(name, context)] != hashed_key(name, context):
            return None
        tag_key, tag_value = hash_registry_entry(name, context)
        return None if tag_key in self._registered else RunTag(tag_key, tag_value)

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        try:
            self._write_points(points)
        except MlflowException as error:
            if is_unreachable(error):
                raise
            if error.error_code in PERMANENT_ERROR_CODES or _caused_by(error, OverflowError):
                raise PermanentWriteError(f"MLflow refused the batch: {error.message}") from error
            raise
        except OverflowError as error:  # sqlite: a number its INTEGER columns cannot hold
            raise PermanentWriteError(f"MLflow's store cannot hold a value: {error}") from error

    def _write_points(self, points: Sequence[TrackedPoint]) -> None:
        with self._lock:
            metrics, files, sequences = encode_points(
                points,
                self._keys,
                self._epochs,
                self._key_style,
                Metric if self._sql is None else metric_row,
            )
            tags: dict[str, RunTag] = {}
            for name, context in sequences:
                tag = self._registry_tag(name, context)
                if tag is not None:
                    tags[tag.key] = tag
            if not self._images_tagged and any(is_image_file(path) for path in files):
                tags[TAG_LOGGED_IMAGES] = RunTag(TAG_LOGGED_IMAGES, "true")
            if self._epochs.dirty:
                # Before the metric rows: a row is never stored without its epoch. A batch that
                # fails is retried whole, and the file is written again until one succeeds.
                files[EPOCHS_ARTIFACT] = self._epochs.document()
            self._artifacts.put(files)
            self._epochs.dirty = False
            if self._sql is not None:
                self._sql.log_batch(self._run_id, metrics, list(tags.values()))
            elif self._remote:
                log_batch(self._client, self._run_id, tags=list(tags.values()))
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="track-mlflow")
                log_metrics_in_flight(self._client, self._run_id, metrics, self._pool)
            else:
                if self._newest_first:
                    # MLflow's SQL store compares every row with its key's latest value and
                    # rewrites that value whenever the row is newer: in tracking order, once per
                    # row; newest first, once per key and batch. Its reads order rows by
                    # timestamp and step, so the insertion order is not visible.
                    metrics.reverse()
                log_batch(self._client, self._run_id, metrics, tags=list(tags.values()))
            self._registered.update(tags)
            if TAG_LOGGED_IMAGES in tags:
                self._images_tagged = True

    def set_params(self, params: Mapping[str, Param]) -> None:
        with self._lock:
            merged = {**self._params, **copy.deepcopy(dict(params))}
            flat = flatten_params(params)
            new: dict[str, str] = {}
            changed: list[str] = []
            cut: list[str] = []
            for key, text in flat.items():
                stored, was_cut = fit_value(text)
                if was_cut:
                    cut.append(key)
                previous = self._logged_params.get(key)
                if previous is None:
                    new[key] = stored
                elif previous != stored and key not in self._changed_params:
                    changed.append(key)
            if cut and not self._warned_long:
                warnings.warn(
                    ParamCutWarning(
                        f"MLflow params hold at most 6000 characters: the value of {cut[0]!r} "
                        f"({len(flat[cut[0]])} characters) is shown cut in MLflow's params; the "
                        f"whole value is kept in the artifact {PARAMS_ARTIFACT}",
                        cut[0],
                    ),
                    stacklevel=2,
                )
            tags: list[RunTag] = []
            all_changed = self._changed_params + changed
            if changed:
                logger.warning(
                    "MLflow cannot change a param's value: %s keep%s the first value in MLflow's "
                    "params; the latest value is in the artifact %s (and read_run returns it)",
                    ", ".join(changed),
                    "s" if len(changed) == 1 else "",
                    PARAMS_ARTIFACT,
                )
                text = json.dumps(all_changed)
                if len(text) > MAX_TAG_VALUE_LENGTH:
                    text = text[: MAX_TAG_VALUE_LENGTH - 5] + " ...]"
                tags.append(RunTag(TAG_PARAMS_CHANGED, text))
            document = json.dumps({"params": merged}, ensure_ascii=False, indent=1).encode()
            self._artifacts.put({PARAMS_ARTIFACT: document})
            log_batch(
                self._client,
                self._run_id,
                params=[MlflowParam(k, v) for k, v in new.items()],
                tags=tags,
            )
            self._params = merged
            self._logged_params.update(new)
            self._changed_params = all_changed
            self._warned_long = self._warned_long or bool(cut)

    def set_name(self, name: str) -> None:
        self._client.update_run(self._run_id, name=name)

    def set_description(self, description: str) -> None:
        self._client.set_tag(self._run_id, TAG_NOTE, description)

    def set_archived(self, archived: bool) -> None:
        # MLflow's only way to hide a run is deletion, which `mlflow gc` makes permanent: a tag
        # keeps the run and lets the UI filter on it (`tags.track.archived != "true"`).
        self._client.set_tag(self._run_id, TAG_ARCHIVED, "true" if archived else "false")

    def set_tags(self, tags: frozenset[str]) -> None:
        with self._lock:
            for label in sorted(self._labels - tags):
                try:
                    self._client.delete_tag(self._run_id, label_tag_key(label))
                except MlflowException as error:
                    if not is_missing(error):
                        raise
            log_batch(self._client, self._run_id, tags=label_tags(tags))
            self._labels = frozenset(tags)

    def log_artifact(self, path: str, name: str) -> None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot log artifact {name!r}: no file at {path!r}")
        name = name.strip("/")
        if not name or name.split("/")[0] == RESERVED_ARTIFACT_DIR or ".." in name.split("/"):
            raise ValueError(
                f"artifact name {name!r} is not allowed: use a relative path that is not under "
                f"{RESERVED_ARTIFACT_DIR}/ (reserved for track) and has no '..'"
            )
        directory, _, filename = name.rpartition("/")
        if filename == source.name:
            self._artifacts.put_file(source, directory or None)
            return
        with tempfile.TemporaryDirectory(prefix="track-mlflow-") as tmp:
            renamed = Path(tmp, filename)
            shutil.copyfile(source, renamed)
            self._artifacts.put_file(renamed, directory or None)

    def close(self, status: Status, error: str | None, ended_at: float | None = None) -> None:
        """End the run with ``status`` (MLflow's ``set_terminated``), at ``ended_at`` (seconds
        since the epoch) when given, else now."""
        if error:
            tags = [RunTag(TAG_ERROR, error)]
            if len(error) > MAX_TAG_VALUE_LENGTH:
                note = f" ... [cut: the whole error is in the artifact {ERROR_ARTIFACT}]"
                tags = [
                    RunTag(TAG_ERROR, error[: MAX_TAG_VALUE_LENGTH - len(note)] + note),
                    RunTag(TAG_ERROR_CUT, "true"),
                ]
            self._artifacts.put({ERROR_ARTIFACT: error.encode()})
            log_batch(self._client, self._run_id, tags=tags)
        end = None if ended_at is None or status is Status.RUNNING else milliseconds(ended_at)
        self._client.set_terminated(self._run_id, STATUS_TO_MLFLOW[status], end_time=end)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
