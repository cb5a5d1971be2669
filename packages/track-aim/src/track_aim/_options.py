"""The options of the ``aim`` backend, from a backend string or from keyword arguments.

Query values (``aim:./runs?system_metrics=true``) arrive as strings, keyword values as given:
both are converted and validated here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

#: Aim's own default interval for system metrics (CPU, memory, GPU), in seconds.
DEFAULT_SYSTEM_INTERVAL: Final = 10.0
#: How long a remote write may wait for the server to acknowledge it.
DEFAULT_TIMEOUT: Final = 30.0
#: The health check before each remote write.
DEFAULT_CONNECT_TIMEOUT: Final = 3.0

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
_NONE: Final = frozenset({"none", "off", "false", "0", ""})

VALID_OPTIONS: Final = (
    "repo",
    "system_metrics",
    "system_tracking_interval",
    "log_system_params",
    "capture_terminal_logs",
    "artifacts_uri",
    "timeout",
    "connect_timeout",
    "force_resume",
)


@attrs.frozen
class AimOptions:
    """Validated options. ``repo`` is a local directory (holding ``.aim``) or ``aim://host:port``."""

    repo: str
    system_tracking_interval: float | None = None
    log_system_params: bool = False
    capture_terminal_logs: bool = False
    artifacts_uri: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    force_resume: bool = False

    @property
    def is_remote(self) -> bool:
        return self.repo.startswith("aim://")


def _bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"aim option {key!r} must be a bool (true/false, 1/0, yes/no), got {value!r}")


def _seconds(key: str, value: object, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if allow_none and text in _NONE:
            return None
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"aim option {key!r} must be a number of seconds, got {value!r}"
            ) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise TypeError(f"aim option {key!r} must be a number of seconds, got {value!r}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"aim option {key!r} must be a positive number of seconds, got {value!r}")
    return number


def _repo(location: str | None) -> str:
    """``None`` -> the cwd; ``//host:port`` or ``aim://host:port`` -> remote; else a local path."""
    if location is None or not location.strip():
        return os.getcwd()
    location = location.strip()
    if location.startswith("aim://"):
        address = location[len("aim://") :]
    elif location.startswith("//"):
        address = location[2:]
    else:
        path = Path(location).expanduser()
        if path.name == ".aim":  # the user named the .aim folder itself
            path = path.parent
        return str(path.resolve())
    address = address.rstrip("/")
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"a remote Aim repo is aim://HOST:PORT (e.g. aim://127.0.0.1:53800), got {location!r}"
        )
    return f"aim://{host}:{int(port)}"


def parse_options(location: str | None, options: Mapping[str, Any]) -> AimOptions:
    """Validate the factory's arguments; unknown keys raise TypeError naming the valid ones."""
    unknown = sorted(set(options) - set(VALID_OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown option(s) for the aim backend: {', '.join(unknown)}; "
            f"valid options are: {', '.join(VALID_OPTIONS)}"
        )
    repo_option = options.get("repo")
    if repo_option is not None:
        if not isinstance(repo_option, (str, os.PathLike)):
            raise TypeError(
                f"aim option 'repo' must be a path or aim://HOST:PORT, got {repo_option!r}"
            )
        repo_text = os.fspath(repo_option)
        if location and _repo(location) != _repo(repo_text):
            raise ValueError(
                f"the aim repo is given twice and differs: location {location!r}, repo={repo_text!r}"
            )
        location = repo_text
    repo = _repo(location)

    interval: float | None = None
    if "system_metrics" in options and _bool("system_metrics", options["system_metrics"]):
        interval = DEFAULT_SYSTEM_INTERVAL
    if "system_tracking_interval" in options:
        interval = _seconds("system_tracking_interval", options["system_tracking_interval"], True)

    artifacts_uri = options.get("artifacts_uri")
    if artifacts_uri is not None:
        if not isinstance(artifacts_uri, str) or "://" not in artifacts_uri:
            raise ValueError(
                "aim option 'artifacts_uri' must be a URI with a scheme "
                f"(file:///abs/dir, s3://bucket/prefix), got {artifacts_uri!r}"
            )
    elif not repo.startswith("aim://"):
        artifacts_uri = Path(repo, ".aim-artifacts").as_uri()

    timeout = _seconds("timeout", options.get("timeout", DEFAULT_TIMEOUT), False)
    connect_timeout = _seconds(
        "connect_timeout", options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT), False
    )
    assert timeout is not None and connect_timeout is not None
    log_system_params = _bool("log_system_params", options.get("log_system_params", False))
    if log_system_params:
        _check_system_params_can_be_logged()
    return AimOptions(
        repo=repo,
        system_tracking_interval=interval,
        log_system_params=log_system_params,
        capture_terminal_logs=_bool(
            "capture_terminal_logs", options.get("capture_terminal_logs", False)
        ),
        artifacts_uri=artifacts_uri,
        timeout=timeout,
        connect_timeout=connect_timeout,
        force_resume=_bool("force_resume", options.get("force_resume", False)),
    )


def _check_system_params_can_be_logged() -> None:
    """Aim 3.29 lists the installed packages for ``log_system_params`` with ``pkg_resources``,
    which setuptools 81 removed: without it every run would fail to open."""
    import importlib.util

    if importlib.util.find_spec("pkg_resources") is None:
        raise ValueError(
            "aim option 'log_system_params' needs pkg_resources, which Aim uses to list the "
            "installed packages and setuptools 81 removed: pip install 'setuptools<81', or "
            "leave log_system_params off"
        )
