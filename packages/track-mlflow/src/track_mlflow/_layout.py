"""Where track keeps what in an MLflow run: tag names, artifact paths, and how points become
metric rows and artifact files (``encode_points``) and back (``decode_record``).

The package README's table "How a run maps to MLflow" is the same layout in words.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from mlflow.entities import Metric, RunTag

from track_core.backend import Point, TrackedPoint
from track_core.context import Context
from track_core.status import Status
from track_core.values import Distribution, Image, Text, Value, ValueKind
from track_mlflow._compat import webp_preview
from track_mlflow._epochs import EpochWriter
from track_mlflow.keys import (
    DEFAULT_KEY_STYLE,
    EPOCH_SUFFIX,
    MAX_SEQUENCE_KEY_LENGTH,
    encode_key,
    escape_segment,
)

MAX_METRICS_PER_BATCH: Final = 1000
MAX_PARAMS_TAGS_PER_BATCH: Final = 100
MAX_TAG_VALUE_LENGTH: Final = 8000
DOUBLE_MAX: Final = sys.float_info.max

#: Tags track writes (besides MLflow's own ``mlflow.runName`` and ``mlflow.note.content``).
#: The run's tags as one exact JSON list; under ``mlflow.``, which MLflow's UI leaves out of a
#: run's tags (each tag also has a tag of its own, which the UI lists).
TAG_LABELS: Final = "mlflow.track.tags"
#: Where runs written by track before 0.1.0 kept that list (still read).
LEGACY_TAG_LABELS: Final = "track.tags"
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

STATUS_TO_MLFLOW: Final = {
    Status.FINISHED: "FINISHED",
    Status.FAILED: "FAILED",
    Status.KILLED: "KILLED",
    Status.RUNNING: "RUNNING",
}
MLFLOW_TO_STATUS: Final = {
    "FINISHED": Status.FINISHED,
    "FAILED": Status.FAILED,
    "KILLED": Status.KILLED,
    "RUNNING": Status.RUNNING,
    "SCHEDULED": Status.RUNNING,
}
NON_SCALAR_KINDS: Final = (ValueKind.IMAGE, ValueKind.TEXT, ValueKind.DISTRIBUTION)


def metric_row(key: str, value: float, timestamp: int, step: int) -> tuple[str, float, int, int]:
    """A metric row as the bulk SQL path takes it: ``(key, value, timestamp_ms, step)``."""
    return (key, value, timestamp, step)


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


def labels_of(tags: Mapping[str, str]) -> frozenset[str]:
    """A run's labels (track's tags) from its MLflow tags."""
    text = tags.get(TAG_LABELS) or tags.get(LEGACY_TAG_LABELS)
    return frozenset(json.loads(text)) if text else frozenset()


def label_tags(labels: Iterable[str]) -> list[RunTag]:
    """The tags that hold a run's labels: the exact JSON list, and one empty tag per label."""
    labels = sorted(labels)
    text = json.dumps(labels, ensure_ascii=False)
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise ValueError("the run's tags do not fit in MLflow's 8000-character tag value")
    return [RunTag(TAG_LABELS, text)] + [RunTag(label_tag_key(label), "") for label in labels]


def is_image_file(path: str) -> bool:
    """An image of an image sequence (``encode_points`` names them so)."""
    return path.startswith(IMAGES_DIR + "/") and "+step+" in path


def is_internal_artifact(path: str) -> bool:
    return path.startswith(RESERVED_ARTIFACT_DIR + "/") or is_image_file(path)


def encode_points(
    points: Iterable[TrackedPoint],
    keys: dict[tuple[str, Context], str],
    epochs: EpochWriter,
    key_style: str = DEFAULT_KEY_STYLE,
    metric: Callable[[str, float, int, int], Any] = Metric,
) -> tuple[list[Any], dict[str, bytes], list[tuple[str, Context]]]:
    """The metric rows, the artifact files (path -> bytes) and the distinct sequences of a batch
    of points, in one pass over it. ``keys`` caches each sequence's metric key; the epochs of
    scalar points go to ``epochs`` (or, for its ``companion`` keys, to ``<key> :: epoch`` rows).
    Each row is ``metric(key, value, timestamp_ms, step)``: an MLflow ``Metric``, or for the
    bulk SQL path (``track_mlflow._sql``) a plain tuple (``metric_row``)."""
    metrics: list[Any] = []
    files: dict[str, bytes] = {}
    sequences: dict[tuple[str, Context], str] = {}
    companion = epochs.companion
    note_epoch = epochs.note
    for point in points:
        identity = (point.name, point.context)
        key = sequences.get(identity)
        if key is None:
            key = keys.get(identity)
            if key is None:
                key = keys[identity] = encode_key(point.name, point.context, key_style)
            sequences[identity] = key
        ms = round(point.timestamp * 1000)
        if point.kind is ValueKind.SCALAR:
            metrics.append(metric(key, metric_value(point.value), ms, point.step))  # type: ignore[arg-type]
            if companion and key in companion:
                if point.epoch is not None:
                    metrics.append(metric(key + EPOCH_SUFFIX, float(point.epoch), ms, point.step))
            else:
                note_epoch(key, point.step, point.epoch)
            continue
        record = _point_record(point)
        value = point.value
        directory = artifact_dir_name(key)
        if isinstance(value, Image):
            digest = hashlib.sha256(value.png).hexdigest()[:12]
            stem = f"{IMAGES_DIR}/{directory}+step+{point.step}+timestamp+{ms}+{digest}"
            files[f"{stem}.png"] = value.png
            preview = webp_preview(value.png)
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


def _point_record(point: TrackedPoint) -> dict[str, Any]:
    return {"step": point.step, "epoch": point.epoch, "timestamp": point.timestamp}


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
