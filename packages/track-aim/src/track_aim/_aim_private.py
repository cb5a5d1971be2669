"""Every Aim internal that track_aim relies on, in one file (checked against ``aim>=3.29,<3.30``).

The other modules of track_aim use only Aim's public names (``aim.Run``, ``aim.Repo``,
``aim.Image`` ...) and the functions here. Raising the Aim pin means reviewing this file and
running tests/aim, which exercise each function against a real repo and a real ``aim server``.

What is used, by duty:

- **exit hook**: ``AutoClean._finalizers`` (Aim's atexit registry), ``obj._resources``;
- **remote client**: ``Repo._client``, ``Client._resource_pool``, ``Client._heartbeat_sender``,
  the request queue's ``_queue`` / ``_shutdown`` / ``_needs_reconnect``, the server's ``Repo``
  resource (``Repo._remote_repo_proxy``: its run list and its ``path``);
- **batches**: ``Run._tracker`` and ``RunTracker`` internals (``sequence_infos``,
  ``_init_sequence_info``, ``_update_context_data``, ``_update_sequence_info``, ``_add_value``),
  ``Repo.atomic_track``; to a server, the proxy trees of a sequence's arrays
  (``aim.storage.treeviewproxy.ProxyTree`` under ``SubtreeView``) and their ``update``
  instruction, which the server applies as ``ContainerTreeView.update``;
- **index**: ``Repo._get_index_tree``, ``RepoIndexManager``, ``Repo.container_pool`` /
  ``ContainerConfig``, ``Repo._all_run_hashes`` (a ``ttl_cache``), ``Repo._remote_repo_proxy``;
- **reading**: the layout of a run's own meta chunk (``meta/chunks/<hash>``: ``attrs``, ``traces``,
  ``contexts``, ``end_time``, ``artifacts``) and series (``seqs/v2/chunks/<hash>``), the registry
  ``Sequence.registry``, ``STEP_HASH_FUNCTIONS``, ``Repo.request_props``;
- **values**: ``aim.Image``'s ``storage`` and ``aim.storage.types.BLOB``;
- **run times**: ``Run.props`` (the structured run made by ``Repo.request_props(hash, False,
  created_at)``, which keeps a given creation time only when it makes the run's props), and
  ``Run._resources.set_run_end_time`` (what ``Run.close`` calls to write ``end_time``).

Why track_aim reads a run's own chunk instead of Aim's index (the Aim 3.29 server bug):
``Repo.request_container`` (aim/sdk/repo.py) caches every read-only container in
``Repo.container_pool``, a ``WeakValueDictionary`` keyed by ``(name, sub, read_only)``, and a
read-only RocksDB is a snapshot taken when it is opened. On an ``aim server`` one ``Repo`` serves
every client (``get_tree`` in aim/ext/transport/handlers.py) and ``TrackingRouter.resource_pool``
(aim/ext/transport/tracking.py) keeps a client's tree alive until that client releases it. So
while any client holds a read-only ``Run`` (whose ``meta_tree`` is the index,
``BaseRun.__init__`` in aim/sdk/base_run.py), every other ``request_tree('meta',
read_only=True)`` on the server gets the same old snapshot of ``meta/index``: runs indexed later
are missing from ``Repo.get_run``, ``iter_runs`` and ``Run(hash, read_only=True)`` for every
client, until the holder lets go or the server restarts. (``aim up`` works around the same cache
in-process by clearing ``container_pool`` every 5 s, ``RepoIndexManager._monitor_existing_chunks``
in aim/sdk/index_manager.py.) track_aim therefore reads each run from its own chunk, opens its
containers fresh for each read, and releases them at once (``ReadSession``).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib.metadata
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
from aim.ext.cleanup import AutoClean
from aim.sdk.errors import MissingRunError
from aim.sdk.objects.image import Image as AimImage
from aim.sdk.repo import ContainerConfig, Repo
from aim.sdk.sequence import Sequence as AimSequence
from aim.sdk.tracker import STEP_HASH_FUNCTIONS, RunTracker
from aim.storage.container import Container
from aim.storage.containertreeview import ContainerTreeView
from aim.storage.context import Context as AimContext
from aim.storage.object import CustomObject
from aim.storage.prefixview import PrefixView
from aim.storage.treeviewproxy import ProxyTree, SubtreeView
from aim.storage.types import BLOB

from track_aim._errors import AimServerUnavailableError, AimVersionWarning

__all__ = [
    "AimContext",
    "BatchCache",
    "MissingRunError",
    "ReadSession",
    "StoredRun",
    "abandon_remote",
    "aim_image",
    "artifacts_uri_of",
    "close_remote",
    "direct_batches",
    "forget_remote",
    "forget_run_list_cache",
    "image_png",
    "index_run",
    "is_remote",
    "list_run_hashes",
    "meta_run_tree",
    "remote_address",
    "server_repo_path",
    "traces_of",
    "track_batch",
    "wait_acknowledged",
]

#: How long Aim caches the list of a repo's runs (``@ttl_cache(ttl=0.5)`` on
#: ``Repo._all_run_hashes``); an Aim server answers every client from its own cache.
RUN_LIST_TTL: Final = 0.5


def is_remote(repo: Repo) -> bool:
    return bool(repo.is_remote_repo)


# -- exit hook ----------------------------------------------------------------------------------


def unregister_exit_cleanup(*objects: Any) -> None:
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


def forget_inherited_cleanups() -> None:
    """In a forked child: drop Aim's exit-time finalizers of every object made before the fork.

    They belong to the parent (its runs, repos and their reporter threads, which do not exist
    in the child). Left registered, Aim's ``atexit`` hook (``AutoClean.cleanup``) runs them at the
    child's exit: the first waits for a reporter thread that is not there, and ``RobustExec.join``
    (aim/ext/cleanup/__init__.py) then waits forever, so the child hangs at exit (Aim 3.29.1).
    Objects the child makes afterwards register anew."""
    vars(AutoClean)["_finalizers"].clear()


# -- remote client ------------------------------------------------------------------------------


def remote_address(repo: Repo) -> str:
    """``aim://host:port`` of a remote repo."""
    client: Any = repo._client
    return f"aim://{client.remote_path}"


