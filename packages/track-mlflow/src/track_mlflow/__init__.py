"""track-mlflow: the MLflow backend of track (``track_core.start_run("mlflow:...")``).

A run looks native in MLflow's UI: experiment, run name, description (``mlflow.note.content``),
tags, status, flattened params, metrics with steps and timestamps, images in MLflow's image view.
See the package README for the exact mapping.

The package by duty: ``keys`` (sequence <-> metric key), ``params`` (nested params <-> flat
params), ``uri`` (backend locations), ``_layout`` (what is stored where), ``_epochs`` (the epochs
artifact), ``_artifacts`` (one run's files), ``_writer`` / ``_reader`` (one run), ``_backend``
(runs and experiments), ``_factory`` (``create_backend`` and its client), ``_compat`` (every
MLflow name that is not public API), ``errors`` (warnings), ``testing`` (a real ``mlflow
server`` for tests).
"""

from __future__ import annotations

from track_mlflow._backend import MlflowBackend
from track_mlflow._factory import create_backend
from track_mlflow._reader import MlflowRunReader
from track_mlflow._writer import MlflowRunWriter
from track_mlflow.errors import EscapedKeyWarning, ParamCutWarning, SqlSchemaWarning
from track_mlflow.keys import decode_key, encode_key
from track_mlflow.params import flatten_params
from track_mlflow.uri import redact

__version__ = "0.1.0"

__all__ = [
    "EscapedKeyWarning",
    "MlflowBackend",
    "MlflowRunReader",
    "MlflowRunWriter",
    "ParamCutWarning",
    "SqlSchemaWarning",
    "create_backend",
    "decode_key",
    "encode_key",
    "flatten_params",
    "redact",
]
