"""Finding backends: entry points in the ``track.backends`` group, chosen by a backend string.

A backend string is ``NAME[:LOCATION][?key=value&...]``::

    memory                               the in-process reference backend
    aim                                  Aim, the ``.aim`` repository in the working directory
    aim:./runs                           Aim, a local repository
    aim://127.0.0.1:53800                Aim, a remote ``aim server``
    mlflow:sqlite:///mlflow.db           MLflow on sqlite
    mlflow:http://127.0.0.1:5000?experiment=mnist

Run-level keys (``experiment``, ``name``/``run_name``, ``description``, ``tags``,
``run_id``/``resume``) are taken by ``start_run``; every other key goes to the backend's factory.
``$TRACK_BACKEND`` holds the string used when none is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any
from urllib.parse import parse_qsl

import attrs

from track_core.backend import Backend
from track_core.errors import BackendNotFoundError
from track_core.redaction import redact_text

ENTRY_POINT_GROUP = "track.backends"
ENVIRONMENT_VARIABLE = "TRACK_BACKEND"

#: Packages that provide the backends users ask for most, named in error messages only.
KNOWN_PACKAGES: Mapping[str, str] = {"aim": "track-aim", "mlflow": "track-mlflow"}

#: Backend strings that switch tracking off (a no-op run).
DISABLED = frozenset({"none", "off", "disabled"})

BackendFactory = Callable[..., Backend]


@attrs.frozen
class BackendString:
    """A parsed backend string."""

    name: str
    location: str | None
    options: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> BackendString:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"a backend string must be a non-empty str such as 'aim' or "
                f"'mlflow:sqlite:///mlflow.db', got {text!r}"
            )
        text = text.strip()
        head, _, query = text.partition("?")
        name, colon, location = head.partition(":")
        try:
            options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
        except ValueError as error:
            raise ValueError(
                f"cannot read the options of backend string {redact_text(text)!r}: {error}"
            ) from None
        return cls(name.strip().lower(), location if colon and location else None, options)


def installed_backends() -> dict[str, EntryPoint]:
    """The installed backends by name (nothing is imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _not_found(name: str) -> BackendNotFoundError:
    installed = sorted(installed_backends())
    listing = ", ".join(installed) if installed else "none"
    hint = ""
    if name in KNOWN_PACKAGES:
        hint = f" Install it with: pip install {KNOWN_PACKAGES[name]}."
    else:
        hint = " A backend registers itself under the entry-point group 'track.backends'."
    return BackendNotFoundError(
        f"no track backend named {name!r} is installed (installed: {listing}).{hint}",
        name=name,
        installed=tuple(installed),
    )


def load_factory(name: str) -> BackendFactory:
    entry_point = installed_backends().get(name)
    if entry_point is None:
        raise _not_found(name)
    factory = entry_point.load()
    if not callable(factory):
        raise TypeError(
            f"the entry point {entry_point.value!r} of backend {name!r} is not callable"
        )
    return factory  # type: ignore[no-any-return]


def default_backend_string() -> str:
    """``$TRACK_BACKEND``, else the one installed backend besides ``memory``."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if configured:
        return configured
    candidates = sorted(name for name in installed_backends() if name != "memory")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BackendNotFoundError(
            "no track backend is installed besides 'memory': pip install track-aim (or "
            "track-mlflow), or pass backend='memory'",
            installed=tuple(sorted(installed_backends())),
        )
    raise BackendNotFoundError(
        f"several track backends are installed ({', '.join(candidates)}): choose one with "
        f"backend='...' or the environment variable {ENVIRONMENT_VARIABLE}",
        installed=tuple(sorted(installed_backends())),
    )


def get_backend(spec: str | None = None, **options: Any) -> Backend:
    """Create the backend a string names (``None``: the default); extra options go to its factory.

    Run-level options in the string are ignored here; ``start_run`` reads them.
    """
    parsed = BackendString.parse(spec if spec is not None else default_backend_string())
    factory = load_factory(parsed.name)
    merged = {key: value for key, value in parsed.options.items() if key not in RUN_OPTIONS}
    merged.update(options)
    return factory(parsed.location, **merged)


#: Keys of a backend string that describe the run, not the backend.
RUN_OPTIONS = frozenset(
    {
        "experiment",
        "name",
        "run_name",
        "description",
        "tags",
        "run_id",
        "resume",
        "system_metrics",
    }
)
