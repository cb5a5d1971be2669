"""The background writer: the training thread appends, a writer thread stores in batches.

- ``put`` costs about a list append; a full buffer makes it wait (back-pressure, never drops).
- The writer thread hands the backend ordered batches every ``flush_interval`` (sooner when a
  batch is ready).
- When a backend call raises, that batch and everything after it go to a durable spool on disk,
  in order; the writer retries with back-off and replays the spool when the backend is back.
- ``close`` waits a bounded time; whatever is still not stored is left in the spool, and a
  warning says where and how to replay it.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from collections.abc import Sequence as SequenceABC
from pathlib import Path
from typing import Any, overload

import attrs

from track_core import _lifecycle as lifecycle
from track_core._spool import Spool
from track_core.backend import RunWriter, TrackedPoint
from track_core.context import Context
from track_core.errors import (
    BackendUnavailableWarning,
    BackPressureWarning,
    DataNotWrittenWarning,
    PermanentWriteError,
    RejectedItemWarning,
    TransientWriteError,
)
from track_core.values import ValueKind


@attrs.frozen
class Operation:
    """A queued call of a RunWriter method other than ``write_points``."""

    method: str
    args: tuple[Any, ...]


_PROCESS_WORDS = {"0": "off", "false": "off", "1": "on", "true": "on", "": "off"}


def _process_word(value: object) -> str:
    text = str(value).strip().lower()
    return _PROCESS_WORDS.get(text, text)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@attrs.frozen
class WriterOptions:
    """How the background writer behaves. Every field has an environment variable."""

    #: Write on the caller's thread and raise backend errors there (for debugging).
    synchronous: bool = attrs.field(factory=lambda: os.environ.get("TRACK_SYNCHRONOUS", "") == "1")
    #: Items kept in memory before ``track()`` waits.
    max_buffered: int = attrs.field(factory=lambda: int(_env_float("TRACK_MAX_BUFFERED", 100_000)))
    #: Seconds between writes when values trickle in.
    flush_interval: float = attrs.field(factory=lambda: _env_float("TRACK_FLUSH_INTERVAL", 0.2))
    #: Most seconds ``close()`` (and interpreter exit) wait for the backend.
    close_timeout: float = attrs.field(factory=lambda: _env_float("TRACK_CLOSE_TIMEOUT", 15.0))
    #: Where the backend's calls run: ``"off"``, in a thread of this process; ``"on"``, in a child
    #: process (the backend's SDK then never holds this process's GIL; where that cannot be
    #: done a warning says why and a thread is used); ``"auto"``, a child process where it can be
    #: done, silently a thread elsewhere. ``$TRACK_WRITER_PROCESS``.
    process: str = attrs.field(
        factory=lambda: os.environ.get("TRACK_WRITER_PROCESS", "off"),
        converter=_process_word,
    )
    #: First and longest wait between retries of a failing backend.
    retry_initial: float = 0.25
    retry_max: float = 5.0
    #: A run whose backend cannot be reached at ``start_run`` starts anyway, with an id of
    #: track's own, and is created on the backend when it is back (``track_core._deferred``).
    #: False: ``start_run`` raises instead. ``$TRACK_START_OFFLINE`` (``0`` to fail fast).
    start_offline: bool = attrs.field(
        factory=lambda: (
            os.environ.get("TRACK_START_OFFLINE", "1").strip().lower()
            not in ("0", "false", "off", "no")
        )
    )
    #: For tests and debugging: ``flush()`` and ``close()`` raise the first backend error (with
    #: its own traceback) at once instead of waiting while the writer retries. The conformance
    #: kit runs with it, so a backend's bug fails a test where it happened.
    raise_errors: bool = False
    #: Failures of one batch, with its storage answering, before the batch is treated as
    #: permanently refused (its items isolated; the refused ones go to a dead-letter file).
    #: ``$TRACK_MAX_ATTEMPTS``.
    max_attempts: int = attrs.field(factory=lambda: int(_env_float("TRACK_MAX_ATTEMPTS", 3)))

    @process.validator
    def _check_process(self, attribute: object, value: str) -> None:
        if value not in ("off", "on", "auto"):
            raise ValueError(
                f"process must be 'off', 'on' or 'auto' (TRACK_WRITER_PROCESS), got {value!r}"
            )

    @max_buffered.validator
    def _check_buffer(self, attribute: object, value: int) -> None:
        if value < 1:
            raise ValueError(f"max_buffered must be at least 1, got {value}")

    @max_attempts.validator
    def _check_attempts(self, attribute: object, value: int) -> None:
        if value < 1:
            raise ValueError(f"max_attempts must be at least 1, got {value}")


#: The ``track`` logger: the writer's events ("failed", "is back", "refused") go there too.
logger = logging.getLogger("track")

#: OSError numbers that mean "storage is away or full for now", not "this item is bad".
_TRANSIENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EBUSY, errno.EIO, errno.ENETDOWN}
)


def is_transient(error: BaseException) -> bool:
    """Whether an error of a RunWriter means its storage is away (retry until it is back)."""
    if isinstance(error, (TransientWriteError, ConnectionError, TimeoutError)):
        return True
    return isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS


#: A dead-letter file sits next to the run's spool file: ``<backend>-<run id>.dead-letter``.
DEAD_LETTER_SUFFIX = ".dead-letter"

#: Full batches queued before the caller wakes the writer thread.
WAKE_AFTER_BATCHES = 4


_new_tuple = tuple.__new__

#: A sequence's identity as a TrackedPoint starts with it: ``(name, context, kind)``.
SequenceIdentity = tuple[str, Context, ValueKind]


class PointBatch(SequenceABC[TrackedPoint]):
    """The points of a batch, as ``write_points`` gets them: a read-only sequence that makes each
    ``TrackedPoint`` when it is read, from a queued point tuple and its sequence's identity.

    Queued point tuples hold only numbers, None and the value, so Python's garbage collector
    stops tracking them at its first pass over them; points made on reading die young. Neither
    adds to the objects that full collections walk, which a queue of TrackedPoints (each with its
    Context) did: in a process as big as one that imports MLflow, that was 5-10% of MLflow's
    write time (benchmarks/bench_writer.py)."""

    __slots__ = ("_items", "_sequences")

    def __init__(self, items: list[tuple[Any, ...]], sequences: list[SequenceIdentity]) -> None:
        self._items = items
        self._sequences = sequences

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> TrackedPoint: ...
    @overload
    def __getitem__(self, index: slice) -> PointBatch: ...
    def __getitem__(self, index: int | slice) -> TrackedPoint | PointBatch:
        if isinstance(index, slice):
            return PointBatch(self._items[index], self._sequences)
        return _make_point(self._items[index], self._sequences)

    def __iter__(self) -> Iterator[TrackedPoint]:
        sequences = self._sequences
        return (_make_point(item, sequences) for item in self._items)

    def __repr__(self) -> str:
        return f"PointBatch({list(self)!r})"


def _make_point(item: tuple[Any, ...], sequences: list[SequenceIdentity]) -> TrackedPoint:
    sequence, step, epoch, timestamp, value = item
    return _new_tuple(TrackedPoint, (*sequences[sequence], step, epoch, timestamp, value))


class BackgroundWriter:
    """Moves one run's items from the caller to its RunWriter. Items are point tuples
    ``(sequence, step, epoch, timestamp, value)``, where ``sequence`` is the index that
    ``add_sequence`` gave the sequence's identity, or ``Operation`` objects. The spool keeps
    points whole (``TrackedPoint`` fields as a tuple), so a spool file needs nothing else."""

    def __init__(
        self,
        target: RunWriter,
        spool: Spool,
        options: WriterOptions,
        batch_size: int,
        describe: str,
    ) -> None:
        self._target = target
        self._spool = spool
        self._options = options
        self._describe = describe
        self._max_buffered = max(options.max_buffered, 1)
        self._batch_size = min(batch_size, self._max_buffered)
        self._queue: deque[Any] = deque()
        #: Sequence identities by index; appended by the caller before the first point of each.
        self._sequences: list[SequenceIdentity] = []
        #: The caller's side, for the hot path: ``append(item)``, then, once
        #: ``len(queue) >= room_at``, ``room_at = make_room()`` (``put`` does both).
        #: Synchronous writers apply at once. The caller wakes the writer every
        #: ``WAKE_AFTER_BATCHES`` batches (``flush_interval`` wakes it too): a writer woken by a
        #: thread that is tracking fast waits for the GIL, so the wake-ups are kept few.
        self.queue = self._queue
        self._wake_every = WAKE_AFTER_BATCHES * self._batch_size
        self.room_at = min(self._max_buffered, self._wake_every)
        self.append = self._apply_one if options.synchronous else self._queue.append
        self._lock = threading.Lock()  # guards the spool, in-flight batch and counters below
        self._progress = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._closing = False
        # Every item put is in exactly one place: the queue, the in-flight batch, the spool, or
        # counted in _handled (stored in the backend, in order).
        self._handled = 0
        self._in_flight: list[Any] = []
        self._down_since: float | None = None
        self._next_retry = 0.0
        self._retry_delay = options.retry_initial
        self._last_error: BaseException | None = None
        #: Failures of the current head batch with the storage answering (see max_attempts).
        self._strikes = 0
        self._dead_letter: Spool | None = None
        #: Leading frames of the spool file already stored by an unfinished replay.
        self._frames_done = 0
        self.refused = 0
        self._warned_pressure = False
        self._thread: threading.Thread | None = None
        if not options.synchronous:
            self._thread = threading.Thread(
                target=self._loop, name=f"track-writer-{target.id}", daemon=True
            )
            self._thread.start()

    # -- the caller's side -----------------------------------------------------------------
    def add_sequence(self, name: str, context: Context, kind: ValueKind) -> int:
        """The index that point tuples of the sequence ``(name, context, kind)`` carry."""
        self._sequences.append((name, context, kind))
        return len(self._sequences) - 1

    def put(self, item: Any) -> None:
        """Queue one item. The caller holds the run's lock, so order is the caller's order."""
        self.append(item)
        if len(self._queue) >= self.room_at:
            self.room_at = self.make_room()

    def _apply_one(self, item: Any) -> None:
        self._apply([item])

    def make_room(self) -> int:
        """Called once ``room_at`` items are queued: wakes the writer, and waits while the
        buffer is full (back-pressure). Returns the queue length at which to call it again (at
        most ``max_buffered``, so back-pressure is never skipped). Not under the run's lock,
        so other threads can still close the run."""
        if not self._wake.is_set():
            self._wake.set()
        if len(self._queue) >= self._max_buffered:
            self._wait_for_room()
        return min(self._max_buffered, len(self._queue) + self._wake_every)

    def _wait_for_room(self) -> None:
        if not self._warned_pressure:
            self._warned_pressure = True
            warnings.warn(
                f"track: {self._options.max_buffered} values are waiting for {self._describe}; "
                "track() now waits for it to catch up (raise TRACK_MAX_BUFFERED to buffer more)",
                BackPressureWarning,
                stacklevel=4,
            )
        self._wake.set()
        with self._progress:
            while len(self._queue) >= self._options.max_buffered and self._thread_alive():
                self._progress.wait(0.05)

    @property
    def spool_path(self) -> Path:
        """The run's spool file (it exists only while something waits in it)."""
        return self._spool.path

    @property
    def target(self) -> RunWriter:
        """The RunWriter the items go to."""
        return self._target

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pending(self) -> int:
        """Items tracked but not yet stored in the backend (queued, in flight or spooled)."""
        if self._options.synchronous:
            return 0
        with self._lock:
            return self._unhandled()

    def _unhandled(self) -> int:
        """Items put but not yet stored; the caller holds ``_lock``."""
        return len(self._queue) + len(self._in_flight) + self._spool.items

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is in the backend."""
        if self._options.synchronous:
            return True
        with lifecycle.held_unless_interrupted(self._lock):  # close() in a SIGTERM handler
            target = self._handled + self._unhandled()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._progress:
            while self._handled < target:
                if self._options.raise_errors and self._last_error is not None:
                    raise self._last_error
                if not self._thread_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(0.05 if remaining is None else min(0.05, remaining))
                self._wake.set()
        return True

    def close(self, final: Operation, timeout: float | None = None) -> bool:
        """Queue the final operation and wait (bounded) until everything is stored.

        Returns True when the backend took everything; otherwise what is left is in the spool.
        """
        if self._options.synchronous:
            self._apply([final])
            return True
        self.put(final)
        self._closing = True
        wait = self._options.close_timeout if timeout is None else timeout
        if self.flush(wait):
            self._wake.set()
            if self._thread is not None:
                self._thread.join(1.0)
            return True
        left = self._spool_everything()
        message = (
            f"track: {self._describe} did not take {left} item(s) within {wait:.0f} s "
            f"({self._last_error!r}); they are kept in {self._spool.path}. The writer keeps "
            f"retrying while this process lives; to write them later run: "
            f"python -m track_core replay {self._spool.path}"
        )
        logger.warning(message)
        warnings.warn(
            DataNotWrittenWarning(message, spool=self._spool.path, items=left), stacklevel=3
        )
        return False

    def _spool_everything(self) -> int:
        with self._lock:
            items = list(self._in_flight)
            while True:
                try:
                    items.append(self._queue.popleft())
                except IndexError:
                    break
            self._in_flight = []
            if items:
                self._spool_items(items)
                self._enter_down_mode()
            return self._unhandled()

    # -- the writer thread -----------------------------------------------------------------
    def _loop(self) -> None:
        interval = self._options.flush_interval
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception as error:  # never let the writer thread die silently
                self._note_failure(error)
            with self._progress:
                self._progress.notify_all()
            if self._closing and not self._queue and not self._spool.exists():
                return

    def _drain(self) -> None:
        while True:
            if self._down_since is not None:
                self._drain_to_spool()
                if time.monotonic() >= self._next_retry:
                    self._replay_spool()
                if self._down_since is not None:
                    return
            batch = self._take_batch()
            if not batch:
                return
            try:
                self._store(batch, self._sequences)
            except Exception as error:
                with self._lock:
                    if self._in_flight:
                        self._spool_items(self._in_flight)
                        self._in_flight = []
                self._note_failure(error)
                self._enter_down_mode()
                continue
            with self._lock:
                self._in_flight = []
                self._handled += len(batch)
            with self._progress:
                self._progress.notify_all()

    def _take_batch(self) -> list[Any]:
        batch: list[Any] = []
        queue = self._queue
        with self._lock:
            while len(batch) < self._batch_size:
                try:
                    batch.append(queue.popleft())
                except IndexError:
                    break
            self._in_flight = batch
        return batch

    def _drain_to_spool(self) -> None:
        with self._lock:
            items = []
            while True:
                try:
                    items.append(self._queue.popleft())
                except IndexError:
                    break
            self._spool_items(items)
        with self._progress:
            self._progress.notify_all()

    def _spool_items(self, items: list[Any]) -> None:
        """Append items to the spool with their points whole; the caller holds ``_lock``."""
        sequences = self._sequences
        self._spool.append(
            [
                item if type(item) is not tuple else tuple(_make_point(item, sequences))
                for item in items
            ]
        )

    def _enter_down_mode(self) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._retry_delay = self._options.retry_initial
        self._next_retry = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self._options.retry_max)

    def _replay_spool(self) -> None:
        replayed = 0
        frames = self._spool.frames()  # damaged frames are skipped; frames.damage says so
        try:
            for index, frame in enumerate(frames):
                if index < self._frames_done:
                    continue  # stored by an earlier attempt: its refused items are not retried
                self._store(frame, None)  # spooled points are whole
                self._frames_done = index + 1
                replayed += len(frame)
        except Exception as error:
            self._note_failure(error)
            self._enter_down_mode()
            return
        with self._lock:
            if self._spool.appends != frames.appends:
                return  # close() spooled more meanwhile: the next pass stores it too
            self._handled += self._spool.items
            kept = self._spool.finish(frames.damage)  # a damaged file is kept, renamed
            self._frames_done = 0
            self._down_since = None
        if frames.damage:
            warnings.warn(frames.damage.warning(kept, replayed), stacklevel=2)
        message = (
            f"track: {self._describe} is back; {replayed} spooled item(s) were written in order"
        )
        logger.info(message)
        warnings.warn(message, BackendUnavailableWarning, stacklevel=2)

    def _note_failure(self, error: BaseException) -> None:
        first = self._last_error is None or self._down_since is None
        self._last_error = error
        if first:
            message = (
                f"track: writing to {self._describe} failed ({error!r}); training goes on, "
                f"values are kept in {self._spool.path} and retried until it is back"
            )
            logger.warning(message, exc_info=error)
            warnings.warn(message, BackendUnavailableWarning, stacklevel=2)

    def _apply(self, items: Iterable[Any]) -> None:
        apply_items(self._target, items, self._sequences)

    # -- items a backend refuses -----------------------------------------------------------
    def _store(self, items: list[Any], sequences: list[SequenceIdentity] | None) -> None:
        """Hand items to the backend in order. Raises when they should be retried later (the
        storage is away, or a batch failed fewer than ``max_attempts`` times); a batch refused
        for good is isolated: every other item is stored, the refused ones dead-lettered."""
        try:
            apply_items(self._target, items, sequences)
        except Exception as error:
            if not self._counts_against_batch(error):
                raise
            self._strikes += 1
            if not isinstance(error, PermanentWriteError) and (
                self._strikes < self._options.max_attempts
            ):
                raise
            self._strikes = 0
            self._isolate(items, sequences, error)
        else:
            self._strikes = 0

    def _counts_against_batch(self, error: BaseException) -> bool:
        """True when the error is about what was written, not about the storage being away:
        a PermanentWriteError, or an unknown error after which the storage still answers."""
        if isinstance(error, PermanentWriteError):
            return True
        if is_transient(error):
            return False
        try:
            self._target.sequences()
        except Exception:
            return False
        return True

    def _isolate(
        self, items: list[Any], sequences: list[SequenceIdentity] | None, error: BaseException
    ) -> None:
        """Store what can be stored of a refused batch, in order, by halves; refuse single
        items that fail with an error that counts against them. Raises when the storage goes
        away meanwhile (the caller spools the batch: writes are idempotent)."""
        if len(items) == 1:
            self._refuse(items[0], sequences, error)
            return
        middle = len(items) // 2
        for half in (items[:middle], items[middle:]):
            try:
                apply_items(self._target, half, sequences)
            except Exception as failure:
                if not self._counts_against_batch(failure):
                    raise
                self._isolate(half, sequences, failure)

    def _refuse(
        self, item: Any, sequences: list[SequenceIdentity] | None, error: BaseException
    ) -> None:
        whole = item
        if type(item) is tuple and sequences is not None:
            whole = tuple(_make_point(item, sequences))
        if self._dead_letter is None:
            header = attrs.evolve(self._spool.header, kind="dead-letter")
            self._dead_letter = Spool(
                self._spool.path.with_name(self._spool.path.stem + DEAD_LETTER_SUFFIX), header
            )
        self._dead_letter.append([whole])
        self.refused += 1
        reason = f"{type(error).__name__}: {error}"
        if type(whole) is tuple:
            name, context, _, step = whole[0], whole[1], whole[2], whole[3]
            what = f"the point {name!r} {context.to_dict()} at step {step}"
            operation = "write_points"
        else:
            name = context = step = None
            what = f"{whole.method}{whole.args!r}"
            operation = whole.method
        message = (
            f"track: {self._describe} refused {what} ({reason}); every other item is stored. "
            f"It is kept in {self._dead_letter.path}: after fixing the cause, run "
            f"python -m track_core replay {self._dead_letter.path}"
        )
        logger.error(message, exc_info=error)
        warnings.warn(
            RejectedItemWarning(
                message,
                operation=operation,
                reason=reason,
                dead_letter=self._dead_letter.path,
                sequence=name,
                context=context,
                step=step,
            ),
            stacklevel=2,
        )


def apply_items(
    target: RunWriter, items: Iterable[Any], sequences: list[SequenceIdentity] | None = None
) -> None:
    """Hand items to a RunWriter in order: runs of points as one write_points call. Point
    tuples are queued ones, resolved through ``sequences``, or (``sequences=None``) whole ones
    from a spool."""
    points: list[tuple[Any, ...]] = []
    for item in items:
        if type(item) is tuple:
            points.append(item)
            continue
        if points:
            target.write_points(_batch(points, sequences))
            points = []
        getattr(target, item.method)(*item.args)
    if points:
        target.write_points(_batch(points, sequences))


def _batch(
    points: list[tuple[Any, ...]], sequences: list[SequenceIdentity] | None
) -> SequenceABC[TrackedPoint]:
    if sequences is None:
        return [_new_tuple(TrackedPoint, point) for point in points]
    return PointBatch(points, sequences)
