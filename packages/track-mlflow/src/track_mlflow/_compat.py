"""Every MLflow name track_mlflow uses that MLflow does not document as its public API.

Raising the MLflow pin means reviewing this file (and running ``hatch run mlflow:test``): the rest
of the package uses MLflow's public client (``MlflowClient``, ``mlflow.entities``,
``MlflowException``) and these functions only.

- ``latest_metrics``: ``Run.data._metric_objs`` (the latest row of each key, with its step;
  ``Run.data.metrics`` has the values only).
- ``webp_preview``: ``mlflow.tracking.multimedia.compress_image_size`` (the preview MLflow's own
  ``log_image`` writes next to each image).
- ``run_context_tags``: ``mlflow.tracking.context.registry.resolve_tags`` (source, git commit, user).
- ``create_sqlite_store``: ``SqlAlchemyStore``, to create a new database with its artifact root.
- ``scoped_client``: a client whose credentials are its own, not the process environment's:
  ``TrackingServiceClient`` (whose ``store`` it replaces with a ``RestStore`` made with a
  host-credentials callable of ours), ``MlflowClient._tracking_client``, ``MlflowHostCreds``,
  ``get_default_host_creds`` (MLflow's TLS and token settings), and for artifacts served by the
  tracking server ``MlflowArtifactsRepository.resolve_uri``, ``http_request`` and
  ``augmented_raise_for_status``, over the server's artifact REST API
  (``/api/2.0/mlflow-artifacts/artifacts``).
- ``sql_engine``: ``MlflowClient._tracking_client.store.engine``, the SQLAlchemy engine of
  MLflow's own ``SqlAlchemyStore`` for a database tracking URI (``track_mlflow._sql`` writes
  metric rows with it; checked against the store's schema version first).
- ``validate_metric_key``: ``mlflow.utils.validation._validate_metric_name`` (used by tests).
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

__all__ = [
    "ServedArtifacts",
    "create_sqlite_store",
    "latest_metrics",
    "run_context_tags",
    "scoped_client",
    "sql_engine",
    "validate_metric_key",
    "webp_preview",
]


def latest_metrics(run: Any) -> Iterable[Metric]:
    """The latest row of each metric key of an MLflow ``Run`` (its step is the key's last)."""
    return run.data._metric_objs  # type: ignore[no-any-return]


def sql_engine(client: MlflowClient) -> Any:
    """The SQLAlchemy engine of the SQL store behind ``client`` (None when it has none)."""
    return getattr(client._tracking_client.store, "engine", None)


def webp_preview(png: bytes) -> bytes | None:
    """The compressed preview MLflow's UI shows for an image, or None if it cannot be made."""
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


def run_context_tags() -> dict[str, str]:
    """The tags MLflow's fluent API adds to a new run (source name and type, git commit, user)."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return dict(resolve_tags())
    except Exception:  # the source / git context is a nicety
        return {}


def create_sqlite_store(tracking_uri: str, artifact_root_uri: str) -> None:
    """Create (or open) the sqlite database at ``tracking_uri`` with that default artifact root."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(tracking_uri, artifact_root_uri)  # type: ignore[no-untyped-call]


def validate_metric_key(key: str) -> None:
    """Raise MlflowException if MLflow refuses ``key`` as a metric key."""
    from mlflow.utils.validation import _validate_metric_name

    _validate_metric_name(key)  # type: ignore[no-untyped-call]


# --- credentials scoped to one client -----------------------------------------------------------

HostCreds = Callable[[str], Any]


def host_creds_with(username: str, password: str) -> HostCreds:
    """A callable ``host -> MlflowHostCreds`` with this user name and password, and MLflow's other
    settings (TLS verification, client certificates, a token) read as MLflow reads them."""
    from mlflow.utils.credentials import get_default_host_creds

    def creds(host: str) -> Any:
        found = get_default_host_creds(host)  # type: ignore[no-untyped-call]
        found.username = username
        found.password = password
        return found

    return creds


def scoped_client(tracking_uri: str, host_creds: HostCreds) -> MlflowClient:
    """An ``MlflowClient`` for an http(s) server whose requests carry ``host_creds(host)``.

    MLflow's own clients read ``MLFLOW_TRACKING_USERNAME`` / ``PASSWORD`` from the process
    environment on every request; this one never does, and changes nothing in the process: other
    MLflow clients keep their own credentials. Its artifact methods are not used (they would read
    the environment): track reads and writes the artifacts of such a client's runs through
    ``ServedArtifacts``.
    """
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    store = RestStore(lambda: host_creds(tracking_uri))  # type: ignore[no-untyped-call]

    class _ScopedTrackingServiceClient(TrackingServiceClient):
        @property
        def store(self) -> Any:
            return store

    client = MlflowClient(tracking_uri=tracking_uri)
    client._tracking_client = _ScopedTrackingServiceClient(tracking_uri)  # type: ignore[no-untyped-call]
    return client


_ARTIFACTS_ENDPOINT = "/mlflow-artifacts/artifacts"


class ServedArtifacts:
    """The artifacts of one run that a tracking server serves (``mlflow-artifacts:`` URIs),
    through the server's artifact REST API with credentials of our own (see ``scoped_client``)."""

    def __init__(self, artifact_uri: str, tracking_uri: str, host_creds: HostCreds) -> None:
        from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

        resolved = MlflowArtifactsRepository.resolve_uri(artifact_uri, tracking_uri)  # type: ignore[no-untyped-call]
        #: ``http://host/api/2.0/mlflow-artifacts/artifacts/<run's root>``
        self._root_url = resolved.rstrip("/")
        self._api_url, _, root = self._root_url.partition(_ARTIFACTS_ENDPOINT)
        self._root = root.strip("/")
        self._host_creds = host_creds

    @staticmethod
    def is_served(artifact_uri: str) -> bool:
        return artifact_uri.startswith("mlflow-artifacts:")

    def _request(self, host: str, endpoint: str, method: str, **kwargs: Any) -> Any:
        from mlflow.utils.request_utils import augmented_raise_for_status
        from mlflow.utils.rest_utils import http_request

        response = http_request(self._host_creds(host), endpoint, method, **kwargs)  # type: ignore[no-untyped-call]
        augmented_raise_for_status(response)  # type: ignore[no-untyped-call]
        return response

    def upload(self, local_file: Path, directory: str | None) -> None:
        parts = (directory, local_file.name) if directory else (local_file.name,)
        with open(local_file, "rb") as data:
            self._request(
                self._root_url,
                posixpath.join("/", *parts),
                "PUT",
                data=data,
                extra_headers={"Content-Type": "application/octet-stream"},
            )

    def list(self, path: str | None) -> list[tuple[str, bool]]:
        """``(path, is_dir)`` of the entries under ``path`` (the run's root for None)."""
        full = posixpath.join(self._root, path) if path else self._root
        response = self._request(self._api_url, _ARTIFACTS_ENDPOINT, "GET", params={"path": full})
        entries = [
            (posixpath.join(path, f["path"]) if path else f["path"], bool(f["is_dir"]))
            for f in response.json().get("files", [])
        ]
        # As MLflow's repositories do: a path naming a file lists as nothing.
        if path is not None and len(entries) == 1 and not entries[0][1]:
            if entries[0][0] == posixpath.join(path, posixpath.basename(path)):
                return []
        return sorted(entries)

    def read(self, path: str) -> bytes:
        response = self._request(self._root_url, posixpath.join("/", path), "GET", stream=True)
        return bytes(response.content)
