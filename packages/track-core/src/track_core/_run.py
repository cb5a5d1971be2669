"""The run users track into: validation on the caller's thread, storage on the writer's."""

from __future__ import annotations

import copy
import math
import numbers
import operator
import os
import shutil
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from track_core import _lifecycle as lifecycle
from track_core._deferred import DeferredRunWriter, marker_of
from track_core._names import check_description, check_label, check_sequence_name
from track_core._views import SequenceView, find_sequence, sequence_views
from track_core._writer import BackgroundWriter, Operation
from track_core.backend import Backend, Capability, SequenceInfo
from track_core.context import EMPTY_CONTEXT, Context, ContextLike, ContextValue
from track_core.errors import (
    CapabilityError,
    NonFiniteValueWarning,
    RunClosedError,
    SequenceKindError,
)
from track_core.params import Param, check_param_key, to_params
from track_core.redaction import redact_param_strings, redact_text
from track_core.status import Status, status_on_exit
from track_core.values import ValueKind, coerce_value

_SCALAR = ValueKind.SCALAR
_RUNNING = Status.RUNNING
_INF = math.inf
_NEG_INF = -math.inf
_now = time.time
_context_of = Context.of
_CAPABILITY_OF_KIND = {
    ValueKind.IMAGE: Capability.IMAGES,
    ValueKind.TEXT: Capability.TEXTS,
    ValueKind.DISTRIBUTION: Capability.DISTRIBUTIONS,
}


class _SequenceState:
    __slots__ = ("index", "kind", "next_step", "warned_non_finite")

    def __init__(self, index: int, kind: ValueKind, next_step: int) -> None:
        self.index = index  # the sequence's index in the writer's point tuples
        self.kind = kind
        self.next_step = next_step
        self.warned_non_finite = False


#: The largest step or epoch: every backend stores them as signed 64-bit integers.
MAX_STEP = 2**63 - 1
#: Integer scalars are stored exactly within the signed 64-bit range; others are refused.
_MAX_INT = 2**63 - 1
_MIN_INT = -(2**63)


def check_step(value: object, what: str) -> int:
    """A step or epoch: an int in ``0..MAX_STEP``."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__}: {value!r}") from None
    if number < 0:
        raise ValueError(f"{what} must be >= 0, got {number}")
    if number > MAX_STEP:
        raise ValueError(
            f"{what} must be at most 2**63-1 ({MAX_STEP}), the largest step every backend can "
            f"store; got {number}"
        )
    return number


def _check_int_value(value: int) -> int:
    if _MIN_INT <= value <= _MAX_INT:
        return value
    raise ValueError(
        f"the int {value} is outside the signed 64-bit range that backends store exactly; "
        f"track float({value}) to store it approximately"
    )


def check_timestamp(value: object) -> float:
    """A point's wall time: seconds since the epoch, finite and positive."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"timestamp must be seconds since the epoch (a float such as time.time()), got "
            f"{type(value).__name__}: {value!r}"
        )
    stamp = float(value)
    if not (0.0 < stamp < _INF):
        raise ValueError(
            f"timestamp must be a finite number of seconds since the epoch, > 0; got {value!r}"
        )
    return stamp


def _artifact_name(name: str) -> str:
    check_label(name, "an artifact name")
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"an artifact name must be a relative path without '..': {name!r}")
    return name


def _kind_error(
    name: str, context: Context, held: ValueKind, given: ValueKind
) -> SequenceKindError:
    return SequenceKindError(
        f"sequence {name!r} {context.to_dict()} holds {held.value} values; "
        f"cannot track a {given.value} into it (use another name or context)"
    )


def describe_error(error: BaseException | str | None) -> str | None:
    if error is None or isinstance(error, str):
        return error
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).strip()