def _client_resources(repo: Repo) -> list[Any]:
    client = repo._client
    if client is None:
        return []
    return list(client._resource_pool.values())


def forget_remote(repo: Repo, *extra: Any) -> None:
    """Unregister a remote repo, its client's resources and ``extra`` from Aim's exit hook."""
    unregister_exit_cleanup(repo, *extra, *_client_resources(repo))


def abandon_remote(repo: Repo, run: Any | None) -> None:
    """Drop a remote client that lost its server: stop its threads, drop its queued writes.

    The core keeps everything it handed over until a write is acknowledged, and replays it
    through a fresh connection, so the writes queued in Aim's client are not needed.
    """
    objects = [repo, *_client_resources(repo), *(() if run is None else (run,))]
    unregister_exit_cleanup(*objects)
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


def is_stale_client_error(error: BaseException) -> bool:
    """The server no longer knows this client's resources: it was restarted since the client
    connected (aim/ext/transport/tracking.py raises UnauthorizedRequestError for a handler it
    did not hand out)."""
    from aim.ext.transport.tracking import UnauthorizedRequestError

    return isinstance(error, UnauthorizedRequestError)


def server_repo_path(repo: Repo) -> str:
    """The path of the ``.aim`` directory an Aim server serves, as the server sees it.

    Asked through the server's ``Repo`` resource (an attribute read is answered like a method
    call by ``TrackingRouter.run_instruction``)."""
    proxy: Any = repo._remote_repo_proxy
    client: Any = repo._client
    return str(client.run_instruction(-1, proxy._handler, "path", []))


def close_remote(repo: Repo) -> None:
    """Release every server resource of a remote repo's client, then the client."""
    forget_remote(repo)
    with contextlib.suppress(Exception):
        for resource in _client_resources(repo):
            cleanup = getattr(resource, "_resources", None)
            if cleanup is not None:
                cleanup.close()
    with contextlib.suppress(Exception):
        closing: Any = repo.close
        closing()


