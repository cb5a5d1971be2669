"""The MLflow backend: runs stored through ``MlflowClient`` with explicit run ids."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
from mlflow.entities import Metric, RunTag
from mlflow.entities import Param as MlflowParam
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from track_core.backend import (
    Capability,
    Point,
    RunInfo,
    RunSpec,
    SequenceInfo,
    TrackedPoint,
)
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_core.values import Distribution, Image, Text, Value, ValueKind
from track_mlflow.keys import (
    EPOCH_SUFFIX,
    HASH_TAG_PREFIX,
    MAX_SEQUENCE_KEY_LENGTH,
    decode_key,
    encode_key,
    escape_segment,
    hash_registry_entry,
    is_epoch_key,
    readable_key,
)
from track_mlflow.params import fit_value, flatten_params
from track_mlflow.uri import ResolvedLocation, resolve_location

logger = logging.getLogger("track_mlflow")

MAX_METRICS_PER_BATCH: Final = 1000
MAX_PARAMS_TAGS_PER_BATCH: Final = 100
MAX_ENTITIES_PER_BATCH: Final = 1000
MAX_TAG_VALUE_LENGTH: Final = 8000
DOUBLE_MAX: Final = sys.float_info.max

#: Tags track writes (besides MLflow's own ``mlflow.runName`` and ``mlflow.note.content``).
TAG_LABELS: Final = "track.tags"
TAG_ERROR: Final = "track.error"
TAG_ERROR_CUT: Final = "track.error.cut"
TAG_PARAMS_CHANGED: Final = "track.params.changed"
TAG_LOGGED_IMAGES: Final = "mlflow.loggedImages"
TAG_NOTE: Final = "mlflow.note.content"
TAG_ARCHIVED: Final = "track.archived"
PARAMS_ARTIFACT: Final = "track/params.json"
ERROR_ARTIFACT: Final = "track/error.txt"
RESERVED_ARTIFACT_DIR: Final = "track"
IMAGES_DIR: Final = "images"

_STATUS_TO_MLFLOW: Final = {
    Status.FINISHED: "FINISHED",
    Status.FAILED: "FAILED",
    Status.KILLED: "KILLED",
    Status.RUNNING: "RUNNING",
}
_MLFLOW_TO_STATUS: Final = {
    "FINISHED": Status.FINISHED,
    "FAILED": Status.FAILED,
    "KILLED": Status.KILLED,
    "RUNNING": Status.RUNNING,
    "SCHEDULED": Status.RUNNING,
}
_NON_SCALAR_KINDS: Final = (ValueKind.IMAGE, ValueKind.TEXT, ValueKind.DISTRIBUTION)
_OPTIONS: Final = ("artifact_location", "http_timeout", "http_retries")


def _is_missing(error: MlflowException) -> bool:
    return error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def metric_value(value: float) -> float:
    """What MLflow stores for ``value`` (ints become doubles; ±inf is kept by MLflow as ±DBL_MAX)."""
    try:
        return float(value)
    except OverflowError:  # an int beyond the double range
        return math.inf if value > 0 else -math.inf


def read_metric_value(value: float | None, is_nan: bool = False) -> float:
    """A stored metric value as tracked: ±DBL_MAX reads back as ±inf, a missing value as NaN."""
    if value is None or is_nan:
        return math.nan
    if value == DOUBLE_MAX:
        return math.inf
    if value == -DOUBLE_MAX:
        return -math.inf
    return float(value)


def artifact_dir_name(key: str) -> str:
    """The artifact directory of a sequence: its metric key with ``/`` as ``~`` (as MLflow's
    ``log_image`` does; ``~`` never appears in a key)."""
    return key.replace("/", "~")


def key_of_artifact_dir(name: str) -> str:
    return name.replace("~", "/")


def label_tag_key(label: str) -> str:
    """The MLflow tag key that shows a track tag (a label) in the UI."""
    key = escape_segment(label).replace("/", ":2f")
    if key.startswith(("mlflow.", "track.")) or key.startswith(".."):
        key = f":{ord(key[0]):02x}{key[1:]}"
    if len(key) > MAX_SEQUENCE_KEY_LENGTH:
        key = key[:200] + ":" + hashlib.sha256(label.encode()).hexdigest()[:16]
    return key


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _point_record(point: TrackedPoint) -> dict[str, Any]:
    return {"step": point.step, "epoch": point.epoch, "timestamp": point.timestamp}


def _webp_preview(png: bytes) -> bytes | None:
    try:
        from mlflow.tracking.multimedia import compress_image_size
        from PIL import Image as PILImage

        picture = PILImage.open(io.BytesIO(png))
        small = compress_image_size(picture)
        buffer = io.BytesIO()
        small.save(buffer, format="WEBP")
        return buffer.getvalue()
    except Exception:  # the preview is a UI nicety only
        return None


def encode_points(
    points: Iterable[TrackedPoint], keys: dict[tuple[str, Context], str]
) -> tuple[list[Metric], dict[str, bytes], list[tuple[str, Context]]]:
    """The metric rows, the artifact files (path -> bytes) and the distinct sequences of a batch
    of points, in one pass over it. ``keys`` caches each sequence's metric key."""
    metrics: list[Metric] = []
    files: dict[str, bytes] = {}
    sequences: dict[tuple[str, Context], str] = {}
    for point in points:
        identity = (point.name, point.context)
        key = sequences.get(identity)
        if key is None:
            key = keys.get(identity)
            if key is None:
                key = keys[identity] = encode_key(point.name, point.context)
            sequences[identity] = key
        ms = round(point.timestamp * 1000)
        if point.kind is ValueKind.SCALAR:
            metrics.append(Metric(key, metric_value(point.value), ms, point.step))  # type: ignore[arg-type]
            if point.epoch is not None:
                metrics.append(Metric(key + EPOCH_SUFFIX, float(point.epoch), ms, point.step))
            continue
        record = _point_record(point)
        value = point.value
        directory = artifact_dir_name(key)
        if isinstance(value, Image):
            digest = hashlib.sha256(value.png).hexdigest()[:12]
            stem = f"{IMAGES_DIR}/{directory}+step+{point.step}+timestamp+{ms}+{digest}"
            files[f"{stem}.png"] = value.png
            preview = _webp_preview(value.png)
            if preview is not None:
                files[f"{stem}+compressed.webp"] = preview
            record.update(
                caption=value.caption,
                width=value.width,
                height=value.height,
                mode=value.mode,
                png=f"{stem}.png",
            )
        elif isinstance(value, Text):
            record["text"] = value.text
        elif isinstance(value, Distribution):
            record["bin_edges"] = list(value.bin_edges)
            record["counts"] = list(value.counts)
        else:  # pragma: no cover - the core checks kinds
            raise TypeError(f"cannot store a {type(value).__name__} as {point.kind}")
        data = json.dumps(record, ensure_ascii=False, indent=1).encode()
        files[f"{RESERVED_ARTIFACT_DIR}/{point.kind.value}/{directory}/{point.step}.json"] = data
    return metrics, files, list(sequences)


