"""Writing one Aim run: the core's RunWriter on ``aim.Run``, locally or through an Aim server."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
from aim.sdk.repo import Repo
from aim.sdk.run import Run as AimRun

from track_aim import _aim_private as private
from track_aim._convert import to_aim
from track_aim._mapping import STATUS_PATH, status_param, tag_names
from track_aim._reader import sequence_infos
from track_aim._remote import check_server, is_connection_error
from track_core.backend import SequenceInfo, TrackedPoint
from track_core.params import Param
from track_core.status import Status

if TYPE_CHECKING:
    from track_aim.backend import AimBackend

logger = logging.getLogger("track_aim")

T = TypeVar("T")

#: A remote writer checks the server before a call unless a call succeeded this recently (s).
_HEALTHY_FOR: Final = 2.0

#: Points per message to an Aim server. The server decodes a message in time quadratic in its
#: length (``aim.ext.transport.message_utils.unpack_args`` copies the rest of the message for
#: each field), so messages stay short: with a sequence's values sent as one ``update``
#: instruction per array, 25 points per message cost the server least per value, one loss or
#: 100 metrics per step alike (benchmarks/bench_aim.py --remote).
REMOTE_CHUNK: int = 25

#: Points per ``write_points`` call to an Aim server. What a message costs the server is mostly
#: per instruction: four ``update`` instructions for each sequence in it (one per array) and up
#: to three summary writes (``last``, ``last_step``, ``max``/``min``). A batch is grouped by
#: sequence before it is cut into messages, so the more values of each sequence a batch holds,
#: the fewer instructions per value: with 1,000 metrics a step, a batch of the core's default
#: 1,000 points is one step, one value per sequence and seven instructions per value; a batch
#: of 25,000 points is up to 25 steps, one sequence's 25 values per message. The writer takes
#: what is queued up to this many points, so batches grow only when the server falls behind.
REMOTE_BATCH_SIZE: int = 25_000


def track_batch(run: Any, points: Sequence[TrackedPoint], cache: private.BatchCache) -> None:
    """Store points with Aim's tracker and the core's timestamps; to a server in messages of
    ``REMOTE_CHUNK`` points."""
    if not private.is_remote(run.repo):
        private.track_batch(run, points, cache, to_aim)
        return
    grouped = by_sequence(points)
    for start in range(0, len(grouped), REMOTE_CHUNK):
        private.track_batch(run, grouped[start : start + REMOTE_CHUNK], cache, to_aim)


def by_sequence(points: Sequence[TrackedPoint]) -> list[TrackedPoint]:
    """The points grouped by sequence (in the order each sequence first appears), each
    sequence's points in their order: a message to a server then holds several values of one
    sequence, whose summary (last, last_step, ...) it writes once instead of once per value."""
    groups: dict[tuple[str, object], list[TrackedPoint]] = {}
    for point in points:
        key = (point.name, point.context)
        group = groups.get(key)
        if group is None:
            groups[key] = [point]
        else:
            group.append(point)
    if len(groups) == 1:
        return list(points)
    return [point for group in groups.values() for point in group]


def wait_acknowledged(repo: Repo, timeout: float, connect_timeout: float) -> None:
    """Wait until the server acknowledged every write queued in Aim's client (or raise)."""
    private.wait_acknowledged(repo, timeout, connect_timeout, check_server)


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
    _cache: private.BatchCache = attrs.field(factory=private.BatchCache)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    @property
    def id(self) -> str:
        return self._hash

    @property
    def aim_run(self) -> AimRun:
        """The underlying ``aim.Run`` (for what track does not cover; use with care)."""
        if self._closed:
            raise RuntimeError(f"the Aim run {self._hash} was closed")
        run: AimRun = self._connected()
        return run

    def _remote(self) -> bool:
        return self._backend.options.is_remote

    def _connected(self) -> Any:
        if self._closed:
            # The core retries a batch whose close was stored but not acknowledged: the run is
            # opened again (Aim's resume), and the retried close ends it again.
            self._closed = False
            self._run = None
            self._repo = None
        if self._run is None:  # a remote connection was dropped (or the run closed): reconnect
            repo = self._backend._open_repo()
            try:
                self._run = self._backend._open_run(repo, self._hash, force=True)
            except Exception:
                private.abandon_remote(repo, None)
                raise
            self._repo = repo
            self._cache.clear()
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
                wait_acknowledged(self._repo, options.timeout, options.connect_timeout)
                result = action(run)
                wait_acknowledged(self._repo, options.timeout, options.connect_timeout)
                self._last_ok = time.monotonic()
                return result
            except Exception as error:
                if isinstance(error, OSError) or is_connection_error(error):
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
            private.abandon_remote(self._repo, self._run)
        self._run = None
        self._repo = None

    def sequences(self) -> Sequence[SequenceInfo]:
        def action(run: Any) -> Sequence[SequenceInfo]:
            traces = private.traces_of(private.meta_run_tree(run).get("traces", None))
            contexts = {ctx_id: run.idx_to_ctx(ctx_id).to_dict() for ctx_id, *_ in traces}
            return sequence_infos(traces, contexts)

        return self._call(action)

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        if points:
            self._call(lambda run: track_batch(run, points, self._cache))

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
            current = set(tag_names(run.tags))
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

        def action(run: Any) -> None:
            if private.artifacts_uri_of(run) is None:
                uri = self._backend.artifacts_uri()
                if uri is None:
                    raise ValueError(self._backend.no_artifacts_reason())
                run.set_artifacts_uri(uri)
            run.log_artifact(path, name=name, block=True)

        self._call(action)

    def close(self, status: Status, error: str | None, ended_at: float | None = None) -> None:
        """Record the status and end the run (Aim's ``end_time``: ``ended_at`` when given, else
        now)."""
        if self._closed:
            return

        def action(run: Any) -> None:
            run[STATUS_PATH] = status_param(status.value, error)
            if status is Status.FINISHED:
                run.report_successful_finish(block=True)

        self._call(action)
        with self._lock:
            run, repo = self._run, self._repo
            assert run is not None and repo is not None
            private.close_run_at(run, None if status is Status.RUNNING else ended_at)
            self._closed = True
            try:
                private.index_run(repo, self._hash)
            except Exception as problem:  # another process (aim up) holds the index
                logger.debug("could not index Aim run %s: %s", self._hash, problem)
            if private.is_remote(repo):
                private.close_remote(repo)
            # Aim releases a run's RocksDB lock when its Run is collected, not at close(): drop
            # it, so that another process can resume or edit the run while this one lives on.
            self._run = None
            self._repo = None
            self._cache.clear()
