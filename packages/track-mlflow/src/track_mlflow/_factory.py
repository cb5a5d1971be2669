"""``create_backend``: the ``mlflow`` entry point, its options, and the client it makes."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Final

from mlflow.tracking import MlflowClient

from track_mlflow._backend import MlflowBackend
from track_mlflow._compat import create_sqlite_store, host_creds_with, scoped_client
from track_mlflow.keys import DEFAULT_KEY_STYLE, check_key_style
from track_mlflow.uri import ResolvedLocation, resolve_location

_OPTIONS: Final = ("artifact_location", "http_timeout", "http_retries", "key_style")


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
    ``mlflow:http://127.0.0.1:5000``, ``mlflow:http://user:password@host:port``.

    Options: ``key_style`` (``"context"``, the default: ``loss :: subset: train``; or
    ``"slash"``: ``train/loss``, as MLflow's docs write keys, so the UI charts ``train`` and
    ``val`` in sections of their own; see ``track_mlflow.keys``; recorded on each run, and a
    resumed run keeps its own), ``artifact_location`` (where new experiments keep artifacts), and for servers
    ``http_timeout`` (seconds, default 10) and ``http_retries`` (default 0): a server that is down
    must make writes fail fast, since track retries (and spools) them itself. They set
    ``MLFLOW_HTTP_REQUEST_TIMEOUT`` / ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` for this process unless
    those are already set, or when given explicitly (MLflow reads them from the environment
    only). A user name and password in the URL are this backend's own: they are not put in the
    environment, and other MLflow clients in the process do not see them.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown mlflow backend option(s) {', '.join(unknown)}; valid: {', '.join(_OPTIONS)}"
        )
    key_style = check_key_style(options.get("key_style", DEFAULT_KEY_STYLE))
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
    else:
        for option in ("http_timeout", "http_retries"):
            if option in options:
                raise TypeError(f"the mlflow option {option} is for http(s) servers only")
    artifact_location = options.get("artifact_location")
    if artifact_location is not None and not isinstance(artifact_location, str):
        raise TypeError(f"artifact_location must be a str, got {type(artifact_location).__name__}")
    if where.local_artifact_root is not None:
        _create_sqlite_store(where)
    if where.remote and where.username is not None:
        host_creds = host_creds_with(where.username, where.password or "")
        client = scoped_client(where.tracking_uri, host_creds)
        return MlflowBackend(client, where, artifact_location, host_creds, key_style=key_style)
    return MlflowBackend(
        MlflowClient(tracking_uri=where.tracking_uri), where, artifact_location, key_style=key_style
    )


def _create_sqlite_store(where: ResolvedLocation) -> None:
    """Create a new sqlite store with its artifacts next to the database file.

    MLflow would put the ``Default`` experiment's artifacts in ``./mlruns`` of whatever the working
    directory is when the database is first created."""
    database = Path(where.tracking_uri[len("sqlite:///") :])
    if database.exists() or where.local_artifact_root is None:
        return
    create_sqlite_store(where.tracking_uri, where.local_artifact_root.as_uri())
