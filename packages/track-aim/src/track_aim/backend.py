"""The ``aim`` backend: track_core's Backend / RunWriter / RunReader on the Aim SDK.

Mapping (everything native to Aim):

- run params -> Aim run params (``run[key] = value``);
- sequences -> Aim sequences with their context; scalars as metrics, ``Image`` / ``Text`` /
  ``Distribution`` as ``aim.Image`` / ``aim.Text`` / ``aim.Distribution``; the core's step, epoch
  and timestamp are stored as they are (Aim's tracker is given the core's timestamp);
- name, experiment, description, tags -> Aim's structured run props;
- end status: Aim records only "active" / "finished" (``end_time``). The core's status and error
  go to a param block ``__track__ = {"status": ..., "error": ...}`` (query failed runs in Aim
  with ``run["__track__"]["status"] == "failed"``), Aim's ``end_time`` is set by ``Run.close``,
  and a finished run also reports ``report_successful_finish()``;
- artifacts -> Aim artifacts (``set_artifacts_uri``, default ``file://<repo>/.aim-artifacts``).

Aim internals used (pinned by the ``aim>=3.29,<3.30`` requirement, checked by tests/aim):
``RunTracker`` methods to track with the core's timestamp, ``RepoIndexManager.index`` (a run
written by the SDK is readable through ``Repo``/``Run(read_only=True)`` only once indexed), and
``AutoClean._finalizers`` (so that Aim's own exit hook does not close a run before the core has
flushed it, and never blocks the exit on a dead server).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
from aim.ext.cleanup import AutoClean
from aim.sdk.errors import MissingRunError
from aim.sdk.repo import ContainerConfig, Repo
from aim.sdk.run import Run as AimRun
from aim.sdk.tracker import RunTracker
from aim.storage.context import Context as AimContext

from track_aim._convert import (
    KIND_OF_DTYPE,
    SEQUENCE_TYPE,
    check_distribution,
    epoch_of,
    from_aim,
    to_aim,
)
from track_aim._options import AimOptions
from track_core.backend import (
    Capability,
    Point,
    RunInfo,
    RunSpec,
    SequenceInfo,
    TrackedPoint,
)
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_core.values import Distribution, Value, ValueKind

logger = logging.getLogger("track_aim")

#: The param block holding the core's end status and error.
STATUS_KEY: Final = "__track__"
#: Params written by track or by Aim itself, not by the user.
_HIDDEN_PARAMS: Final = frozenset({STATUS_KEY, "__system_params"})
#: Sequence names Aim uses for itself (system metrics, terminal logs, log records).
_RESERVED_PREFIX: Final = "__"

_BASE_CAPABILITIES: Final = frozenset(
    {
        Capability.IMAGES,
        Capability.TEXTS,
        Capability.DISTRIBUTIONS,
        Capability.RESUME,
        Capability.BATCH_WRITES,
        Capability.ARCHIVE,
        Capability.WRITER_PROCESS,
    }
)

T = TypeVar("T")

#: A remote writer checks the server before a call unless a call succeeded this recently (s).
_HEALTHY_FOR: Final = 2.0


class AimServerUnavailableError(ConnectionError):
    """The Aim server did not answer (or did not acknowledge a write in time)."""


# -- Aim plumbing -------------------------------------------------------------------------------


def _unregister_exit_cleanup(*objects: Any) -> None:
    """Keep Aim's exit hook away from these objects.

    Aim closes every open run and remote resource in an ``atexit`` hook. That hook would close a
    run before the core has flushed it (the core's own exit hook may run later), and if one
    resource's release raises (a dead server), Aim's hook thread dies and the process hangs at
    exit. The objects stay closable by hand (``run.close()``) and are still released when
    garbage-collected.
    """
    finalizers: Any = vars(AutoClean)["_finalizers"]
    for obj in objects:
        with contextlib.suppress(TypeError, KeyError):
            finalizers.pop(obj, None)


def _client_resources(repo: Repo) -> list[Any]:
    client = repo._client
    if client is None:
        return []
    return list(client._resource_pool.values())


def _forget_remote(repo: Repo, *extra: Any) -> None:
    """Unregister a remote repo, its client's resources and ``extra`` from Aim's exit hook."""
    _unregister_exit_cleanup(repo, *extra, *_client_resources(repo))


def _abandon_remote(repo: Repo, run: Any | None) -> None:
    """Drop a remote client that lost its server: stop its threads, drop its queued writes.

    The core keeps everything it handed over until a write is acknowledged, and replays it
    through a fresh connection, so the writes queued in Aim's client are not needed.
    """
    objects = [repo, *_client_resources(repo), *(() if run is None else (run,))]
    _unregister_exit_cleanup(*objects)
    for obj in objects:
        # Their cleanup waits for the client's queue to drain, which never happens now: a
        # cleanup run at garbage collection would block forever.
        finalizer = getattr(getattr(obj, "_resources", None), "finalizer", None)
        if finalizer is not None:
            finalizer.detach()
    client: Any = repo._client
    if client is None:
        return
    client._heartbeat_sender._shutdown = True
    request_queue = client.get_queue()
    request_queue._shutdown = True
    pending = request_queue._queue
    with pending.all_tasks_done:  # the queue's mutex
        pending.queue.clear()
        # Aim's Run finalizer joins this queue: with the tasks dropped, nothing is unfinished
        # (without this, garbage-collecting the abandoned run waits forever).
        pending.unfinished_tasks = 0
        pending.all_tasks_done.notify_all()


def _wait_acknowledged(repo: Repo, timeout: float, connect_timeout: float) -> None:
    """Wait until Aim's client has sent every queued write and the server acknowledged it.

    Aim's client retries a failed write forever in a background thread; here a failed send
    (the client then wants to reconnect) and a server that does not answer raise at once.
    """
    client: Any = repo._client
    if client is None:
        return
    request_queue = client.get_queue()
    queue = request_queue._queue
    last_progress, pending = time.monotonic(), -1
    while True:
        with queue.all_tasks_done:
            if not queue.unfinished_tasks:
                return
            queue.all_tasks_done.wait(0.05)
            if not queue.unfinished_tasks:
                return
            if queue.unfinished_tasks != pending:
                last_progress, pending = time.monotonic(), queue.unfinished_tasks
        if request_queue._needs_reconnect:
            check_server(f"aim://{client.remote_path}", connect_timeout)
        if time.monotonic() - last_progress > timeout:
            raise AimServerUnavailableError(
                f"the Aim server at aim://{client.remote_path} acknowledged no write "
                f"for {timeout:g} s (option timeout=)"
            )


def check_server(address: str, timeout: float) -> None:
    """Raise AimServerUnavailableError unless the Aim server at ``aim://HOST:PORT`` answers."""
    host_port = address[len("aim://") :]
    url = f"http://{host_port}/status/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (OSError, urllib.error.URLError) as error:
        problem = str(getattr(error, "reason", error))
    host, _, port = host_port.rpartition(":")
    raise AimServerUnavailableError(
        f"cannot reach the Aim server at {address} ({problem}); start it with "
        f"`aim init --repo DIR && aim server --repo DIR --host {host} --port {port}`"
    )


def _index_run(repo: Repo, run_hash: str) -> None:
    """Bring Aim's repo index up to date with one run (what ``aim up`` does in the background).

    ``Repo``, ``Run(hash, read_only=True)`` and the Aim UI read run metadata from the index only.
    """
    if repo.is_remote_repo:
        index = repo._get_index_tree("meta", 0)
        chunk = repo.request_tree("meta", run_hash, read_only=True)
        chunk.finalize(index=index)
        return
    from aim.sdk.index_manager import RepoIndexManager

    manager = RepoIndexManager.get_index_manager(repo)
    try:
        index_db = repo.request_tree("meta", read_only=True)
        if not manager._is_run_index_outdated(run_hash, index_db):
            return
    except Exception:  # no index yet, or unreadable: index anyway
        pass
    try:
        manager.index(run_hash)
    except Exception as error:  # another process (aim up) holds the index: it indexes itself
        logger.debug("could not index Aim run %s: %s", run_hash, error)
    # A read-only RocksDB is a snapshot: drop the cached one so that reads see the new index.
    repo.container_pool.pop(ContainerConfig("meta", None, True), None)


def _traces(run: Any) -> list[tuple[int, str, str, int]]:
    """(context index, name, Aim dtype, last step) of every sequence Aim holds for ``run``."""
    traces = run.meta_run_tree.subtree("traces")
    result = []
    try:
        ctx_ids = list(traces.keys())
    except KeyError:
        return []
    for ctx_id in ctx_ids:
        for name in list(traces.subtree(ctx_id).keys()):
            try:
                dtype = traces[ctx_id, name, "dtype"]
            except KeyError:
                dtype = "float"
            try:
                last_step = traces[ctx_id, name, "last_step"]
            except KeyError:
                continue
            result.append((ctx_id, name, dtype, int(last_step)))
    return result


def _sequence_infos(run: Any) -> list[SequenceInfo]:
    infos = []
    for ctx_id, name, dtype, last_step in _traces(run):
        kind = KIND_OF_DTYPE.get(dtype)
        if kind is None:  # Aim's own sequences (terminal logs, log records, figures...)
            continue
        context = Context.of(run.idx_to_ctx(ctx_id).to_dict())
        infos.append(SequenceInfo(name, context, kind, last_step))
    return infos


#: Points per message to an Aim server. The server applies a message's instructions one by one
#: and slows down with big messages (1000 points in one message took over 30 s; 10 points per
#: message was the fastest measured: about 3 ms per point, as fast as Aim's own run.track).
REMOTE_CHUNK: int = 10
#: Points stored between two offers of the GIL to other threads (the training loop).
YIELD_EVERY: int = 16


def _track_batch(run: Any, points: Sequence[TrackedPoint], contexts: dict[Context, Any]) -> None:
    """Aim's ``RunTracker._track`` for many values, with the core's timestamps.

    For a remote repo the points go to the server in messages of ``REMOTE_CHUNK`` points.
    """
    if not run.repo.is_remote_repo:
        _track_chunk(run, points, contexts)
        return
    for start in range(0, len(points), REMOTE_CHUNK):
        _track_chunk(run, points[start : start + REMOTE_CHUNK], contexts)


def _track_chunk(run: Any, points: Sequence[TrackedPoint], contexts: dict[Context, Any]) -> None:
    tracker = run._tracker
    # Aim's run.track() rewrites a sequence's summary (last, last_step, max, min) in the run's
    # meta tree at every value; for a batch, inside one atomic_track, only the last write of
    # each key is kept and written at the end: the same stored run, about half of the writes.
    summary = _CoalescedWrites()
    batch_tracker = _BatchTracker(tracker.sequence_infos, tracker.meta_tree, summary)
    update_sequence_info: Any = RunTracker._update_sequence_info  # called with a stand-in self
    with run.repo.atomic_track(run.hash):
        for index, point in enumerate(points):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                time.sleep(0)  # let a waiting training thread have the GIL now, not in 5 ms
            aim_context = contexts.get(point.context)
            if aim_context is None:
                aim_context = contexts[point.context] = AimContext(point.context.to_dict())  # type: ignore[arg-type]
            value = to_aim(point.value)
            name = point.name
            ctx_id = aim_context.idx
            seq_info = tracker.sequence_infos[ctx_id, name]
            if not seq_info.initialized:
                tracker._init_sequence_info(ctx_id, name, value)
            tracker._update_context_data(aim_context)
            update_sequence_info(batch_tracker, ctx_id, name, value, point.step)
            tracker._add_value(seq_info, value, point.step, point.epoch, point.timestamp)
        summary.write_to(tracker.meta_run_tree)


class _CoalescedWrites:
    """Write-only stand-in for an Aim tree: keeps the last value written to each path."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[Any, Any] = {}

    def __setitem__(self, path: Any, value: Any) -> None:
        self._pending[path] = value

    def write_to(self, tree: Any) -> None:
        for path, value in self._pending.items():
            tree[path] = value


@attrs.frozen
class _BatchTracker:
    """What Aim's ``RunTracker._update_sequence_info`` reads and writes, with the run's meta
    tree replaced by a ``_CoalescedWrites`` (that method only writes to it)."""

    sequence_infos: Any
    meta_tree: Any
    meta_run_tree: _CoalescedWrites


# -- Writer -------------------------------------------------------------------------------------


@attrs.define
class AimRunWriter:
    """Writes one Aim run. Remote writes raise promptly when the server is gone, and reconnect
    (a fresh client, the run re-opened) on the next call."""

    _backend: AimBackend
    _hash: str
    _run: Any | None
    _repo: Repo | None
    _closed: bool = False
    _last_ok: float = 0.0
    _contexts: dict[Context, Any] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    @property
    def id(self) -> str:
        return self._hash

    @property
    def aim_run(self) -> AimRun:
        """The underlying ``aim.Run`` (for what track does not cover; use with care)."""
        run: AimRun = self._connected()
        return run

    def _remote(self) -> bool:
        return self._backend.options.is_remote

    def _connected(self) -> Any:
        if self._closed:
            raise RuntimeError(f"the Aim run {self._hash} was closed")
        if self._run is None:  # a remote connection was dropped: reconnect
            repo = self._backend._open_repo()
            try:
                self._run = self._backend._open_run(repo, self._hash, force=True)
            except Exception:
                _abandon_remote(repo, None)
                raise
            self._repo = repo
            self._contexts.clear()
            logger.info("track_aim: reconnected to %s, run %s", self._backend.location, self._hash)
        elif self._remote() and time.monotonic() - self._last_ok > _HEALTHY_FOR:
            check_server(self._backend.options.repo, self._backend.options.connect_timeout)
        return self._run

    def _call(self, action: Callable[[Any], T]) -> T:
        with self._lock:
            run = self._connected()
            if not self._remote():
                return action(run)
            assert self._repo is not None
            options = self._backend.options
            try:
                _wait_acknowledged(self._repo, options.timeout, options.connect_timeout)
                result = action(run)
                _wait_acknowledged(self._repo, options.timeout, options.connect_timeout)
                self._last_ok = time.monotonic()
                return result
            except Exception as error:
                if isinstance(error, (OSError, TimeoutError)) or _is_connection_error(error):
                    logger.warning(
                        "track_aim: lost the Aim server at %s (%s); the core keeps the data and "
                        "retries",
                        self._backend.location,
                        error,
                    )
                    self._drop_connection()
                raise

    def _drop_connection(self) -> None:
        if self._repo is not None:
            _abandon_remote(self._repo, self._run)
        self._run = None
        self._repo = None

    def sequences(self) -> Sequence[SequenceInfo]:
        return self._call(_sequence_infos)

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        if points:
            self._call(lambda run: _track_batch(run, points, self._contexts))

    def set_params(self, params: Mapping[str, Param]) -> None:
        def action(run: Any) -> None:
            for key, value in params.items():
                run[key] = value

        self._call(action)

    def set_name(self, name: str) -> None:
        self._call(lambda run: setattr(run, "name", name))

    def set_description(self, description: str) -> None:
        self._call(lambda run: setattr(run, "description", description))

    def set_tags(self, tags: frozenset[str]) -> None:
        def action(run: Any) -> None:
            current = set(_tag_names(run.tags))
            for tag in sorted(current - tags):
                run.remove_tag(tag)
            for tag in sorted(tags - current):
                run.add_tag(tag)

        self._call(action)

    def set_archived(self, archived: bool) -> None:
        self._call(lambda run: setattr(run, "archived", archived))

    def log_artifact(self, path: str, name: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"cannot log artifact {name!r}: no file at {path}")
        if self._backend.options.artifacts_uri is None:
            raise ValueError(
                "the aim backend stores artifacts under an artifacts_uri; with a remote Aim repo "
                "give one both the client and the readers can reach, e.g. "
                "aim://host:port?artifacts_uri=s3://bucket/prefix"
            )

        def action(run: Any) -> None:
            run.log_artifact(path, name=name, block=True)

        self._call(action)

    def close(self, status: Status, error: str | None) -> None:
        if self._closed:
            return

        def action(run: Any) -> None:
            run[STATUS_KEY] = {"status": status.value, "error": error}
            if status is Status.FINISHED:
                run.report_successful_finish(block=True)

        self._call(action)
        with self._lock:
            run, repo = self._run, self._repo
            assert run is not None and repo is not None
            run.close()
            self._closed = True
            with contextlib.suppress(Exception):
                _index_run(repo, self._hash)
            if repo.is_remote_repo:
                _close_remote(repo)


def _close_remote(repo: Repo) -> None:
    _forget_remote(repo)
    with contextlib.suppress(Exception):
        for resource in _client_resources(repo):
            cleanup = getattr(resource, "_resources", None)
            if cleanup is not None:
                cleanup.close()
    with contextlib.suppress(Exception):
        closing: Any = repo.close
        closing()


def _is_connection_error(error: BaseException) -> bool:
    module = type(error).__module__ or ""
    return module.startswith(("requests", "urllib3", "websockets"))


def _tag_names(tags: Any) -> list[str]:
    names = []
    for tag in tags or ():
        names.append(tag if isinstance(tag, str) else getattr(tag, "name", str(tag)))
    return names


# -- Reader -------------------------------------------------------------------------------------


@attrs.define
class AimRunReader:
    """One stored Aim run, read through Aim's own read-only ``Run``."""

    _run: Any
    _repo: Repo

    @property
    def aim_run(self) -> AimRun:
        return self._run  # type: ignore[no-any-return]

    @property
    def id(self) -> str:
        return self._run.hash  # type: ignore[no-any-return]

    @property
    def experiment(self) -> str | None:
        return self._run.experiment  # type: ignore[no-any-return]

    @property
    def name(self) -> str | None:
        return self._run.name  # type: ignore[no-any-return]

    @property
    def description(self) -> str | None:
        return self._run.description  # type: ignore[no-any-return]

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(_tag_names(self._run.tags))

    def _track_block(self) -> dict[str, Any]:
        block = self._run.get(STATUS_KEY, None)
        return block if isinstance(block, dict) else {}

    @property
    def status(self) -> Status:
        return run_status(self._track_block().get("status"), self._run.end_time)

    @property
    def archived(self) -> bool:
        return bool(self._run.archived)

    @property
    def error(self) -> str | None:
        error = self._track_block().get("error")
        return error if isinstance(error, str) else None

    @property
    def params(self) -> Mapping[str, Param]:
        params = self._run.get(..., None) or {}
        return {key: value for key, value in params.items() if key not in _HIDDEN_PARAMS}

    def sequences(self) -> Sequence[SequenceInfo]:
        return _sequence_infos(self._run)

    def points(self, name: str, context: Context) -> Sequence[Point]:
        context = Context.of(context)
        aim_context = AimContext(context.to_dict())  # type: ignore[arg-type]
        dtype = self._run._get_sequence_dtype(name, aim_context)
        kind = KIND_OF_DTYPE.get(dtype)
        sequence = (
            None
            if kind is None
            else self._run._get_sequence(SEQUENCE_TYPE[kind], name, aim_context)
        )
        if sequence is None or kind is None:
            raise KeyError(f"run {self.id} has no sequence {name!r} in context {dict(context)}")
        steps, (values, epochs, timestamps) = sequence.data.numpy()
        return [
            Point(int(step), epoch_of(epoch), float(timestamp), from_aim(value, kind, dtype))
            for step, value, epoch, timestamp in zip(steps, values, epochs, timestamps, strict=True)
        ]

    def artifacts(self) -> Sequence[str]:
        return sorted(self._run.artifacts)

    def artifact_bytes(self, name: str) -> bytes:
        artifacts = self._run.artifacts
        if name not in artifacts:
            raise KeyError(f"run {self.id} has no artifact {name!r}")
        with tempfile.TemporaryDirectory(prefix="track-aim-") as directory:
            return Path(artifacts[name].download(directory)).read_bytes()


def run_status(track_status: object, end_time: float | None) -> Status:
    """The core's status of an Aim run from the ``__track__`` block and Aim's ``end_time``."""
    if end_time is None:
        return Status.RUNNING
    if track_status in ("finished", "failed", "killed"):
        return Status(track_status)
    if track_status == "running":  # ended, but not by track: Aim closed it (aim up, aim runs close)
        return Status.KILLED
    return Status.FINISHED  # a run written by Aim alone: Aim has no other end state


# -- Backend ------------------------------------------------------------------------------------


@attrs.define
class AimBackend:
    """A local Aim repo (``.aim`` in a directory, created when missing) or an Aim server."""

    _options: AimOptions
    _local_repo: Repo | None = None

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
    def capabilities(self) -> frozenset[Capability]:
        caps = set(_BASE_CAPABILITIES)
        if self._options.artifacts_uri is not None:
            caps.add(Capability.ARTIFACTS)
        if self._options.is_remote:
            caps.add(Capability.REMOTE)
        return frozenset(caps)

    def check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        if name.startswith(_RESERVED_PREFIX):
            raise ValueError(
                f"sequence names starting with {_RESERVED_PREFIX!r} are reserved by Aim for its "
                f"own sequences (system metrics, logs): rename {name!r}"
            )
        for key, value in context.items():
            if key.startswith(_RESERVED_PREFIX):
                raise ValueError(f"context keys starting with '__' are reserved by Aim: {key!r}")
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and not (-(2**63) <= value < 2**63)
            ):
                raise ValueError(
                    f"Aim stores context integers in 64 bits; {key!r}={value} does not fit"
                )

    def check_value(self, value: Value) -> None:
        if type(value) is Distribution:
            check_distribution(value)

    # ---- connections

    def _open_repo(self) -> Repo:
        options = self._options
        if options.is_remote:
            check_server(options.repo, options.connect_timeout)
            try:
                repo = Repo(options.repo)  # a private client, not Aim's pooled one
            except Exception as error:
                raise AimServerUnavailableError(
                    f"cannot connect to the Aim server at {options.repo}: {error}"
                ) from error
            _forget_remote(repo)
            return repo
        if self._local_repo is None:
            root = options.repo
            try:
                os.makedirs(root, exist_ok=True)
                self._local_repo = Repo.from_path(root, init=not Repo.exists(root))
            except OSError as error:
                raise OSError(f"cannot create the Aim repo at {root}/.aim: {error}") from error
        return self._local_repo

    def _open_run(
        self,
        repo: Repo,
        run_hash: str | None,
        *,
        force: bool = False,
        experiment: str | None = None,
    ) -> Any:
        options = self._options
        run = AimRun(
            run_hash,
            repo=repo,
            experiment=experiment,
            force_resume=force or options.force_resume,
            system_tracking_interval=options.system_tracking_interval,
            log_system_params=options.log_system_params,
            capture_terminal_logs=options.capture_terminal_logs,
        )
        _unregister_exit_cleanup(run)
        if repo.is_remote_repo:
            _forget_remote(repo)
        if options.artifacts_uri is not None and run.meta_run_tree.get("artifacts_uri") is None:
            run.set_artifacts_uri(options.artifacts_uri)
        return run

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Repo]:
        repo = self._open_repo()
        try:
            yield repo
        finally:
            if repo.is_remote_repo:
                _forget_remote(repo)

    # ---- runs

    def create_run(self, spec: RunSpec) -> AimRunWriter:
        repo = self._open_repo()
        try:
            run = self._open_run(repo, None, experiment=spec.experiment)
            if spec.name is not None:
                run.name = spec.name
            if spec.description is not None:
                run.description = spec.description
            for tag in sorted(spec.tags):
                run.add_tag(tag)
            run[STATUS_KEY] = {"status": Status.RUNNING.value, "error": None}
            if repo.is_remote_repo:
                _wait_acknowledged(repo, self._options.timeout, self._options.connect_timeout)
        except Exception:
            if repo.is_remote_repo:
                _abandon_remote(repo, None)
            raise
        return AimRunWriter(self, run.hash, run, repo)

    def resume_run(self, run_id: str) -> AimRunWriter:
        repo = self._open_repo()
        try:
            if not repo.run_exists(run_id):
                raise KeyError(f"no Aim run {run_id!r} in {self.location}")
            try:
                run = self._open_run(repo, run_id)
            except MissingRunError as error:
                raise KeyError(f"no Aim run {run_id!r} in {self.location}") from error
            run[STATUS_KEY] = {"status": Status.RUNNING.value, "error": None}
            if repo.is_remote_repo:
                _wait_acknowledged(repo, self._options.timeout, self._options.connect_timeout)
        except Exception:
            if repo.is_remote_repo:
                _abandon_remote(repo, None)
            raise
        return AimRunWriter(self, run.hash, run, repo)

    def list_runs(self, experiment: str | None = None) -> Sequence[RunInfo]:
        with self._reading() as repo:
            infos = []
            for run_hash in repo.list_all_runs():
                _index_run(repo, run_hash)
            for run in repo.iter_runs():
                if experiment is not None and run.experiment != experiment:
                    continue
                track_block = run.get(STATUS_KEY, None)
                track_status = track_block.get("status") if isinstance(track_block, dict) else None
                infos.append(
                    RunInfo(
                        run.hash,
                        run.experiment,
                        run.name,
                        run_status(track_status, run.end_time),
                        run.creation_time,
                    )
                )
        infos.sort(key=lambda info: (info.created_at or 0.0, info.id))
        return infos

    def read_run(self, run_id: str) -> AimRunReader:
        with self._reading() as repo:
            if not isinstance(run_id, str) or not repo.run_exists(run_id):
                raise KeyError(f"no Aim run {run_id!r} in {self.location}")
            _index_run(repo, run_id)
            run = repo.get_run(run_id)
            if run is None:
                raise KeyError(f"no Aim run {run_id!r} in {self.location}")
            return AimRunReader(run, repo)

    def close(self) -> None:
        return None