def release(objects: Sequence[Any]) -> None:
    """Release the server-side resources of remote trees / props now (not at GC)."""
    for obj in objects:
        cleanup = getattr(obj, "_resources", None)
        if cleanup is None:
            continue
        with contextlib.suppress(Exception):
            cleanup.close()
        unregister_exit_cleanup(obj)


def wait_acknowledged(repo: Repo, timeout: float, connect_timeout: float, check: Any) -> None:
    """Wait until Aim's client has sent every queued write and the server acknowledged it.

    Aim's client retries a failed write forever in a background thread; here a failed send
    (the client then wants to reconnect) runs ``check(address, connect_timeout)`` (which raises
    when the server is gone), and a server that does not answer raises at once.
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
            check(f"aim://{client.remote_path}", connect_timeout)
        if time.monotonic() - last_progress > timeout:
            raise AimServerUnavailableError(
                f"the Aim server at aim://{client.remote_path} acknowledged no write "
                f"for {timeout:g} s (option timeout=)"
            )


# -- runs of a repo and Aim's index -------------------------------------------------------------


def forget_run_list_cache() -> None:
    """Drop Aim's 0.5 s cache of run lists in this process (``Repo._all_run_hashes``)."""
    cached: Any = Repo._all_run_hashes
    with contextlib.suppress(AttributeError):
        cached.cache_clear()


def _index_keys(repo: Repo) -> list[str]:
    """The runs in a remote repo's index, read through the server's writable index (fresh)."""
    index = repo._get_index_tree("meta", 0)
    try:
        return [str(key) for key in index.subtree(("meta", "chunks")).keys()]
    except KeyError:
        return []
    finally:
        release([index])


def list_run_hashes(repo: Repo) -> set[str]:
    """Every run of the repo, as of now.

    Locally the chunk directories are listed (Aim's own list is cached for 0.5 s). An Aim server
    answers from its 0.5 s cache, so the runs in its index are added: track_aim indexes a run on
    the server as soon as it creates it.
    """
    if not is_remote(repo):
        chunks = os.path.join(repo.path, "meta", "chunks")
        return set(os.listdir(chunks)) if os.path.isdir(chunks) else set()
    proxy: Any = repo._remote_repo_proxy
    hashes = {str(run_hash) for run_hash in proxy.list_all_runs()}
    with contextlib.suppress(Exception):  # another process holds the index: its list is enough
        hashes.update(_index_keys(repo))
    return hashes


def index_run(repo: Repo, run_hash: str) -> None:
    """Bring Aim's repo index up to date with one run (what ``aim up`` does in the background).

    track_aim reads runs without the index; Aim's own ``Repo.get_run``, ``iter_runs``, queries
    and the Aim UI read run metadata from the index only.
    """
    if is_remote(repo):
        index = repo._get_index_tree("meta", 0)
        chunk = repo.request_tree("meta", run_hash, read_only=True)
        try:
            chunk.finalize(index=index)
        finally:
            release([chunk, index])
        return
    from aim.sdk.index_manager import RepoIndexManager

    manager = RepoIndexManager.get_index_manager(repo)
    try:
        manager.index(run_hash)
    finally:
        # A read-only RocksDB is a snapshot: drop the cached one so that reads see the new index.
        repo.container_pool.pop(ContainerConfig("meta", None, True), None)


# -- reading ------------------------------------------------------------------------------------


def run_starting_at(run_class: Any, created_at: float, **arguments: Any) -> Any:
    """A new ``aim.Run`` (``run_class(None, **arguments)``) whose creation time, Aim's
    ``creation_time`` (what its UI shows as the run's start), is ``created_at``, not now."""
    return _starting_at(run_class)(None, created_at=created_at, **arguments)


@functools.cache
def _starting_at(run_class: Any) -> Any:
    # Aim's Run makes a new run's structured props with ``Repo.request_props(hash, read_only)``,
    # which takes the creation time as a third argument that Run never passes.
    class RunStartingAt(run_class):  # type: ignore[misc]
        _props: Any

        def __init__(self, *args: Any, created_at: float, **kwargs: Any) -> None:
            self._track_created_at = created_at
            super().__init__(*args, **kwargs)

        @property
        def props(self) -> Any:
            if self._props is None:
                moment = datetime.datetime.fromtimestamp(self._track_created_at, datetime.UTC)
                if not self.repo.is_remote_repo:
                    # Aim's sqlite columns hold naive UTC; its remote proxy sends the
                    # ``.timestamp()`` of what it is given, which needs the zone.
                    moment = moment.replace(tzinfo=None)
                self._props = self.repo.request_props(self.hash, self.read_only, moment)
            return self._props

    return RunStartingAt