class TrackedRun:
    """A run open for writing. Made by ``track_core.start_run``; satisfies the Run protocol."""

    def __init__(
        self,
        backend: Backend,
        writer: BackgroundWriter,
        run_id: str,
        *,
        experiment: str | None,
        name: str | None,
        description: str | None,
        tags: frozenset[str],
        params: Mapping[str, Param],
        sequences: Sequence[SequenceInfo],
        archived: bool = False,
    ) -> None:
        self._backend = backend
        self._writer = writer
        self._id = run_id
        self._experiment = experiment
        self._name = name
        self._description = description
        self._tags = tags
        self._archived = archived
        self._params: dict[str, Param] = dict(params)
        self._status = Status.RUNNING
        #: The system-metrics sampler (``start_run(..., system_metrics=True)``), if any.
        self.system_metrics: object = None
        self._owner_pid = os.getpid()
        self._forked_from: int | None = None
        self._status_before_fork = Status.RUNNING
        self._lock = threading.Lock()
        self._append = writer.append
        self._queue = writer.queue
        self._room_at = writer.room_at
        self._sequences: dict[tuple[str, Context], _SequenceState] = {
            (info.name, info.context): _SequenceState(
                writer.add_sequence(info.name, info.context, info.kind),
                info.kind,
                info.last_step + 1,
            )
            for info in sequences
        }
        # The same states by (name, the items of a dict context of strings), for track()
        self._by_text_items: dict[
            tuple[str, tuple[tuple[str, ContextValue], ...]], tuple[Context, _SequenceState]
        ] = {}
        self._also_checked: tuple[Backend, ...] = ()
        self._refused_by: dict[ValueKind, str] = {}
        capabilities = backend.capabilities
        self._accepts = {
            ValueKind.SCALAR: True,
            ValueKind.IMAGE: Capability.IMAGES in capabilities,
            ValueKind.TEXT: Capability.TEXTS in capabilities,
            ValueKind.DISTRIBUTION: Capability.DISTRIBUTIONS in capabilities,
        }
        lifecycle.register(self)

    # -- identity and attributes -----------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def experiment(self) -> str | None:
        return self._experiment

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def description(self) -> str | None:
        return self._description

    @property
    def tags(self) -> frozenset[str]:
        return self._tags

    @property
    def archived(self) -> bool:
        return self._archived

    @property
    def backend_id(self) -> str | None:
        """The backend's own id of the run: ``id``, except for a run started while its backend
        was unreachable (``id`` is then track's own), whose backend id is None until the
        backend is back and the run was created there."""
        target = self._writer.target
        if isinstance(target, DeferredRunWriter):
            return target.backend_id
        return self._id

    @property
    def writer_pid(self) -> int:
        """The process that makes the backend calls: this one, or a writer process
        (``WriterOptions(process=...)``)."""
        pid = getattr(self._writer.target, "pid", None)
        return pid if isinstance(pid, int) else os.getpid()

    @property
    def status(self) -> Status:
        if self._forked_from is not None:
            return self._status_before_fork
        return self._status

    @property
    def recording(self) -> bool:
        """True while the run is open in this process: what is tracked is stored."""
        return self._status is Status.RUNNING

    @property
    def closed(self) -> bool:
        return self._status is not Status.RUNNING

    @property
    def pending(self) -> int:
        """Values tracked but not yet stored by the backend."""
        return self._writer.pending

    def forget_after_fork(self) -> None:
        """In a forked child: this copy of the run must never write or close the parent's run."""
        self._forked_from = self._owner_pid
        self._status_before_fork = self._status
        self._status = Status.KILLED  # the hot path's one check fails, and says why below
        self._lock = threading.Lock()  # the parent's may have been held at the fork

    def _check_open(self) -> None:
        if self._forked_from is not None:
            raise RunClosedError(
                f"run {self._id} belongs to process {self._forked_from}; this process is a "
                f"fork of it and cannot write to it: start a run of its own with "
                f"track_core.start_run(...)"
            )
        if self._status is not Status.RUNNING:
            raise RunClosedError(
                f"run {self._id} is closed ({self._status.value}); resume it with "
                f"start_run(..., run_id={self._id!r}) to append"
            )

    def set_name(self, name: str) -> None:
        check_label(name, "a run name")
        with self._lock:
            self._check_open()
            self._name = name
            self._writer.put(Operation("set_name", (name,)))

    def set_description(self, description: str) -> None:
        check_description(description)
        description = redact_text(description)
        with self._lock:
            self._check_open()
            self._description = description
            self._writer.put(Operation("set_description", (description,)))

    def add_tag(self, tag: str) -> None:
        check_label(tag, "a tag")
        with self._lock:
            self._check_open()
            self._tags = self._tags | {tag}
            self._writer.put(Operation("set_tags", (self._tags,)))

    def remove_tag(self, tag: str) -> None:
        with self._lock:
            self._check_open()
            self._tags = self._tags - {tag}
            self._writer.put(Operation("set_tags", (self._tags,)))

    def set_archived(self, archived: bool = True) -> None:
        self._require_archive(archived)
        with self._lock:
            self._check_open()
            self._archived = archived
            self._writer.put(Operation("set_archived", (archived,)))

    # -- params ----------------------------------------------------------------------------
    @property
    def params(self) -> Mapping[str, Param]:
        with self._lock:
            return copy.deepcopy(self._params)

    def __getitem__(self, key: str) -> Param:
        with self._lock:
            return copy.deepcopy(self._params[key])

    def __setitem__(self, key: str, value: object) -> None:
        check_param_key(key)
        data = redact_param_strings(to_params(value, key))  # no credentialed URL stored
        with self._lock:
            self._check_open()
            self._params[key] = data
            self._writer.put(Operation("set_params", ({key: copy.deepcopy(data)},)))

    # -- sequences -------------------------------------------------------------------------
    def track(
        self,
        value: object,
        name: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        context: ContextLike = None,
        timestamp: float | None = None,
    ) -> None:
        """Append a value to the sequence ``(name, context)``; see the Run protocol. A dict of
        values (``name`` omitted) tracks each key as its own sequence, at one step and context."""
        cls = type(value)
        if cls is float:
            kind = _SCALAR
            non_finite = value - value  # type: ignore[operator]  # 0.0 unless NaN or ±inf
        elif cls is int:
            kind = _SCALAR
            non_finite = False
            if not _MIN_INT <= value <= _MAX_INT:  # type: ignore[operator]
                value = _check_int_value(value)  # type: ignore[arg-type]  # raises
        elif name is None and isinstance(value, Mapping):
            self._track_many(value, step, epoch, context, timestamp)
            return
        else:
            value, kind, non_finite = self._coerce(value)
        if name is None:
            raise TypeError(
                "track() needs a name for a single value: run.track(value, 'loss'); "
                "or pass a dict of values: run.track({'loss': 0.1, 'acc': 0.9})"
            )
        if epoch is not None and (type(epoch) is not int or not 0 <= epoch <= MAX_STEP):
            epoch = check_step(epoch, "epoch")
        if timestamp is None:
            timestamp = _now()
        elif type(timestamp) is not float or not 0.0 < timestamp < _INF:
            timestamp = check_timestamp(timestamp)
        lock = self._lock
        lock.acquire()  # cheaper than ``with`` on this path
        try:
            if self._status is not _RUNNING:
                self._check_open()
            state: _SequenceState | None
            if type(context) is dict:
                try:  # the common case: a dict of strings seen before, one lookup
                    context, state = self._by_text_items[name, tuple(context.items())]
                except (KeyError, TypeError):
                    context, state = self._sequence_of_dict(name, context, kind)  # type: ignore[arg-type]
            else:
                if context is None:
                    context = EMPTY_CONTEXT
                elif type(context) is not Context:
                    context = _context_of(context)
                state = self._sequences.get((name, context))
                if state is None:
                    state = self._new_sequence(name, context, kind)
            if state.kind is not kind:
                raise _kind_error(name, context, state.kind, kind)
            if non_finite:
                self._warn_non_finite(state, name, context, value)  # type: ignore[arg-type]
            if step is None:
                step = state.next_step
            elif type(step) is not int or not 0 <= step <= MAX_STEP:
                step = check_step(step, "step")
            if step >= state.next_step:
                state.next_step = step + 1
            self._append((state.index, step, epoch, timestamp, value))
        finally:
            lock.release()
        if len(self._queue) >= self._room_at:
            self._room_at = self._writer.make_room()

    def _coerce(self, value: object) -> tuple[object, ValueKind, bool]:
        value, kind = coerce_value(value)
        if kind is _SCALAR:
            if type(value) is int:
                value = _check_int_value(value)
            non_finite = isinstance(value, float) and not math.isfinite(value)
        else:
            non_finite = False
            self._check_non_scalar(value, kind)
        return value, kind, non_finite

    def _track_many(
        self,
        values: Mapping[object, object],
        step: int | None,
        epoch: int | None,
        context: ContextLike,
        timestamp: float | None,
    ) -> None:
        """``track({name: value, ...})``: validated as one call; nothing is queued if any
        value is refused."""
        if not values:
            return
        prepared = []
        for name, value in values.items():
            if not isinstance(name, str):
                raise TypeError(
                    f"the keys of a dict of values are sequence names (str), got "
                    f"{type(name).__name__}: {name!r}"
                )
            try:
                coerced, kind, non_finite = self._coerce(value)
            except (TypeError, ValueError) as error:
                raise type(error)(f"{name!r}: {error}") from None
            prepared.append((name, coerced, kind, non_finite))
        if step is not None:
            step = check_step(step, "step")
        if epoch is not None:
            epoch = check_step(epoch, "epoch")
        stamp = _now() if timestamp is None else check_timestamp(timestamp)
        if type(context) is not Context:
            context = EMPTY_CONTEXT if context is None else _context_of(context)
        with self._lock:
            self._check_open()
            states = []
            for name, _, kind, _ in prepared:
                state = self._sequences.get((name, context))
                if state is None:
                    check_sequence_name(name)
                    self._check_sequence(name, context, kind)
                elif state.kind is not kind:
                    raise _kind_error(name, context, state.kind, kind)
                states.append(state)
            for (name, value, kind, non_finite), state in zip(prepared, states, strict=True):
                if state is None:
                    state = self._new_sequence(name, context, kind)
                if non_finite:
                    self._warn_non_finite(state, name, context, value)  # type: ignore[arg-type]
                at = state.next_step if step is None else step
                if at >= state.next_step:
                    state.next_step = at + 1
                self._append((state.index, at, epoch, stamp, value))
        if len(self._queue) >= self._room_at:
            self._room_at = self._writer.make_room()

    def _sequence_of_dict(
        self, name: str, items: dict[str, ContextValue], kind: ValueKind
    ) -> tuple[Context, _SequenceState]:
        context = _context_of(items)
        state = self._sequences.get((name, context))
        if state is None:
            state = self._new_sequence(name, context, kind)
        if not context._numeric:  # 1, 1.0 and True are equal as dict items, not as contexts
            self._by_text_items[name, tuple(items.items())] = (context, state)
        return context, state

    def _check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        if not self._accepts[kind]:
            refused_by = self._refused_by.get(kind, self._backend.name)
            raise CapabilityError(
                f"the {refused_by} backend cannot store {kind.value} values (sequence {name!r})",
                backend=refused_by,
                capability=_CAPABILITY_OF_KIND[kind],
            )
        self._backend.check_sequence(name, context, kind)
        for other in self._also_checked:
            other.check_sequence(name, context, kind)

    def validate_for(self, others: Sequence[Backend]) -> None:
        """Validate every call for these backends too (a run written to several backends at
        once: a value one of them cannot hold is refused at the call, for all)."""
        self._also_checked = tuple(others)
        for other in others:
            for kind, capability in _CAPABILITY_OF_KIND.items():
                if capability not in other.capabilities:
                    self._accepts[kind] = False
                    self._refused_by[kind] = other.name

    def _new_sequence(self, name: str, context: Context, kind: ValueKind) -> _SequenceState:
        check_sequence_name(name)
        self._check_sequence(name, context, kind)
        state = _SequenceState(self._writer.add_sequence(name, context, kind), kind, 0)
        self._sequences[(name, context)] = state
        return state

    def _check_non_scalar(self, value: object, kind: ValueKind) -> None:
        if not self._accepts[kind]:
            refused_by = self._refused_by.get(kind, self._backend.name)
            raise CapabilityError(
                f"the {refused_by} backend cannot store {kind.value} values",
                backend=refused_by,
                capability=_CAPABILITY_OF_KIND[kind],
            )
        self._backend.check_value(value)  # type: ignore[arg-type]
        for other in self._also_checked:
            other.check_value(value)  # type: ignore[arg-type]

    def _warn_non_finite(
        self, state: _SequenceState, name: str, context: Context, value: float
    ) -> None:
        if state.warned_non_finite:
            return
        state.warned_non_finite = True
        warnings.warn(
            f"track: {name!r} {context.to_dict()} got {value}; it is stored as it is "
            "(warned once per sequence)",
            NonFiniteValueWarning,
            stacklevel=3,
        )

    def sequences(self) -> list[SequenceView]:
        """The run's sequences as stored (flushes first)."""
        self.flush()
        return sequence_views(self._backend.read_run(self._id))

    def sequence(self, name: str, context: ContextLike = None) -> SequenceView:
        self.flush()
        return find_sequence(self._backend.read_run(self._id), name, context)

    # -- artifacts -------------------------------------------------------------------------
    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Store a local file with the run under ``name`` (default: the file name).

        The file is copied at the call (next to the run's spool), so it may be changed or
        deleted at once; the copy is removed once the backend has stored it."""
        self._require_artifacts()
        local = Path(path)
        if not local.is_file():
            what = "a directory, not a file: use log_artifacts()" if local.is_dir() else "not found"
            raise FileNotFoundError(f"cannot log artifact {str(local)!r}: {what}")
        artifact_name = _artifact_name(name if name is not None else local.name)
        self._stage_and_queue([(local, artifact_name)])

    def log_artifacts(self, directory: str | os.PathLike[str], prefix: str | None = None) -> None:
        """Store every file under ``directory`` with the run, keeping the tree: ``a/b.txt``
        becomes ``prefix/a/b.txt`` (or ``a/b.txt`` without a prefix)."""
        self._require_artifacts()
        root = Path(directory)
        if not root.is_dir():
            what = "a file, not a directory: use log_artifact()" if root.is_file() else "not found"
            raise NotADirectoryError(f"cannot log artifacts of {str(root)!r}: {what}")
        if prefix is not None:
            prefix = _artifact_name(prefix).strip("/")
        files = []
        for file in sorted(root.rglob("*")):
            if file.is_file():
                relative = file.relative_to(root).as_posix()
                files.append((file, _artifact_name(f"{prefix}/{relative}" if prefix else relative)))
        self._stage_and_queue(files)

    def _require_archive(self, archived: object) -> None:
        if not isinstance(archived, bool):
            raise TypeError(f"archived must be True or False, got {archived!r}")
        if Capability.ARCHIVE not in self._backend.capabilities:
            raise CapabilityError(
                f"the {self._backend.name} backend cannot archive runs (it does not declare "
                "Capability.ARCHIVE)",
                backend=self._backend.name,
                capability=Capability.ARCHIVE,
            )

    def _require_artifacts(self) -> None:
        if Capability.ARTIFACTS not in self._backend.capabilities:
            raise CapabilityError(
                f"the {self._backend.name} backend cannot store artifacts",
                backend=self._backend.name,
                capability=Capability.ARTIFACTS,
            )

    def _stage_and_queue(self, files: list[tuple[Path, str]]) -> None:
        with self._lock:
            self._check_open()
        staged = []
        for local, artifact_name in files:
            copy_path = self._staging / uuid.uuid4().hex / Path(artifact_name).name
            copy_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, copy_path)
            staged.append((str(copy_path), artifact_name))
        with self._lock:
            self._check_open()
            for copy_path_text, artifact_name in staged:
                self._writer.put(Operation("log_artifact", (copy_path_text, artifact_name)))

    @property
    def _staging(self) -> Path:
        """Where copies of logged files wait for the writer: next to the run's spool file."""
        spool = self._writer.spool_path
        return spool.with_name(spool.stem + ".artifacts")

    # -- ending ----------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        return self._writer.flush(timeout)

    def close(
        self,
        status: Status = Status.FINISHED,
        error: BaseException | str | None = None,
        timeout: float | None = None,
    ) -> None:
        """End the run with ``status``; idempotent. Waits at most ``timeout`` seconds (default:
        the writer's close_timeout) for the backend; what it did not take stays in the spool."""
        if not isinstance(status, Status) or status is Status.RUNNING:
            raise ValueError(f"close() takes FINISHED, FAILED or KILLED, got {status!r}")
        if self._forked_from is not None:
            return  # the parent's run: only the parent ends it
        sampler = self.system_metrics
        if sampler is not None and self._status is Status.RUNNING:
            sampler.stop(1.0)  # type: ignore[attr-defined]  # its last sample goes in first
        with lifecycle.held_unless_interrupted(self._lock):
            if self._status is not Status.RUNNING:
                return
            self._status = status
        lifecycle.unregister(self)
        stored = self._writer.close(Operation("close", (status, describe_error(error))), timeout)
        if stored:  # otherwise the spool still names the copies (and the created run)
            shutil.rmtree(self._staging, ignore_errors=True)
            marker_of(self._writer.spool_path).unlink(missing_ok=True)

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(status_on_exit(exc), exc)

    def __repr__(self) -> str:
        return (
            f"TrackedRun(id={self._id!r}, backend={self._backend.location!r}, "
            f"name={self._name!r}, status={self._status.value})"
        )
