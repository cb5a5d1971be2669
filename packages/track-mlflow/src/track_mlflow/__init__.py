"""track-mlflow: the MLflow backend of track (``track_core.start_run("mlflow:...")``).

A run looks native in MLflow's UI: experiment, run name, description (``mlflow.note.content``),
tags, status, flattened params, metrics with steps and timestamps, images in MLflow's image view.
See the package README for the exact mapping.
"""

from __future__ import annotations

from track_mlflow.backend import (
    MlflowBackend,
    MlflowRunReader,
    MlflowRunWriter,
    create_backend,
)
from track_mlflow.keys import decode_key, encode_key
from track_mlflow.params import flatten_params
from track_mlflow.uri import redact

__all__ = [
    "MlflowBackend",
    "MlflowRunReader",
    "MlflowRunWriter",
    "create_backend",
    "decode_key",
    "encode_key",
    "flatten_params",
    "redact",
]