def close_run_at(run: Any, ended_at: float | None) -> None:
    """``run.close()``, with Aim's ``end_time`` set to ``ended_at`` (None: now, as Aim does)."""
    resources = getattr(run, "_resources", None)
    if ended_at is not None and resources is not None:
        end = float(ended_at)

        def set_run_end_time() -> None:
            resources.meta_run_tree["end_time"] = end

        resources.set_run_end_time = set_run_end_time
    run.close()


class ReadSession:
    """Fresh read-only views of runs, all released by ``close()``.

    Each tree is opened anew (locally the cached container is dropped first; remotely the
    server opens one unless another client holds it), so a read sees what is stored now, and
    nothing a read opened stays open on the server after it.
    """

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._remote = is_remote(repo)
        self._opened: list[Any] = []
        self._configs: list[Any] = []

    def tree(self, name: str, sub: str) -> Any:
        if self._remote:
            tree = self.repo.request_tree(name, sub, read_only=True)
            self._opened.append(tree)
            return tree
        config = ContainerConfig(name, sub, True)
        self.repo.container_pool.pop(config, None)
        self._configs.append(config)
        return self.repo.request_tree(name, sub, read_only=True, skip_read_optimization=True)

    def props(self, run_hash: str) -> Any:
        if not self._remote:
            # Aim's structured DB keeps one SQLAlchemy session per thread, whose identity map a
            # query does not refresh: without this, props changed since this thread's first
            # read (by another process, or another thread's session) would read as they were.
            database: Any = self.repo.structured_db
            database.get_session().expire_all()
        props = self.repo.request_props(run_hash, True)
        if self._remote:
            self._opened.append(props)
        return props

    def run(self, run_hash: str) -> StoredRun:
        return StoredRun(self, run_hash)

    def discard(self) -> None:
        """Forget the remote resources without releasing them (their server is gone)."""
        self._opened.clear()

    def close(self) -> None:
        opened, self._opened = self._opened, []
        release(opened)
        for config in self._configs:
            self.repo.container_pool.pop(config, None)
        self._configs.clear()


class StoredRun:
    """One run as Aim stores it, read from the run's own meta chunk and series."""

    def __init__(self, session: ReadSession, run_hash: str) -> None:
        self.hash = run_hash
        self._session = session
        self._meta: Any = None
        self._props: Any = None

    @property
    def meta(self) -> Any:
        """The ``meta`` tree of the run's chunk (holding ``contexts`` and ``chunks/<hash>``)."""
        if self._meta is None:
            self._meta = self._session.tree("meta", self.hash).subtree("meta")
        return self._meta

    @property
    def run_tree(self) -> Any:
        return self.meta.subtree(("chunks", self.hash))

    @property
    def props(self) -> Any:
        """Aim's structured run props (name, experiment, tags, archived, creation time)."""
        if self._props is None:
            self._props = self._session.props(self.hash)
        return self._props

    def get(self, path: Any, default: Any = None) -> Any:
        try:
            return self.run_tree.collect(path)
        except KeyError:
            return default

    def params(self) -> dict[str, Any]:
        params = self.get("attrs", None)
        return dict(params) if isinstance(params, Mapping) else {}

    def param(self, path: tuple[str, ...]) -> Any:
        """The param at ``path`` (None if there is none)."""
        return self.get(("attrs", *path), None)

    @property
    def end_time(self) -> float | None:
        end_time = self.get("end_time", None)
        return None if end_time is None else float(end_time)

    def contexts(self) -> dict[int, dict[str, Any]]:
        try:
            contexts = self.meta.collect("contexts")
        except KeyError:
            return {}
        return {int(idx): dict(value) for idx, value in contexts.items()}

    def traces(self) -> list[tuple[int, str, str, int]]:
        return traces_of(self.get("traces", None))

    def artifacts(self) -> dict[str, Any]:
        artifacts = self.run_tree.get("artifacts", None)
        return dict(artifacts) if isinstance(artifacts, Mapping) else {}

    def sequence(self, seq_type: str, name: str, context: Mapping[str, Any]) -> Any | None:
        """Aim's own ``Sequence`` object (``aim.Metric``, ``aim.Images`` ...) or None."""
        aim_context = AimContext(dict(context))  # type: ignore[arg-type]
        seq_cls: Any = AimSequence.registry.get(seq_type)
        if seq_cls is None:
            raise ValueError(f"{seq_type!r} is not an Aim sequence type")
        dtype = self.get(("traces", aim_context.idx, name, "dtype"), "float")
        if dtype not in seq_cls.allowed_dtypes():
            return None
        return seq_cls(name, aim_context, _SequenceRun(self))

    def dtype(self, name: str, context: Mapping[str, Any]) -> str | None:
        aim_context = AimContext(dict(context))  # type: ignore[arg-type]
        if self.get(("traces", aim_context.idx, name), None) is None:
            return None
        return str(self.get(("traces", aim_context.idx, name, "dtype"), "float"))


