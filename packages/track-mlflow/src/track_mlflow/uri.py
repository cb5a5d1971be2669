"""Backend locations: what the user wrote, what MLflow is given, what messages show."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import attrs

DEFAULT_LOCATION = "sqlite:///mlflow.db"
_REMOTE_SCHEMES = frozenset({"http", "https"})
_SQL_SCHEMES = frozenset({"sqlite", "postgresql", "mysql", "mssql"})
_PASSTHROUGH_SCHEMES = _SQL_SCHEMES | {"databricks", "file", "http", "https"}


@attrs.frozen
class ResolvedLocation:
    #: The tracking URI given to MLflow (credentials of http(s) URIs removed).
    tracking_uri: str
    #: For messages: the location as the user wrote it, without a user name, password or token.
    display: str
    remote: bool
    #: The directory next to a local sqlite database where new experiments keep artifacts.
    local_artifact_root: Path | None
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)

    @property
    def sql_store(self) -> bool:
        """MLflow writes this location with its SQLAlchemy store (``postgresql+psycopg2://``
        included), which reads metric rows back ordered by timestamp and step, never by the order
        they were inserted in."""
        scheme = self.tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
        return scheme in _SQL_SCHEMES


def redact(uri: str) -> str:
    """``uri`` as it was written, without its user info and secret-looking option values
    (``track_core.redaction.redact_text``: one rule for all of track)."""
    from track_core.redaction import redact_text

    return redact_text(uri)


def resolve_location(location: str | None) -> ResolvedLocation:
    """Turn a backend location into an MLflow tracking URI.

    ``None`` is ``sqlite:///mlflow.db`` in the working directory; a plain path ending in ``.db``
    is that sqlite file; any other plain path is a directory holding ``mlflow.db``.
    """
    location = location or DEFAULT_LOCATION
    given = location
    # A SQLAlchemy URI names its driver after a '+' (postgresql+psycopg2://): the scheme is before.
    scheme = location.split(":", 1)[0].split("+", 1)[0].lower() if ":" in location else ""
    if scheme not in _PASSTHROUGH_SCHEMES and "://" in location:
        raise ValueError(
            f"track_mlflow does not know the scheme {scheme!r} of {redact(given)!r}: use a "
            f"database URI MLflow stores runs in ({', '.join(sorted(_SQL_SCHEMES))}, with or "
            "without a +driver), an http(s):// tracking server, databricks, or a local path"
        )
    if scheme not in _PASSTHROUGH_SCHEMES:
        path = Path(location).expanduser().absolute()
        if path.suffix != ".db":
            path = path / "mlflow.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        location = f"sqlite:///{path}"
        scheme = "sqlite"
    if scheme == "sqlite":
        db_path = location[len("sqlite:///") :] if location.startswith("sqlite:///") else ""
        root = Path(db_path).absolute().parent / "mlartifacts" if db_path else None
        if root is not None:
            root.parent.mkdir(parents=True, exist_ok=True)
        # Messages show the location as the user wrote it (a plain path: the sqlite URI made of it).
        return ResolvedLocation(location, redact(location), False, root)
    if scheme == "file" and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in (
        "1",
        "true",
    ):
        raise ValueError(
            "MLflow's file store (file:...) is disabled in this MLflow version: use "
            "'mlflow:sqlite:///path/mlflow.db', 'mlflow:./dir' or 'mlflow:http://host:port' "
            "(or set MLFLOW_ALLOW_FILE_STORE=true)"
        )
    if scheme in _REMOTE_SCHEMES:
        parts = urllib.parse.urlsplit(location)
        username = urllib.parse.unquote(parts.username) if parts.username else None
        password = urllib.parse.unquote(parts.password) if parts.password else None
        netloc = parts.netloc.rsplit("@", 1)[-1]
        clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        return ResolvedLocation(clean, redact(given), True, None, username, password)
    return ResolvedLocation(location, redact(given), scheme == "databricks", None)
