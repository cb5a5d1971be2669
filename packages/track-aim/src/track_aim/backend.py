"""The ``aim`` backend: track_core's Backend on the Aim SDK (a local repo or an Aim server).

Mapping (everything native to Aim):

- run params -> Aim run params (``run[key] = value``);
- sequences -> Aim sequences with their context; scalars as metrics, ``Image`` / ``Text`` /
  ``Distribution`` as ``aim.Image`` / ``aim.Text`` / ``aim.Distribution``; the core's step, epoch
  and timestamp are stored as they are (Aim's tracker is given the core's timestamp);
- name, experiment, description, tags -> Aim's structured run props;
- end status: Aim records only "active" / "finished" (``end_time``). The core's status and error
  go to a block ``{"status": ..., "error": ...}`` at ``run["__system_params", "track"]`` (the
  params Aim's UI does not list; older runs have it at ``__track__``), Aim's ``end_time`` is set by
  ``Run.close``, and a finished run also reports ``report_successful_finish()``;
- start and end times -> Aim's ``creation_time`` and ``end_time`` (a copied run gets the
  source run's: ``RunSpec.created_at``, ``close(..., ended_at=)``);
- artifacts -> Aim artifacts (``set_artifacts_uri``; default ``file://<repo>/.aim-artifacts``
  for a local repo and for an Aim server on this machine).

The parts: ``_writer`` (one run written), ``_reader`` (one run read), ``_listing`` (which runs
there are), ``_remote`` (an Aim server's health and shared read connection), ``_mapping``
(status, reserved names), ``_convert`` (values), ``_options``; every Aim internal used is in
``_aim_private``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
from aim.sdk.repo import Repo
from aim.sdk.run import Run as AimRun

from track_aim import _aim_private as private
from track_aim._convert import check_distribution
from track_aim._errors import AimServerUnavailableError
from track_aim._listing import list_runs, run_exists
from track_aim._mapping import (
    STATUS_PATH,
    SYSTEM_PARAMS_KEY,
    check_sequence,
    run_status,
    status_param,
)
from track_aim._options import AimOptions
from track_aim._reader import AimRunReader
from track_aim._remote import check_server, open_remote_repo, read_session
from track_aim._writer import REMOTE_BATCH_SIZE, AimRunWriter, wait_acknowledged
from track_core.backend import DEFAULT_BATCH_SIZE, Capability, RunInfo, RunSpec
from track_core.context import Context
from track_core.redaction import redact_params
from track_core.status import Status
from track_core.values import Distribution, Value, ValueKind

__all__ = [
    "STATUS_PATH",
    "AimBackend",
    "AimRunReader",
    "AimRunWriter",
    "AimServerUnavailableError",
    "check_server",
    "run_status",
]

_BASE_CAPABILITIES: Final = frozenset(
    {
        Capability.IMAGES,
        Capability.TEXTS,
        Capability.DISTRIBUTIONS,
        Capability.RESUME,
        Capability.BATCH_WRITES,
        Capability.ARCHIVE,
        Capability.WRITER_PROCESS,
        Capability.RUN_TIMES,
    }
)

#: After a failed try, how long before the artifact directory of a server is asked again (s).
_ARTIFACTS_RETRY: Final = 30.0
_UNKNOWN: Final = object()


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.define
class AimBackend:
    """A local Aim repo (``.aim`` in a directory, created when missing) or an Aim server."""

    _options: AimOptions
    _local_repo: Repo | None = None
    _server_artifacts: Any = _UNKNOWN
    _server_artifacts_tried: float = -_ARTIFACTS_RETRY
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    #: The core's system-metrics sampler writes Aim's own names and contexts.
    system_metric_names = "aim"

    @property
    def options(self) -> AimOptions:
        return self._options

    @property
    def name(self) -> str:
        return "aim"

    @property
    def location(self) -> str:
        return self._options.repo

    @property
    def batch_size(self) -> int:
        """Points per ``write_points`` call (``track_core.backend.BatchSizedBackend``).

        An Aim server: ``REMOTE_BATCH_SIZE``, so that a batch of wide steps holds several
        values of each sequence (see there). A local repository: the core's default."""
        if self._options.is_remote:
            return REMOTE_BATCH_SIZE
        return DEFAULT_BATCH_SIZE[True]

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = set(_BASE_CAPABILITIES)
        if self.artifacts_uri() is not None:
            caps.add(Capability.ARTIFACTS)
        if self._options.is_remote:
            caps.add(Capability.REMOTE)
        return frozenset(caps)

    def check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        check_sequence(name, context)

    def check_value(self, value: Value) -> None:
        if type(value) is Distribution:
            check_distribution(value)

    # ---- artifacts

    def artifacts_uri(self) -> str | None:
        """Where artifacts go: the option, ``file://<repo>/.aim-artifacts`` for a local repo,
        and for an Aim server on this machine (127.0.0.1, localhost) the same directory beside
        the server's repo; None for another server without the option."""
        if self._options.artifacts_uri is not None or not self._options.is_remote:
            return self._options.artifacts_uri
        with self._lock:
            if self._server_artifacts is not _UNKNOWN:
                known: str | None = self._server_artifacts
                return known
            if time.monotonic() - self._server_artifacts_tried < _ARTIFACTS_RETRY:
                return None
            self._server_artifacts_tried = time.monotonic()
        found = self._find_server_artifacts()
        if found is not _UNKNOWN:
            with self._lock:
                self._server_artifacts = found
        return None if found is _UNKNOWN else str(found) if found is not None else None

    def _find_server_artifacts(self) -> Any:
        host = self._options.repo[len("aim://") :].rpartition(":")[0]
        if not _is_loopback(host):
            return None
        try:
            with self._read_session() as session:
                aim_dir = private.server_repo_path(session.repo)
        except Exception:  # the server is down now: ask again later
            return _UNKNOWN
        if not os.path.isdir(aim_dir):  # a server in a container, say: not this machine's path
            return None
        return Path(aim_dir).parent.joinpath(".aim-artifacts").as_uri()

    def no_artifacts_reason(self) -> str:
        return (
            f"the Aim server at {self.location} is not on this machine, so track_aim has no "
            "default place for artifacts (Aim uploads them from the client, not through the "
            "server): give one that this client and every reader can reach, e.g. "
            f"{self.location}?artifacts_uri=s3://bucket/prefix (needs boto3) or "
            "artifacts_uri=file:///shared/dir"
        )

    # ---- connections

    def _open_repo(self) -> Repo:
        """A repo to write through: a new private client for a server, the cached local repo."""
        options = self._options
        if options.is_remote:
            return open_remote_repo(options.repo, options.connect_timeout)
        if self._local_repo is None:
            root = options.repo
            try:
                os.makedirs(root, exist_ok=True)
                self._local_repo = Repo.from_path(root, init=not Repo.exists(root))
            except OSError as error:
                raise OSError(f"cannot create the Aim repo at {root}/.aim: {error}") from error
        return self._local_repo

    @contextlib.contextmanager
    def _read_session(self) -> Iterator[private.ReadSession]:
        options = self._options
        if options.is_remote:
            with read_session(options.repo, options.connect_timeout) as session:
                yield session
            return
        session = private.ReadSession(self._open_repo())
        try:
            yield session
        finally:
            session.close()

    def _open_run(
        self,
        repo: Repo,
        run_hash: str | None,
        *,
        force: bool = False,
        experiment: str | None = None,
        created_at: float | None = None,
    ) -> Any:
        options = self._options

        def open_run() -> Any:
            arguments: dict[str, Any] = dict(
                repo=repo,
                experiment=experiment,
                force_resume=force or options.force_resume,
                system_tracking_interval=options.system_tracking_interval,
                log_system_params=options.log_system_params,
                capture_terminal_logs=options.capture_terminal_logs,
            )
            if created_at is not None and run_hash is None:  # a new run with a given start
                return private.run_starting_at(AimRun, created_at, **arguments)
            return AimRun(run_hash, **arguments)

        if run_hash is not None:
            private.forget_run_list_cache()
        try:
            run = open_run()
        except private.MissingRunError:
            if run_hash is None or not private.is_remote(repo):
                raise
            # The server answers from its run list of up to 0.5 s ago: ask again once it expired.
            time.sleep(private.RUN_LIST_TTL + 0.05)
            private.forget_run_list_cache()
            run = open_run()
        private.unregister_exit_cleanup(run)
        if options.log_system_params:
            _redact_system_params(run)
        if private.is_remote(repo):
            private.forget_remote(repo)
        if options.artifacts_uri is not None and private.artifacts_uri_of(run) is None:
            run.set_artifacts_uri(options.artifacts_uri)
        return run

    # ---- runs

    def create_run(self, spec: RunSpec) -> AimRunWriter:
        repo = self._open_repo()
        remote = private.is_remote(repo)
        try:
            run = self._open_run(repo, None, experiment=spec.experiment, created_at=spec.created_at)
            if spec.name is not None:
                run.name = spec.name
            if spec.description is not None:
                run.description = spec.description
            for tag in sorted(spec.tags):
                run.add_tag(tag)
            run[STATUS_PATH] = status_param(Status.RUNNING.value, None)
            if remote:
                wait_acknowledged(repo, self._options.timeout, self._options.connect_timeout)
                # In the server's index now, so that every client lists it at once (the
                # server's own run list is up to 0.5 s old).
                with contextlib.suppress(Exception):
                    private.index_run(repo, run.hash)
        except Exception:
            if remote:
                private.abandon_remote(repo, None)
            raise
        return AimRunWriter(self, run.hash, run, repo)

    def resume_run(self, run_id: str) -> AimRunWriter:
        if not run_exists(self._read_session, run_id):
            raise KeyError(f"no Aim run {run_id!r} in {self.location}")
        repo = self._open_repo()
        try:
            try:
                run = self._open_run(repo, run_id)
            except private.MissingRunError as error:
                raise KeyError(f"no Aim run {run_id!r} in {self.location}") from error
            run[STATUS_PATH] = status_param(Status.RUNNING.value, None)
            if private.is_remote(repo):
                wait_acknowledged(repo, self._options.timeout, self._options.connect_timeout)
        except Exception:
            if private.is_remote(repo):
                private.abandon_remote(repo, None)
            raise
        return AimRunWriter(self, run.hash, run, repo)

    def _no_local_repo(self) -> bool:
        """A local location with no Aim repo yet: reads find nothing there and create none
        (``track runs aim:./typo`` must not leave a ``.aim`` behind)."""
        options = self._options
        return not options.is_remote and self._local_repo is None and not Repo.exists(options.repo)

    def list_runs(self, experiment: str | None = None) -> Sequence[RunInfo]:
        if self._no_local_repo():
            return []
        return list_runs(self._read_session, experiment)

    def read_run(self, run_id: str) -> AimRunReader:
        if self._no_local_repo():
            raise KeyError(f"no Aim run {run_id!r}: there is no Aim repo at {self.location}")
        if not run_exists(self._read_session, run_id):
            raise KeyError(f"no Aim run {run_id!r} in {self.location}")
        return AimRunReader(self, run_id)

    def close(self) -> None:
        return None


def _redact_system_params(run: Any) -> None:
    """Aim's ``log_system_params`` stores the process environment and ``sys.argv`` at every open.
    Aim masks only variables named like ``*secret*``, ``*key*``, ``*token*``, ``*password*``: a
    credentialed ``TRACK_BACKEND`` or ``MLFLOW_TRACKING_URI``, or a password on the command line,
    would be stored as it is. Rewritten through track's redaction, as every other param is."""
    try:
        system = run[SYSTEM_PARAMS_KEY]
    except KeyError:
        return
    redacted = redact_params(system)
    if redacted != system:
        run[SYSTEM_PARAMS_KEY] = redacted