@attrs.define(eq=False)
class _SequenceRun:
    """What ``aim.sdk.sequence.Sequence`` reads of its run: the run's meta and series trees."""

    _stored: StoredRun
    _series: dict[int, Any] | None = None

    @property
    def hash(self) -> str:
        return self._stored.hash

    @property
    def meta_run_tree(self) -> Any:
        return self._stored.run_tree

    @property
    def series_run_trees(self) -> dict[int, Any]:
        if self._series is None:
            stored = self._stored
            # BaseRun.series_run_trees, on a fresh read-only tree
            series = stored._session.tree("seqs", stored.hash).subtree("seqs")
            self._series = {
                version: series.subtree(
                    ("chunks", stored.hash)
                    if version == 1
                    else (f"v{version}", "chunks", stored.hash)
                )
                for version in STEP_HASH_FUNCTIONS
            }
        return self._series


def traces_of(traces: Any) -> list[tuple[int, str, str, int]]:
    """(context index, name, Aim dtype, last step) of every sequence in a ``traces`` tree."""
    if not isinstance(traces, Mapping):
        return []
    result = []
    for ctx_id, by_name in traces.items():
        if not isinstance(by_name, Mapping):
            continue
        for name, info in by_name.items():
            if not isinstance(info, Mapping) or info.get("last_step") is None:
                continue
            result.append(
                (int(ctx_id), str(name), str(info.get("dtype", "float")), int(info["last_step"]))
            )
    return result


def meta_run_tree(run: Any) -> Any:
    """The meta tree of a run open for writing."""
    return run.meta_run_tree


def artifacts_uri_of(run: Any) -> str | None:
    """The artifacts URI a run was given (``Run.set_artifacts_uri``), None if none."""
    uri = run.meta_run_tree.get("artifacts_uri", None)
    return None if uri is None else str(uri)


@contextlib.contextmanager
def read_session(repo: Repo) -> Iterator[ReadSession]:
    session = ReadSession(repo)
    try:
        yield session
    finally:
        session.close()


# -- batches ------------------------------------------------------------------------------------

#: Points stored between two offers of the GIL to other threads (the training loop).
YIELD_EVERY: Final = 64

#: Aim versions whose storage layout the direct batch path was checked against (tests/aim/
#: test_batch_path.py writes the same data through it and through ``Run.track`` and compares).
KNOWN_VERSIONS: Final = ("3.29.",)

_direct_batches: bool | None = None


def aim_version() -> str:
    return str(importlib.metadata.version("aim"))


def direct_batches(version: str | None = None) -> bool:
    """Whether this Aim's storage is one the direct batch path knows (decided once per process).

    On another version every value goes through Aim's own per-value ``RunTracker._track`` (the
    body of ``Run.track``, given the core's timestamp), and one ``AimVersionWarning`` says so.
    """
    global _direct_batches
    if version is None and _direct_batches is not None:
        return _direct_batches
    found = aim_version() if version is None else version
    known = found.startswith(KNOWN_VERSIONS)
    if not known:
        warnings.warn(
            f"track_aim writes batches straight into the storage of Aim {', '.join(v + 'x' for v in KNOWN_VERSIONS)}; "
            f"this is Aim {found}, so each value goes through Aim's own Run.track path (slower)",
            AimVersionWarning,
            stacklevel=2,
        )
    if version is None:
        _direct_batches = known
    return known


