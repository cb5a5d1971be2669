"""One call starts tracking, one ends it: the session flow of tracelet-style scripts.

import track_tensorboard as tt

tt.start_logging(exp_name="mlp", project="tutorials", backend="aim")
writer = SummaryWriter()            # torch's: its calls go to the run (patched)
...
tt.get_active_experiment().log_params({"lr": 0.001})
tt.stop_logging()
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import track_core as track
from track_tensorboard import patching
from track_tensorboard.names import Namer, NamesOption
from track_tensorboard.writer import record_hparams

#: The keys ``config=`` takes (those of tracelet's planned configuration).
CONFIG_KEYS = (
    "repo_path",
    "remote_uri",
    "experiment_name",
    "run_name",
    "tags",
    "description",
    "names",
    "patch",
)

_lock = threading.Lock()
_session: Experiment | None = None


class Experiment:
    """The run of a session, with tracelet's methods."""

    def __init__(self, run: track.Run, patch: patching.Patch | None, names: NamesOption) -> None:
        self.run = run
        self.patch = patch
        self._namer = Namer(names)

    @property
    def id(self) -> str:
        return self.run.id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params into the run's ``hparams`` (merged with earlier calls and ``add_hparams``)."""
        if not isinstance(params, Mapping):
            raise TypeError(f"log_params takes a dict, got {type(params).__name__}")
        record_hparams(self.run, {str(key): value for key, value in params.items()})

    def log_metric(self, name: str, value: Any, iteration: int | None = None) -> None:
        """A scalar, its name read by the tag rule (``train/loss`` -> ``loss`` in train)."""
        from track_tensorboard.convert import scalar

        sequence, context = self._namer(name)
        self.run.track(scalar(value, name), sequence, step=iteration, context=context)

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Store a file with the run, under ``artifact_path`` (a folder) if given."""
        name = os.path.basename(os.fspath(local_path))
        if artifact_path:
            name = f"{artifact_path.strip('/')}/{name}"
        self.run.log_artifact(os.fspath(local_path), name=name)

    def __repr__(self) -> str:
        return f"Experiment(run={self.run!r})"


def _backend_string(backend: str | None, config: Mapping[str, Any]) -> str | None:
    repo, remote = config.get("repo_path"), config.get("remote_uri")
    if repo is not None and remote is not None:
        raise ValueError("config: give repo_path or remote_uri, not both")
    location = remote if remote is not None else repo
    if location is None:
        return backend
    name = (backend or "aim").partition(":")[0]
    if name == "aim" and remote is not None and "://" in str(remote):
        return f"aim://{str(remote).split('://', 1)[1]}"
    return f"{name}:{os.fspath(location)}"


def _tags(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f"{key}:{item}" for key, item in value.items()]
    return [str(item) for item in value]


def start_logging(
    exp_name: str | None = None,
    project: str | None = None,
    backend: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Experiment:
    """Start a run and make it the current one; TensorBoard writers record into it.

    ``backend`` is a track backend string (``"aim"``, ``"mlflow"``, ``"aim:./runs"``, ...; None:
    ``$TRACK_BACKEND``); ``project`` is the experiment, ``exp_name`` the run's name. ``config``
    may hold ``repo_path`` / ``remote_uri`` (the backend's location), ``experiment_name``,
    ``run_name``, ``tags`` (a list, or a dict shown as ``key:value`` labels), ``description``,
    ``names`` (the tag rule) and ``patch`` (False: do not capture TensorBoard's writers).
    """
    global _session
    settings = dict(config or {})
    unknown = sorted(set(settings) - set(CONFIG_KEYS))
    if unknown:
        raise TypeError(
            f"start_logging: unknown config keys {unknown}; it takes {', '.join(CONFIG_KEYS)}"
        )
    with _lock:
        if _session is not None:
            raise RuntimeError("start_logging() was called already: stop_logging() first")
        run = track.start_run(
            _backend_string(backend, settings),
            experiment=settings.get("experiment_name", project),
            name=settings.get("run_name", exp_name),
            tags=_tags(settings.get("tags")),
            description=settings.get("description"),
        )
        names = settings.get("names", True)
        capture = None
        try:
            if settings.get("patch", True):
                try:
                    capture = patching.patch(run, names=names)
                except ImportError:  # no TensorBoard writer installed: the drop-in one still works
                    capture = None
            track.set_current_run(run)
        except BaseException:
            run.close(track.Status.FAILED, "start_logging failed")
            raise
        _session = Experiment(run, capture, names)
        return _session


def get_active_experiment() -> Experiment | None:
    """The session's experiment, or None when none was started."""
    return _session


def stop_logging(status: track.Status = track.Status.FINISHED) -> None:
    """End the session: stop capturing, end the run (waits for the backend a bounded time)."""
    global _session
    with _lock:
        session, _session = _session, None
    if session is None:
        return
    if session.patch is not None:
        patching.unpatch(session.patch)
    track.clear_current_run(session.run)
    session.run.close(status)