def upload_files(client: MlflowClient, run_id: str, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (artifact path -> bytes) with one ``log_artifacts`` call."""
    if not files:
        return
    with tempfile.TemporaryDirectory(prefix="track-mlflow-") as tmp:
        for relative, data in files.items():
            path = Path(tmp, *relative.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        client.log_artifacts(run_id, tmp)


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


# --- reading -------------------------------------------------------------------------------------


def list_files(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file under ``path`` (recursively)."""
    result: list[str] = []
    pending = [path]
    while pending:
        current = pending.pop()
        for info in client.list_artifacts(run_id, current):
            if info.is_dir:
                pending.append(info.path)
            else:
                result.append(info.path)
    return sorted(result)


def download_bytes(client: MlflowClient, run_id: str, path: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="track-mlflow-") as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        return Path(local).read_bytes()


def download_dir(client: MlflowClient, run_id: str, path: str) -> dict[str, bytes]:
    """The files under the artifact directory ``path``, by name relative to it."""
    with tempfile.TemporaryDirectory(prefix="track-mlflow-") as tmp:
        try:
            local = Path(client.download_artifacts(run_id, path, tmp))
        except (MlflowException, OSError):
            return {}
        if not local.is_dir():
            return {}
        return {
            file.relative_to(local).as_posix(): file.read_bytes()
            for file in local.rglob("*")
            if file.is_file()
        }


def decode_record(kind: ValueKind, record: Mapping[str, Any], image_png: bytes | None) -> Point:
    """A point from its stored JSON record (and, for an image, its PNG bytes)."""
    value: Value
    if kind is ValueKind.IMAGE:
        if image_png is None:
            raise KeyError(f"the PNG of image point {record.get('png')!r} is missing")
        value = Image.from_png(image_png, record.get("caption") or None)
    elif kind is ValueKind.TEXT:
        value = Text(record["text"])
    else:
        value = Distribution(bin_edges=record["bin_edges"], counts=record["counts"])
    return Point(int(record["step"]), record.get("epoch"), float(record["timestamp"]), value)


def scalar_points(client: MlflowClient, run_id: str, key: str) -> list[Point]:
    """A scalar sequence from its metric rows, one point per step (the last written wins)."""
    rows = client.get_metric_history(run_id, key)
    epochs = {
        (m.step, m.timestamp): m.value
        for m in client.get_metric_history(run_id, key + EPOCH_SUFFIX)
    }
    by_step: dict[int, Metric] = {}
    for row in sorted(rows, key=lambda m: (m.step, m.timestamp)):
        by_step[row.step] = row
    points = []
    for step in sorted(by_step):
        row = by_step[step]
        epoch = epochs.get((row.step, row.timestamp))
        points.append(
            Point(
                step,
                None if epoch is None else int(epoch),
                row.timestamp / 1000.0,
                read_metric_value(row.value),
            )
        )
    return points


def stored_sequences(client: MlflowClient, run_id: str) -> list[SequenceInfo]:
    """The sequences stored for a run: metrics, then artifact sequences."""
    run = client.get_run(run_id)
    tags = run.data.tags
    result: list[SequenceInfo] = []
    for metric in run.data._metric_objs:  # the latest row of each key: its step is the last
        if is_epoch_key(metric.key):
            continue
        name, context = decode_key(metric.key, tags)
        result.append(SequenceInfo(name, context, ValueKind.SCALAR, int(metric.step)))
    for kind in _NON_SCALAR_KINDS:
        base = f"{RESERVED_ARTIFACT_DIR}/{kind.value}"
        for info in client.list_artifacts(run_id, base):
            if not info.is_dir:
                continue
            key = key_of_artifact_dir(info.path.rsplit("/", 1)[-1])
            steps = [
                int(f.path.rsplit("/", 1)[-1].removesuffix(".json"))
                for f in client.list_artifacts(run_id, info.path)
                if f.path.endswith(".json")
            ]
            name, context = decode_key(key, tags)
            result.append(SequenceInfo(name, context, kind, max(steps) if steps else -1))
    return result


def _is_image_file(path: str) -> bool:
    """An image of an image sequence (``encode_points`` names them so)."""
    return path.startswith(IMAGES_DIR + "/") and "+step+" in path


def _is_internal_artifact(path: str) -> bool:
    return path.startswith(RESERVED_ARTIFACT_DIR + "/") or _is_image_file(path)


# --- the writer ----------------------------------------------------------------------------------


@attrs.define
class MlflowRunWriter:
    """Writes one MLflow run. Every method may be retried: each is idempotent."""

    _client: MlflowClient
    _run_id: str
    _params: dict[str, Param] = attrs.field(factory=dict)
    _logged_params: dict[str, str] = attrs.field(factory=dict)
    _changed_params: list[str] = attrs.field(factory=list)
    _labels: frozenset[str] = frozenset()
    _keys: dict[tuple[str, Context], str] = attrs.field(factory=dict)
    _registered: set[str] = attrs.field(factory=set)
    _images_tagged: bool = False
    #: Send each batch's metric rows newest first (see ``write_points``).
    _newest_first: bool = False
    _warned_long: bool = False
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    @property
    def id(self) -> str:
        return self._run_id

    def sequences(self) -> Sequence[SequenceInfo]:
        return stored_sequences(self._client, self._run_id)

    def _registry_tag(self, name: str, context: Context) -> RunTag | None:
        """The registry tag a shortened key needs, unless it was written already."""
        if self._keys[(name, context)] == readable_key(name, context):
            return None
        tag_key, tag_value = hash_registry_entry(name, context)
        return None if tag_key in self._registered else RunTag(tag_key, tag_value)

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        with self._lock:
            metrics, files, sequences = encode_points(points, self._keys)
            tags: dict[str, RunTag] = {}
            for name, context in sequences:
                tag = self._registry_tag(name, context)
                if tag is not None:
                    tags[tag.key] = tag
            if not self._images_tagged and any(_is_image_file(path) for path in files):
                tags[TAG_LOGGED_IMAGES] = RunTag(TAG_LOGGED_IMAGES, "true")
            upload_files(self._client, self._run_id, files)
            if self._newest_first:
                # MLflow's SQL store compares every row with its key's latest value and rewrites
                # that value whenever the row is newer: in tracking order, once per row; newest
                # first, once per key and batch (about 4% of log_batch's time, measured). Its
                # reads order rows by timestamp and step, so the insertion order is not visible.
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
                    f"MLflow params hold at most 6000 characters: the value of {cut[0]!r} "
                    f"({len(flat[cut[0]])} characters) is shown cut in MLflow's params; the whole "
                    f"value is kept in the artifact {PARAMS_ARTIFACT}",
                    UserWarning,
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
            upload_files(self._client, self._run_id, {PARAMS_ARTIFACT: document})
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
                    if not _is_missing(error):
                        raise
            log_batch(self._client, self._run_id, tags=_label_tags(tags))
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
            self._client.log_artifact(self._run_id, str(source), directory or None)
            return
        with tempfile.TemporaryDirectory(prefix="track-mlflow-") as tmp:
            renamed = Path(tmp, filename)
            shutil.copyfile(source, renamed)
            self._client.log_artifact(self._run_id, str(renamed), directory or None)

    def close(self, status: Status, error: str | None) -> None:
        if error:
            tags = [RunTag(TAG_ERROR, error)]
            if len(error) > MAX_TAG_VALUE_LENGTH:
                note = f" ... [cut: the whole error is in the artifact {ERROR_ARTIFACT}]"
                tags = [
                    RunTag(TAG_ERROR, error[: MAX_TAG_VALUE_LENGTH - len(note)] + note),
                    RunTag(TAG_ERROR_CUT, "true"),
                ]
            upload_files(self._client, self._run_id, {ERROR_ARTIFACT: error.encode()})
            log_batch(self._client, self._run_id, tags=tags)
        self._client.set_terminated(self._run_id, _STATUS_TO_MLFLOW[status])


def _label_tags(labels: Iterable[str]) -> list[RunTag]:
    labels = sorted(labels)
    text = json.dumps(labels, ensure_ascii=False)
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise ValueError("the run's tags do not fit in MLflow's 8000-character tag value")
    return [RunTag(TAG_LABELS, text)] + [RunTag(label_tag_key(label), "") for label in labels]


# --- the reader ----------------------------------------------------------------------------------


@attrs.define
class MlflowRunReader:
    """Reads one MLflow run back."""

    _client: MlflowClient
    _run_id: str
    _experiment: str | None
    _name: str | None
    _tags: dict[str, str]
    _status: Status
    _params_flat: dict[str, str]
    _params_cache: dict[str, Param] | None = None

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
        text = self._tags.get(TAG_LABELS)
        return frozenset(json.loads(text)) if text else frozenset()

    @property
    def status(self) -> Status:
        return self._status

    @property
    def archived(self) -> bool:
        return self._tags.get(TAG_ARCHIVED) == "true"

    @property
    def error(self) -> str | None:
        error = self._tags.get(TAG_ERROR)
        if error is not None and self._tags.get(TAG_ERROR_CUT) == "true":
            return download_bytes(self._client, self._run_id, ERROR_ARTIFACT).decode()
        return error

    @property
    def params(self) -> Mapping[str, Param]:
        if self._params_cache is None:
            try:
                document = json.loads(download_bytes(self._client, self._run_id, PARAMS_ARTIFACT))
                self._params_cache = document["params"]
            except (MlflowException, OSError):  # a run track did not write: MLflow's params
                self._params_cache = dict(self._params_flat)
        return copy.deepcopy(self._params_cache)

    def sequences(self) -> Sequence[SequenceInfo]:
        return stored_sequences(self._client, self._run_id)

    def points(self, name: str, context: Context) -> Sequence[Point]:
        context = Context.of(context)
        key = encode_key(name, context)
        for info in self.sequences():
            if info.name == name and info.context == context:
                kind = info.kind
                break
        else:
            raise KeyError(
                f"run {self._run_id} has no sequence {name!r} in context {dict(context)}"
            )
        if kind is ValueKind.SCALAR:
            return scalar_points(self._client, self._run_id, key)
        directory = f"{RESERVED_ARTIFACT_DIR}/{kind.value}/{artifact_dir_name(key)}"
        records = [
            json.loads(data)
            for data in download_dir(self._client, self._run_id, directory).values()
        ]
        records.sort(key=lambda r: int(r["step"]))
        points = []
        for record in records:
            png = (
                download_bytes(self._client, self._run_id, record["png"])
                if kind is ValueKind.IMAGE
                else None
            )
            points.append(decode_record(kind, record, png))
        return points

    def artifacts(self) -> Sequence[str]:
        return [p for p in list_files(self._client, self._run_id) if not _is_internal_artifact(p)]

    def artifact_bytes(self, name: str) -> bytes:
        if _is_internal_artifact(name):
            raise KeyError(f"no artifact {name!r} in run {self._run_id}")
        try:
            return download_bytes(self._client, self._run_id, name)
        except (MlflowException, OSError) as error:
            raise KeyError(f"no artifact {name!r} in run {self._run_id}: {error}") from None


# --- the backend ---------------------------------------------------------------------------------


def _experiment_name(client: MlflowClient, experiment_id: str, cache: dict[str, str]) -> str | None:
    if experiment_id == "0":
        return None
    if experiment_id not in cache:
        cache[experiment_id] = client.get_experiment(experiment_id).name
    return cache[experiment_id]


@attrs.define
class MlflowBackend:
    """Runs in an MLflow tracking store (``sqlite:///...`` or an ``http(s)://`` server).

    ``experiment=None`` is MLflow's ``Default`` experiment (id 0), read back as ``None``.
    """

    _client: MlflowClient
    _where: ResolvedLocation
    _artifact_location: str | None = None
    _experiment_ids: dict[str, str] = attrs.field(factory=dict)
    _experiment_names: dict[str, str] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def location(self) -> str:
        return self._where.display

    @property
    def tracking_uri(self) -> str:
        """The tracking URI MLflow is given (never with credentials)."""
        return self._where.tracking_uri

    @property
    def client(self) -> MlflowClient:
        return self._client

    @property
    def capabilities(self) -> frozenset[Capability]:
        capabilities = {
            Capability.IMAGES,
            Capability.TEXTS,
            Capability.DISTRIBUTIONS,
            Capability.ARTIFACTS,
            Capability.RESUME,
            Capability.BATCH_WRITES,
            Capability.ARCHIVE,
            Capability.WRITER_PROCESS,
        }
        if self._where.remote:
            capabilities.add(Capability.REMOTE)
        return frozenset(capabilities)

    def check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a sequence name must be a non-empty str, got {name!r}")
        key = encode_key(name, context)
        if key != readable_key(name, context):
            _, entry = hash_registry_entry(name, context)
            if len(entry) > MAX_TAG_VALUE_LENGTH:
                raise ValueError(
                    f"sequence {name[:80]!r}... is too long for MLflow: its name and context "
                    f"take {len(entry)} characters as JSON, at most {MAX_TAG_VALUE_LENGTH} fit"
                )

    def check_value(self, value: Value) -> None:
        if not isinstance(value, (Image, Text, Distribution)):
            raise TypeError(f"the mlflow backend cannot store a {type(value).__name__}")

    def _experiment_id(self, experiment: str | None) -> str:
        if experiment is None:
            return "0"
        cached = self._experiment_ids.get(experiment)
        if cached is not None:
            return cached
        found = self._client.get_experiment_by_name(experiment)
        if found is None:
            location = self._artifact_location
            if location is None and self._where.local_artifact_root is not None:
                slug = hashlib.sha256(experiment.encode()).hexdigest()[:12]
                location = (self._where.local_artifact_root / slug).as_uri()
            try:
                experiment_id = self._client.create_experiment(
                    experiment, artifact_location=location
                )
            except MlflowException as error:  # created by another process meanwhile
                found = self._client.get_experiment_by_name(experiment)
                if found is None:
                    raise error from None
                experiment_id = found.experiment_id
        else:
            if found.lifecycle_stage == "deleted":
                raise ValueError(
                    f"MLflow experiment {experiment!r} is deleted: restore it "
                    "(mlflow experiments restore) or use another name"
                )
            experiment_id = found.experiment_id
        self._experiment_ids[experiment] = experiment_id
        return str(experiment_id)

    def create_run(self, spec: RunSpec) -> MlflowRunWriter:
        from mlflow.tracking.context.registry import resolve_tags

        experiment_id = self._experiment_id(spec.experiment)
        tags: dict[str, str] = {}
        try:
            tags.update(resolve_tags())
        except Exception:  # the source / git context is a nicety
            pass
        if spec.description is not None:
            tags[TAG_NOTE] = spec.description
        for tag in _label_tags(spec.tags):
            tags[tag.key] = tag.value
        run = self._client.create_run(experiment_id, tags=tags, run_name=spec.name)
        return MlflowRunWriter(
            self._client,
            run.info.run_id,
            labels=spec.tags,
            newest_first=self._where.sql_store,
        )

    def resume_run(self, run_id: str) -> MlflowRunWriter:
        run = self._get_run(run_id)
        document: dict[str, Param] = {}
        try:
            document = json.loads(download_bytes(self._client, run_id, PARAMS_ARTIFACT))["params"]
        except (MlflowException, OSError, KeyError, ValueError):
            pass
        for key in (TAG_ERROR, TAG_ERROR_CUT):
            if key in run.data.tags:
                self._client.delete_tag(run_id, key)
        self._client.update_run(run_id, status="RUNNING")
        labels_text = run.data.tags.get(TAG_LABELS)
        changed_text = run.data.tags.get(TAG_PARAMS_CHANGED)
        return MlflowRunWriter(
            self._client,
            run_id,
            params=document,
            logged_params=dict(run.data.params),
            changed_params=json.loads(changed_text) if changed_text else [],
            labels=frozenset(json.loads(labels_text)) if labels_text else frozenset(),
            registered={k for k in run.data.tags if k.startswith(HASH_TAG_PREFIX)},
            images_tagged=TAG_LOGGED_IMAGES in run.data.tags,
            newest_first=self._where.sql_store,
        )

    def _get_run(self, run_id: str) -> Any:
        try:
            return self._client.get_run(run_id)
        except MlflowException as error:
            if _is_missing(error) or "not found" in str(error).lower():
                raise KeyError(f"no MLflow run with id {run_id!r} at {self.location}") from None
            raise

    def list_runs(self, experiment: str | None = None) -> Sequence[RunInfo]:
        if experiment is None:
            experiment_ids = [e.experiment_id for e in self._client.search_experiments()]
        else:
            found = self._client.get_experiment_by_name(experiment)
            if found is None:
                return []
            experiment_ids = [found.experiment_id]
        result: list[RunInfo] = []
        token: str | None = None
        while True:
            page = self._client.search_runs(
                experiment_ids, max_results=1000, order_by=["start_time ASC"], page_token=token
            )
            for run in page:
                result.append(
                    RunInfo(
                        run.info.run_id,
                        _experiment_name(
                            self._client, run.info.experiment_id, self._experiment_names
                        ),
                        run.info.run_name,
                        _MLFLOW_TO_STATUS.get(run.info.status, Status.RUNNING),
                        run.info.start_time / 1000.0 if run.info.start_time else None,
                    )
                )
            token = page.token
            if not token:
                break
        return result

    def read_run(self, run_id: str) -> MlflowRunReader:
        run = self._get_run(run_id)
        return MlflowRunReader(
            self._client,
            run_id,
            _experiment_name(self._client, run.info.experiment_id, self._experiment_names),
            run.info.run_name,
            dict(run.data.tags),
            _MLFLOW_TO_STATUS.get(run.info.status, Status.RUNNING),
            dict(run.data.params),
        )

    def close(self) -> None:
        return None


def _parse_seconds(name: str, value: object) -> int:
    """Whole seconds (MLflow reads MLFLOW_HTTP_REQUEST_TIMEOUT as an int), rounded up."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"the mlflow option {name} must be a number, got {value!r}") from None
    if not number > 0 or not math.isfinite(number):
        raise ValueError(f"the mlflow option {name} must be positive, got {value!r}")
    return math.ceil(number)


def _parse_int(name: str, value: object) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"the mlflow option {name} must be an int, got {value!r}") from None
    if number < 0:
        raise ValueError(f"the mlflow option {name} must be >= 0, got {value!r}")
    return int(number)


def create_backend(location: str | None = None, **options: Any) -> MlflowBackend:
    """The ``mlflow`` entry point: ``mlflow``, ``mlflow:./dir``, ``mlflow:sqlite:///x.db``,
    ``mlflow:http://127.0.0.1:5000``.

    Options: ``artifact_location`` (where new experiments keep artifacts), and for servers
    ``http_timeout`` (seconds, default 10) and ``http_retries`` (default 0): a server that is down
    must make writes fail fast, since track retries (and spools) them itself. They set
    ``MLFLOW_HTTP_REQUEST_TIMEOUT`` / ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` for this process unless
    those are already set, or when given explicitly.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown mlflow backend option(s) {', '.join(unknown)}; valid: {', '.join(_OPTIONS)}"
        )
    where = resolve_location(location)
    # track reads artifacts back in a background thread: no progress bars on the user's terminal.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if where.remote:
        settings = {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": ("http_timeout", _parse_seconds, 10),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": ("http_retries", _parse_int, 0),
        }
        for variable, (option, parse, default) in settings.items():
            if option in options:
                os.environ[variable] = str(parse(option, options[option]))
            else:
                os.environ.setdefault(variable, str(default))
        if where.username is not None:
            os.environ["MLFLOW_TRACKING_USERNAME"] = where.username
            os.environ["MLFLOW_TRACKING_PASSWORD"] = where.password or ""
    else:
        for option in ("http_timeout", "http_retries"):
            if option in options:
                raise TypeError(f"the mlflow option {option} is for http(s) servers only")
    artifact_location = options.get("artifact_location")
    if artifact_location is not None and not isinstance(artifact_location, str):
        raise TypeError(f"artifact_location must be a str, got {type(artifact_location).__name__}")
    if where.local_artifact_root is not None:
        _create_sqlite_store(where)
    client = MlflowClient(tracking_uri=where.tracking_uri)
    return MlflowBackend(client, where, artifact_location)


def _create_sqlite_store(where: ResolvedLocation) -> None:
    """Create a new sqlite store with its artifacts next to the database file.

    MLflow would put the ``Default`` experiment's artifacts in ``./mlruns`` of whatever the working
    directory is when the database is first created."""
    database = Path(where.tracking_uri[len("sqlite:///") :])
    if database.exists() or where.local_artifact_root is None:
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(where.tracking_uri, where.local_artifact_root.as_uri())  # type: ignore[no-untyped-call]