@attrs.define
class BatchCache:
    """What ``track_batch`` keeps between the batches of one open run: the ``aim.Context`` of
    each core context, and the storage keys of each metric sequence (drop it with the run)."""

    contexts: dict[Any, Any] = attrs.field(factory=dict)
    #: ``SequenceInfo`` -> (val, epoch, time, step key prefixes, RocksDB container), or None
    #: where the sequence is not a metric stored the way the direct path knows.
    keys: dict[Any, Any] = attrs.field(factory=dict)

    def clear(self) -> None:
        self.contexts.clear()
        self.keys.clear()


def track_batch(
    run: Any, points: Sequence[Any], cache: BatchCache, convert: Callable[[Any], Any]
) -> None:
    """Aim's ``RunTracker._track`` for many values, with the core's timestamps.

    ``points`` are track_core ``TrackedPoint``s, stored as ``convert(point.value)``. Aim's
    ``run.track()`` rewrites a sequence's summary (last, last_step, max, min) in the run's meta
    tree at every value; here only the last write of each key is kept and written at the end:
    the same stored run, far fewer writes.

    In a local repository each value of a metric (an int or float sequence) is one RocksDB
    ``put`` of exactly the key and encoded value that Aim's ``TreeArrayView.__setitem__``
    writes, for ``val``, ``epoch``, ``time`` and ``step``, all in one write batch committed at
    the end of the batch, and the summary is one more write batch to the meta chunk (Aim commits
    each of these writes on its own). Aim also deletes the key's range (and its blob's) before
    each put, which clears the sub-keys an earlier value at that step left: a metric's value is
    one key with no sub-keys and no blob, so what any reader sees is the same without those
    range deletions. Other values (images, texts, distributions) are written as Aim writes them.
    To a server each batch is one message (``atomic_track``), and a metric sequence's values in it
    one ``update`` instruction per array.
    """
    tracker = run._tracker
    if not direct_batches():
        _track_per_value(run, tracker, points, cache, convert)
        return
    remote = is_remote(run.repo)
    summary = _CoalescedWrites()
    batch_tracker = _BatchTracker(tracker.sequence_infos, tracker.meta_tree, summary)
    update_sequence_info: Any = RunTracker._update_sequence_info  # called with a stand-in self
    series: _SeriesBatch | _RemoteSeries = _RemoteSeries() if remote else _SeriesBatch()
    contexts, keys_of = cache.contexts, cache.keys
    infos = tracker.sequence_infos
    with run.repo.atomic_track(run.hash):
        try:
            for index, point in enumerate(points):
                if index % YIELD_EVERY == YIELD_EVERY - 1:
                    time.sleep(0)  # let a waiting training thread have the GIL now, not in 5 ms
                aim_context = contexts.get(point.context)
                if aim_context is None:
                    aim_context = contexts[point.context] = AimContext(point.context.to_dict())
                value = convert(point.value)
                name = point.name
                ctx_id = aim_context.idx
                step = point.step
                seq_info = infos[ctx_id, name]
                if not seq_info.initialized:
                    tracker._init_sequence_info(ctx_id, name, value)
                tracker._update_context_data(aim_context)
                update_sequence_info(batch_tracker, ctx_id, name, value, step)
                if type(value) in _METRIC_TYPES:
                    keys = keys_of.get(seq_info, False)
                    if keys is False:
                        keys = keys_of[seq_info] = series.keys(seq_info)
                    if keys is not None:
                        series.put(keys, seq_info.step_hash_fn(step), value, step, point)
                        continue
                tracker._add_value(seq_info, value, step, point.epoch, point.timestamp)
        finally:
            # What was stored before a value Aim refused stays stored, as with Run.track, and
            # the summary matches it (the tracker's in-memory summary already counts it).
            series.commit()
            summary.write_to(tracker.meta_run_tree, batched=not remote)


