"""The names this module held before the package was split by duty (kept so imports keep working).

The backend is in ``_backend.py``, the run writer in ``_writer.py``, the reader in ``_reader.py``,
``create_backend`` in ``_factory.py``; import them from ``track_mlflow``.
"""

from __future__ import annotations

from track_mlflow._backend import MlflowBackend
from track_mlflow._factory import create_backend
from track_mlflow._reader import MlflowRunReader
from track_mlflow._writer import MlflowRunWriter

__all__ = ["MlflowBackend", "MlflowRunReader", "MlflowRunWriter", "create_backend"]