def _track_per_value(
    run: Any, tracker: Any, points: Sequence[Any], cache: BatchCache, convert: Callable[[Any], Any]
) -> None:
    """Each value through Aim's own ``RunTracker._track`` (``Run.track``'s body)."""
    contexts = cache.contexts
    with run.repo.atomic_track(run.hash):
        for point in points:
            context = contexts.get(point.context)
            if context is None:
                context = contexts[point.context] = point.context.to_dict()
            tracker._track(
                convert(point.value),
                point.timestamp,
                point.name,
                point.step,
                point.epoch,
                context=context,
            )


#: The Python types of the values Aim stores as metrics (version-2 sequences).
_METRIC_TYPES: Final = frozenset({int, float})
# Compiled modules of Aim (and its RocksDB binding) that carry no type information.
aimrocks: Any = importlib.import_module("aimrocks")
RocksContainer: Any = importlib.import_module("aim.storage.rockscontainer").RocksContainer
_encoding: Any = importlib.import_module("aim.storage.encoding")
_encode: Final = _encoding.encode
_encode_path: Final = _encoding.encode_path


def _metric_keys(seq_info: Any) -> tuple[bytes, bytes, bytes, bytes, Any] | None:
    """The key prefixes of a metric sequence's four arrays in its series container, as Aim's
    ``TreeArrayView`` of each writes them (None if they are not laid out as Aim 3.29 does)."""
    if seq_info.version != 2 or seq_info.step_view is None:
        return None
    views = (seq_info.val_view, seq_info.epoch_view, seq_info.time_view, seq_info.step_view)
    prefixes, containers = [], set()
    for view in views:
        tree = getattr(view, "tree", None)
        if type(tree) is not ContainerTreeView or type(tree.container) is not PrefixView:
            return None
        prefixes.append(tree.container.prefix)
        containers.add(tree.container.parent)
    if len(containers) != 1:
        return None
    (container,) = containers
    if type(container) is not RocksContainer:
        return None
    return (*prefixes, container)  # type: ignore[return-value]


class _SeriesBatch:
    """One RocksDB write batch per series container, committed at the end of a batch."""

    __slots__ = ("_batches",)

    def __init__(self) -> None:
        self._batches: dict[int, tuple[Any, Any]] = {}

    keys = staticmethod(_metric_keys)

    def put(self, keys: Any, step_hash: int, value: Any, step: int, point: Any) -> None:
        val_key, epoch_key, time_key, step_key, container = keys
        entry = self._batches.get(id(container))
        if entry is None:
            entry = self._batches[id(container)] = (container, aimrocks.WriteBatch())
        put = entry[1].put
        index = _encode_path(step_hash)
        # TreeArrayView.__setitem__ -> ContainerTreeView.set -> RocksContainer.set of each
        # array, in RunTracker._add_value's order.
        put(val_key + index, _encode(value))
        put(epoch_key + index, _encode(point.epoch))
        put(time_key + index, _encode(point.timestamp))
        put(step_key + index, _encode(step))

    def commit(self) -> None:
        batches, self._batches = self._batches, {}
        for container, batch in batches.values():
            container.commit(batch)


class _RemoteSeries:
    """Metric values to an Aim server as one ``update`` instruction per array of a sequence
    (the server's ``ContainerTreeView.update`` sets each key as ``__setitem__`` does): the
    server decodes a message in time quadratic in its size, and one ``__setitem__`` per
    array and value makes messages about three times as long."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[int, tuple[Any, list[tuple[int, Any, Any, Any, int]]]] = {}

    @staticmethod
    def keys(seq_info: Any) -> tuple[Any, Any, Any, Any] | None:
        """The four arrays' trees of a metric sequence on a server (None if they are not laid
        out as Aim 3.29 does)."""
        if seq_info.version != 2 or seq_info.step_view is None:
            return None
        views = (seq_info.val_view, seq_info.epoch_view, seq_info.time_view, seq_info.step_view)
        trees = tuple(getattr(view, "tree", None) for view in views)
        if any(type(tree) is not SubtreeView or type(tree.tree) is not ProxyTree for tree in trees):
            return None
        return trees  # type: ignore[return-value]

    def put(self, keys: Any, step_hash: int, value: Any, step: int, point: Any) -> None:
        entry = self._pending.get(id(keys))
        if entry is None:
            entry = self._pending[id(keys)] = (keys, [])
        entry[1].append((step_hash, value, point.epoch, point.timestamp, step))

    def commit(self) -> None:
        pending, self._pending = self._pending, {}
        for (val, epoch, times, steps), rows in pending.values():
            # RunTracker._add_value's four arrays, in its order
            val.update((), [(row[0], row[1]) for row in rows])
            epoch.update((), [(row[0], row[2]) for row in rows])
            times.update((), [(row[0], row[3]) for row in rows])
            steps.update((), [(row[0], row[4]) for row in rows])


class _CoalescedWrites:
    """Write-only stand-in for an Aim tree: keeps the last value written to each path."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[Any, Any] = {}

    def __setitem__(self, path: Any, value: Any) -> None:
        self._pending[path] = value

    def write_to(self, tree: Any, batched: bool) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        target, commit = _batched_tree(tree) if batched else (tree, None)
        for path, value in pending.items():
            target[path] = value
        if commit is not None:
            commit()


class _SharedBatch(Container):
    """A container that puts every write of Aim's ``ContainerTreeView.set`` (its range
    deletions included) into one RocksDB write batch, committed by ``commit_all``."""

    def __init__(self, container: Any) -> None:
        self._container = container
        self._batch = aimrocks.WriteBatch()

    def batch(self) -> Any:
        return self._batch

    def commit(self, batch: Any) -> None:
        """Aim commits after each tree write; the shared batch waits for ``commit_all``."""

    def commit_all(self) -> None:
        batch, self._batch = self._batch, aimrocks.WriteBatch()
        self._container.commit(batch)

    def set(self, key: bytes, value: Any, store_batch: Any = None) -> None:
        self._container.set(key, value, store_batch=self._batch)

    def delete(self, key: bytes, store_batch: Any = None) -> None:
        self._container.delete(key, store_batch=self._batch)

    def delete_range(self, begin: bytes, end: bytes, store_batch: Any = None) -> None:
        self._container.delete_range(begin, end, store_batch=self._batch)

    def view(self, prefix: bytes = b"") -> Any:
        return PrefixView(prefix=prefix, container=self)


def _batched_tree(tree: Any) -> tuple[Any, Callable[[], None] | None]:
    """A tree writing where ``tree`` writes, with Aim's own tree code, in one write batch; and
    its commit. ``(tree, None)`` where ``tree`` is not laid out as Aim 3.29 does."""
    container = getattr(tree, "container", None)
    if type(tree) is not ContainerTreeView or type(container) is not PrefixView:
        return tree, None
    if type(container.parent) is not RocksContainer:
        return tree, None
    shared = _SharedBatch(container.parent)
    return ContainerTreeView(
        PrefixView(prefix=container.prefix, container=shared)
    ), shared.commit_all


@attrs.frozen
class _BatchTracker:
    """What Aim's ``RunTracker._update_sequence_info`` reads and writes, with the run's meta
    tree replaced by a ``_CoalescedWrites`` (that method only writes to it)."""

    sequence_infos: Any
    meta_tree: Any
    meta_run_tree: _CoalescedWrites


# -- values -------------------------------------------------------------------------------------


def aim_image(png: bytes, mode: str, width: int, height: int, caption: str | None) -> Any:
    """An ``aim.Image`` holding this PNG as it is (``aim.Image(pil)`` would re-encode it)."""
    new: Any = AimImage.__new__
    image: Any = new(AimImage)
    init: Any = CustomObject.__init__
    init(image)
    blob: Any = BLOB
    image.storage["data"] = blob(data=png)
    image.storage["source"] = "PIL.Image"
    image.storage["mode"] = mode
    image.storage["format"] = "png"
    image.storage["width"] = width
    image.storage["height"] = height
    image.storage["caption"] = caption
    return image


def image_png(stored: Any) -> bytes:
    """The PNG bytes of a stored ``aim.Image``."""
    data = stored.storage["data"]
    return bytes(data.load() if hasattr(data, "load") else data)
