"""Copy whole runs from one backend to another: ``copy_run`` / ``copy_runs`` (``track copy``).

A copy goes through the backend contract only (``Backend.read_run`` on the source,
``create_run`` / ``resume_run`` and a ``RunWriter`` on the destination), so any two backends that
pass the conformance kit can be copied between, and every point keeps its step, epoch and
timestamp. What a run holds is copied: name, description, experiment, tags, params, every
sequence (scalars, images, texts, distributions), artifacts, the archived flag, the start and
end times (where both backends keep them: ``Capability.RUN_TIMES``), and last of all the end
status and error.

The copy is tagged ``track.source=<source backend name>:<source run id>``; copying again finds
that tag and brings the copy up to date (or skips it when nothing changed) instead of making a
second one. A copy that was interrupted carries the tag ``track.copying`` and its status is not
written yet: copying again resumes it and finishes the job (writes are idempotent, so points
written twice are stored once).
"""

from __future__ import annotations

import enum
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Final, TypeVar, cast

import attrs

from track_core.backend import (
    Backend,
    Capability,
    Point,
    RunReader,
    RunSpec,
    RunWriter,
    SequenceInfo,
    TimedRunReader,
    TimedRunWriter,
    TrackedPoint,
)
from track_core.context import Context
from track_core.errors import TrackError
from track_core.status import Status
from track_core.values import Distribution, Image, Text, Value, ValueKind

__all__ = [
    "COPYING_TAG",
    "SOURCE_TAG_PREFIX",
    "CopyAction",
    "CopyError",
    "CopyProgress",
    "CopyResult",
    "NotCopied",
    "copy_run",
    "copy_runs",
    "run_differences",
    "run_times",
    "source_tag",
]

#: A copied run's tag naming the run it was copied from: ``track.source=mlflow:<run id>``.
SOURCE_TAG_PREFIX: Final = "track.source="
#: The tag of a copy that is not finished yet (copying again finishes it).
COPYING_TAG: Final = "track.copying"
#: Points per ``write_points`` call.
BATCH_SIZE: Final = 1000
#: How far apart two run times may be and still be the same (MLflow keeps milliseconds).
TIME_TOLERANCE: Final = 0.001

_KIND_CAPABILITY: Final = {
    ValueKind.IMAGE: Capability.IMAGES,
    ValueKind.TEXT: Capability.TEXTS,
    ValueKind.DISTRIBUTION: Capability.DISTRIBUTIONS,
}

T = TypeVar("T")


def source_tag(backend_name: str, run_id: str) -> str:
    """The tag a copy of run ``run_id`` of backend ``backend_name`` carries."""
    return f"{SOURCE_TAG_PREFIX}{backend_name}:{run_id}"


def _is_copy_tag(tag: str) -> bool:
    return tag.startswith(SOURCE_TAG_PREFIX) or tag == COPYING_TAG


class CopyAction(enum.Enum):
    """What ``copy_run`` did with the destination."""

    CREATED = "created"  #: no copy existed: a new run was made
    UPDATED = "updated"  #: an earlier (or interrupted) copy was brought up to date
    SKIPPED = "skipped"  #: an earlier copy was already up to date


@attrs.frozen
class NotCopied:
    """Something of the source run the destination cannot hold (nothing is dropped silently)."""

    what: str  #: e.g. ``"sequence 'loss' {'subset': 'train'}"``, ``"artifact 'model.pt'"``
    reason: str
    values: int = 0  #: how many points of a sequence were not copied (0 for the rest)


@attrs.frozen
class CopyResult:
    """One copied run."""

    source_id: str
    dest_id: str
    action: CopyAction
    points: int  #: points written (on an update, the new ones and one batch of overlap)
    sequences: int  #: sequences in the source run
    artifacts: int  #: artifacts written
    not_copied: tuple[NotCopied, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether everything of the source run is in the destination."""
        return not self.not_copied


class CopyError(TrackError):
    """Some runs could not be copied. ``results`` holds the runs that were, ``failures`` the
    error of each run that was not (by source run id); copying again finishes the job."""

    def __init__(
        self,
        message: str,
        *,
        results: Sequence[CopyResult] = (),
        failures: Mapping[str, BaseException] | None = None,
    ) -> None:
        super().__init__(message)
        self.results = list(results)
        self.failures = dict(failures or {})


# -- progress -----------------------------------------------------------------------------------


class CopyProgress:
    """A one-line progress display on stderr (runs, sequences, points); silent when disabled.

    ``enabled=None`` shows it only when the stream is a terminal."""

    def __init__(self, enabled: bool | None = None, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self._stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self._runs = 0
        self._run = 0
        self._label = ""
        self._sequences = 0
        self._sequence = 0
        self._points = 0
        self._total_points = 0
        self._started = time.monotonic()
        self._shown_at = 0.0
        self._width = 0

    def start(self, runs: int) -> None:
        self._runs = runs
        self._started = time.monotonic()

    def run(self, index: int, label: str, sequences: int) -> None:
        self._run, self._label, self._sequences, self._sequence = index, label, sequences, 0
        self._points = 0
        self._show(force=True)

    def sequence(self, index: int) -> None:
        self._sequence = index
        self._show()

    def points(self, count: int) -> None:
        self._points += count
        self._total_points += count
        self._show()

    def _show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._shown_at < 0.1:
            return
        self._shown_at = now
        elapsed = max(now - self._started, 1e-9)
        text = (
            f"copying run {self._run}/{self._runs} {self._label}: sequence "
            f"{self._sequence}/{self._sequences}, {self._points:,} points "
            f"({self._total_points / elapsed:,.0f} points/s)"
        )
        padding = " " * max(0, self._width - len(text))
        self._width = len(text)
        self._stream.write(f"\r{text}{padding}")
        self._stream.flush()

    def finish(self, summary: str) -> None:
        if not self.enabled:
            return
        padding = " " * max(0, self._width - len(summary))
        self._stream.write(f"\r{summary}{padding}\n")
        self._stream.flush()
        self._width = 0


# -- helpers ------------------------------------------------------------------------------------


def _backend(spec: str | Backend) -> tuple[Backend, bool]:
    """The backend, and whether this module made it (and must close it)."""
    if isinstance(spec, str):
        from track_core.discovery import get_backend

        return get_backend(spec), True
    return spec, False


def _retrying(call: Callable[[], T], attempts: int, delay: float) -> T:
    """``call()``, tried again after a failure (every RunWriter method is idempotent). Bad
    input (ValueError / TypeError) and permanent errors are not retried."""
    from track_core import backend as contract

    permanent: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError)
    permanent_error = getattr(contract, "PermanentWriteError", None)
    if isinstance(permanent_error, type):
        permanent = (*permanent, permanent_error)
    for attempt in range(attempts):
        try:
            return call()
        except permanent:
            raise
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(delay * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def run_times(backend: Backend, reader: RunReader) -> tuple[float | None, float | None]:
    """A stored run's start and end times, where ``backend`` keeps them (else None, None)."""
    if Capability.RUN_TIMES not in backend.capabilities:
        return None, None
    timed = cast(TimedRunReader, reader)
    return timed.created_at, timed.ended_at


def _same_time(a: float | None, b: float | None, tolerance: float = TIME_TOLERANCE) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tolerance


def _describe(name: str, context: Context) -> str:
    return f"sequence {name!r} {context.to_dict()}" if context else f"sequence {name!r}"


def _sequence_problem(dest: Backend, info: SequenceInfo) -> str | None:
    capability = _KIND_CAPABILITY.get(info.kind)
    if capability is not None and capability not in dest.capabilities:
        return f"the {dest.name} backend does not store {info.kind.value}s"
    try:
        dest.check_sequence(info.name, Context.of(info.context), info.kind)
    except (ValueError, TypeError) as error:
        return str(error)
    return None


def _up_to_date(
    reader: RunReader,
    copy: RunReader,
    dest: Backend,
    tags: frozenset[str],
    ended_at: float | None,
) -> bool:
    """Whether ``copy`` holds everything of ``reader`` (without reading any point); ``ended_at``
    is the source run's end time (None where the source does not keep it)."""
    if COPYING_TAG in copy.tags or copy.status is not reader.status or copy.error != reader.error:
        return False
    if ended_at is not None and Capability.RUN_TIMES in dest.capabilities:
        if not _same_time(run_times(dest, copy)[1], ended_at):
            return False
    if frozenset(copy.tags) != tags or dict(copy.params) != dict(reader.params):
        return False
    for attribute in ("name", "description"):
        value = getattr(reader, attribute)
        if value is not None and getattr(copy, attribute) != value:
            return False
    if Capability.ARCHIVE in dest.capabilities and copy.archived != reader.archived:
        return False
    copied = {(info.name, Context.of(info.context)): info.last_step for info in copy.sequences()}
    for info in reader.sequences():
        key = (info.name, Context.of(info.context))
        if key in copied:
            if copied[key] != info.last_step:
                return False
        elif _sequence_problem(dest, info) is None and info.last_step >= 0:
            return False
    if Capability.ARTIFACTS in dest.capabilities:
        if not set(reader.artifacts()) <= set(copy.artifacts()):
            return False
    return True


class _CopyIndex:
    """The destination's copies by their source tag (read once per ``copy_runs``)."""

    def __init__(self, dest: Backend) -> None:
        self._dest = dest
        self._by_tag: dict[str, str] | None = None

    def find(self, tag: str) -> str | None:
        if self._by_tag is None:
            self._by_tag = {}
            for info in self._dest.list_runs():
                try:
                    tags = self._dest.read_run(info.id).tags
                except KeyError:  # deleted meanwhile
                    continue
                for each in tags:
                    if each.startswith(SOURCE_TAG_PREFIX):
                        self._by_tag.setdefault(each, info.id)
        return self._by_tag.get(tag)

    def add(self, tag: str, run_id: str) -> None:
        if self._by_tag is not None:
            self._by_tag[tag] = run_id


# -- copying ------------------------------------------------------------------------------------


class _Batch:
    """Points waiting for one ``write_points`` call (``batch_size`` of them at most)."""

    def __init__(self, writer: RunWriter, copier: _RunCopier) -> None:
        self._writer = writer
        self._copier = copier
        self._points: list[TrackedPoint] = []
        self.written = 0

    def add(self, point: TrackedPoint) -> None:
        self._points.append(point)
        if len(self._points) >= self._copier.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self._points:
            return
        chunk, self._points = self._points, []
        self._copier.write(lambda: self._writer.write_points(chunk))
        self.written += len(chunk)
        self._copier.progress.points(len(chunk))


@attrs.define
class _RunCopier:
    source: Backend
    dest: Backend
    index: _CopyIndex
    progress: CopyProgress
    batch_size: int
    attempts: int
    retry_delay: float

    def write(self, call: Callable[[], T]) -> T:
        return _retrying(call, self.attempts, self.retry_delay)

    def copy(self, run_id: str, position: int) -> CopyResult:
        reader = self.source.read_run(run_id)
        tag = source_tag(self.source.name, reader.id)
        tags = frozenset(t for t in reader.tags if not _is_copy_tag(t)) | {tag}
        sequences = list(reader.sequences())
        self.progress.run(position, reader.name or reader.id, len(sequences))
        existing = self.index.find(tag)
        created_at, ended_at = run_times(self.source, reader)
        done: dict[tuple[str, Context], int] = {}
        present: set[str] = set()
        if existing is None:
            spec = RunSpec(
                reader.experiment,
                reader.name,
                reader.description,
                tags | {COPYING_TAG},
                created_at=created_at,
            )
            writer = self.write(lambda: self.dest.create_run(spec))
            self.index.add(tag, writer.id)
            action = CopyAction.CREATED
        else:
            copy = self.dest.read_run(existing)
            if _up_to_date(reader, copy, self.dest, tags, ended_at):
                return CopyResult(reader.id, existing, CopyAction.SKIPPED, 0, len(sequences), 0)
            if Capability.RESUME not in self.dest.capabilities:
                raise CopyError(
                    f"run {existing} of {self.dest.location} is an unfinished or outdated copy "
                    f"of run {reader.id}, and the {self.dest.name} backend cannot resume runs "
                    "to finish it: delete it and copy again"
                )
            present = (
                set(copy.artifacts()) if Capability.ARTIFACTS in self.dest.capabilities else set()
            )
            writer = self.write(lambda: self.dest.resume_run(existing))
            done = {(i.name, Context.of(i.context)): i.last_step for i in writer.sequences()}
            self.write(lambda: writer.set_tags(tags | {COPYING_TAG}))
            if reader.name is not None:
                self.write(lambda: writer.set_name(reader.name))  # type: ignore[arg-type]
            if reader.description is not None:
                self.write(lambda: writer.set_description(reader.description))  # type: ignore[arg-type]
            action = CopyAction.UPDATED
        try:
            return self._fill(reader, writer, action, sequences, done, present, tags, ended_at)
        except BaseException:
            # Release the destination run; its status stays unwritten (RUNNING, or what the
            # backend shows for a run closed early) and the COPYING tag marks it unfinished.
            try:
                writer.close(Status.RUNNING, None)
            except Exception:
                pass
            raise

    def _fill(
        self,
        reader: RunReader,
        writer: RunWriter,
        action: CopyAction,
        sequences: list[SequenceInfo],
        done: Mapping[tuple[str, Context], int],
        present: set[str],
        tags: frozenset[str],
        ended_at: float | None,
    ) -> CopyResult:
        not_copied: list[NotCopied] = []
        if Capability.RUN_TIMES in self.source.capabilities:
            if Capability.RUN_TIMES not in self.dest.capabilities:
                not_copied.append(
                    NotCopied(
                        "the start and end times",
                        f"the {self.dest.name} backend keeps the times of its own calls",
                    )
                )
        params = dict(reader.params)
        if params:
            self.write(lambda: writer.set_params(params))
        batch = _Batch(writer, self)
        for number, info in enumerate(sequences, 1):
            self.progress.sequence(number)
            context = Context.of(info.context)
            problem = _sequence_problem(self.dest, info)
            points = reader.points(info.name, context)
            if problem is not None:
                not_copied.append(NotCopied(_describe(info.name, context), problem, len(points)))
                continue
            start = 0
            last = done.get((info.name, context))
            if last is not None:
                # Everything up to the copy's last step is there, but the last write may have
                # been cut short (a backend may store a batch in several requests, in any
                # order): one batch before it is written again.
                start = next((i for i, p in enumerate(points) if p.step > last), len(points))
                start = max(0, start - self.batch_size)
            self._write_sequence(batch, info, context, points[start:], not_copied)
        batch.flush()
        artifacts = self._artifacts(reader, writer, present, not_copied)
        if reader.archived or action is CopyAction.UPDATED:
            if Capability.ARCHIVE in self.dest.capabilities:
                archived = reader.archived
                self.write(lambda: writer.set_archived(archived))
            elif reader.archived:
                not_copied.append(
                    NotCopied("the archived flag", f"the {self.dest.name} backend cannot archive")
                )
        self.write(lambda: writer.set_tags(tags))
        status, error = reader.status, reader.error
        if (
            ended_at is not None
            and status is not Status.RUNNING
            and Capability.RUN_TIMES in self.dest.capabilities
        ):
            timed = cast(TimedRunWriter, writer)
            self.write(lambda: timed.close(status, error, ended_at=ended_at))
        else:
            self.write(lambda: writer.close(status, error))
        return CopyResult(
            reader.id,
            writer.id,
            action,
            batch.written,
            len(sequences),
            artifacts,
            tuple(not_copied),
        )

    def _write_sequence(
        self,
        batch: _Batch,
        info: SequenceInfo,
        context: Context,
        points: Sequence[Point],
        not_copied: list[NotCopied],
    ) -> None:
        """Add a sequence's points to ``batch`` (written whenever it is full): a batch holds
        the points of several short sequences, so that there are few, full write calls."""
        name, kind = info.name, info.kind
        rejected: list[str] = []
        for point in points:
            if kind is not ValueKind.SCALAR:
                try:
                    self.dest.check_value(point.value)
                except (ValueError, TypeError) as error:
                    rejected.append(str(error))
                    continue
            batch.add(
                TrackedPoint(
                    name, context, kind, point.step, point.epoch, point.timestamp, point.value
                )
            )
        if rejected:
            not_copied.append(NotCopied(_describe(name, context), rejected[0], len(rejected)))

    def _artifacts(
        self, reader: RunReader, writer: RunWriter, present: set[str], not_copied: list[NotCopied]
    ) -> int:
        names = [name for name in reader.artifacts() if name not in present]
        if not names:
            return 0
        if Capability.ARTIFACTS not in self.dest.capabilities:
            for name in names:
                not_copied.append(
                    NotCopied(
                        f"artifact {name!r}", f"the {self.dest.name} backend stores no artifacts"
                    )
                )
            return 0
        with tempfile.TemporaryDirectory(prefix="track-copy-") as directory:
            for number, name in enumerate(names):
                folder = Path(directory, str(number))
                folder.mkdir()
                path = folder / (os.path.basename(name.rstrip("/")) or "artifact")
                path.write_bytes(reader.artifact_bytes(name))
                self.write(lambda: writer.log_artifact(str(path), name))  # noqa: B023
                path.unlink()
        return len(names)


def copy_runs(
    source: str | Backend,
    dest: str | Backend,
    experiment: str | None = None,
    run_ids: Iterable[str] | None = None,
    *,
    progress: bool | None = None,
    batch_size: int = BATCH_SIZE,
    attempts: int = 4,
    retry_delay: float = 0.5,
) -> list[CopyResult]:
    """Copy runs from ``source`` to ``dest`` (backend strings or Backend objects).

    ``run_ids`` copies those runs (in that order); otherwise every run of ``source`` (of
    ``experiment`` when given). A run copied before is brought up to date, or skipped when it is;
    see the module's documentation. ``progress`` shows a progress line on stderr (``None``: when
    stderr is a terminal). A destination write that fails is tried ``attempts`` times in all.

    Raises ``CopyError`` after trying every run if some could not be copied (its ``results`` hold
    the others); ``KeyError`` for a run id that ``source`` does not have is one of those errors.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a positive int, got {attempts!r}")
    source_backend, close_source = _backend(source)
    try:
        dest_backend, close_dest = _backend(dest)
    except BaseException:
        if close_source:
            source_backend.close()
        raise
    try:
        if source_backend is dest_backend or (
            source_backend.name == dest_backend.name
            and source_backend.location == dest_backend.location
        ):
            raise ValueError(
                f"the source and the destination are the same store ({dest_backend.location}): "
                "a run is copied to another backend (or another location of the same one)"
            )
        if run_ids is None:
            ids = [info.id for info in source_backend.list_runs(experiment)]
        else:
            ids = list(dict.fromkeys(run_ids))
            if isinstance(run_ids, str) or not all(isinstance(i, str) for i in ids):
                raise TypeError("run_ids must be an iterable of run id strings")
        meter = CopyProgress(progress)
        meter.start(len(ids))
        copier = _RunCopier(
            source_backend,
            dest_backend,
            _CopyIndex(dest_backend),
            meter,
            batch_size,
            attempts,
            retry_delay,
        )
        results: list[CopyResult] = []
        failures: dict[str, BaseException] = {}
        for position, run_id in enumerate(ids, 1):
            try:
                results.append(copier.copy(run_id, position))
            except Exception as error:
                failures[run_id] = error
        counts = {action: sum(r.action is action for r in results) for action in CopyAction}
        meter.finish(
            f"copied {len(ids)} run(s): {counts[CopyAction.CREATED]} created, "
            f"{counts[CopyAction.UPDATED]} updated, {counts[CopyAction.SKIPPED]} up to date, "
            f"{len(failures)} failed; {sum(r.points for r in results):,} points"
        )
        if failures:
            listing = "; ".join(f"{run_id}: {error}" for run_id, error in failures.items())
            raise CopyError(
                f"{len(failures)} of {len(ids)} run(s) not copied from {source_backend.location} "
                f"to {dest_backend.location} ({listing}); copying again finishes the job",
                results=results,
                failures=failures,
            )
        return results
    finally:
        if close_source:
            source_backend.close()
        if close_dest:
            dest_backend.close()


def copy_run(
    run_id: str,
    source: str | Backend,
    dest: str | Backend,
    *,
    progress: bool | None = False,
    batch_size: int = BATCH_SIZE,
    attempts: int = 4,
    retry_delay: float = 0.5,
) -> CopyResult:
    """Copy one run from ``source`` to ``dest`` (see ``copy_runs``) and say what was done.

    Raises ``KeyError`` if ``source`` has no run ``run_id``, and what the destination raised if
    the copy could not be finished (copying again finishes it)."""
    if not isinstance(run_id, str):
        raise TypeError(f"run_id must be a str, got {type(run_id).__name__}")
    try:
        (result,) = copy_runs(
            source,
            dest,
            run_ids=[run_id],
            progress=progress,
            batch_size=batch_size,
            attempts=attempts,
            retry_delay=retry_delay,
        )
    except CopyError as error:
        if run_id in error.failures:
            raise error.failures[run_id] from None
        raise
    return result


# -- comparing ----------------------------------------------------------------------------------


def _same_value(a: Value, b: Value) -> bool:
    if isinstance(a, Image) or isinstance(b, Image):
        return (
            isinstance(a, Image)
            and isinstance(b, Image)
            and (a.width, a.height, a.caption) == (b.width, b.height, b.caption)
            and a.pixels() == b.pixels()
        )
    if isinstance(a, Text) or isinstance(b, Text):
        return a == b
    if isinstance(a, Distribution) or isinstance(b, Distribution):
        if not (isinstance(a, Distribution) and isinstance(b, Distribution)):
            return False
        return (
            a.counts == b.counts
            and all(
                math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
                for x, y in zip(a.bin_edges, b.bin_edges, strict=False)
            )
            and len(a.bin_edges) == len(b.bin_edges)
        )
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b)


def run_differences(
    original: RunReader,
    copy: RunReader,
    *,
    timestamp_tolerance: float = 0.0,
    check_status: bool = True,
    check_archived: bool = True,
    check_times: bool = True,
) -> list[str]:
    """What differs between two stored runs, as readable lines (empty when they are equal).

    Tags of copies (``track.source=...``) are left out, as are a name or description the original
    lacks (a backend may give runs a name of its own). ``timestamp_tolerance`` allows for a
    backend that keeps timestamps less precisely (MLflow keeps milliseconds: 0.0005). The start
    and end times (``check_times``) are compared where both readers give them
    (``TimedRunReader``), to the millisecond."""
    found: list[str] = []

    def differ(what: str, a: object, b: object) -> None:
        if a != b:
            found.append(f"{what}: {a!r} != {b!r}")

    differ("experiment", original.experiment, copy.experiment)
    if original.name is not None:
        differ("name", original.name, copy.name)
    if original.description is not None:
        differ("description", original.description, copy.description)
    differ(
        "tags",
        sorted(t for t in original.tags if not _is_copy_tag(t)),
        sorted(t for t in copy.tags if not _is_copy_tag(t)),
    )
    differ("params", dict(original.params), dict(copy.params))
    if check_status:
        differ("status", original.status, copy.status)
        differ("error", original.error, copy.error)
    if check_archived:
        differ("archived", original.archived, copy.archived)
    if check_times:
        tolerance = max(timestamp_tolerance, TIME_TOLERANCE)
        for attribute in ("created_at", "ended_at"):
            if hasattr(original, attribute) and hasattr(copy, attribute):
                a, b = getattr(original, attribute), getattr(copy, attribute)
                if not _same_time(a, b, tolerance):
                    found.append(f"{attribute}: {a!r} != {b!r}")
    ours = {(i.name, Context.of(i.context)): i for i in original.sequences()}
    theirs = {(i.name, Context.of(i.context)): i for i in copy.sequences()}
    differ(
        "sequences",
        sorted((n, sorted(c.to_dict().items(), key=str)) for n, c in ours),
        sorted((n, sorted(c.to_dict().items(), key=str)) for n, c in theirs),
    )
    for key in sorted(ours.keys() & theirs.keys(), key=str):
        name, context = key
        what = _describe(name, context)
        differ(f"{what} kind", ours[key].kind, theirs[key].kind)
        a_points, b_points = original.points(name, context), copy.points(name, context)
        if len(a_points) != len(b_points):
            found.append(f"{what}: {len(a_points)} points != {len(b_points)} points")
            continue
        for a, b in zip(a_points, b_points, strict=True):
            if (a.step, a.epoch) != (b.step, b.epoch):
                found.append(
                    f"{what} step {a.step}: (step, epoch) {(a.step, a.epoch)} != {(b.step, b.epoch)}"
                )
                break
            if abs(a.timestamp - b.timestamp) > timestamp_tolerance:
                found.append(f"{what} step {a.step}: timestamp {a.timestamp!r} != {b.timestamp!r}")
                break
            if not _same_value(a.value, b.value):
                found.append(f"{what} step {a.step}: value {a.value!r} != {b.value!r}")
                break
    differ("artifacts", sorted(original.artifacts()), sorted(copy.artifacts()))
    for name in sorted(set(original.artifacts()) & set(copy.artifacts())):
        if original.artifact_bytes(name) != copy.artifact_bytes(name):
            found.append(f"artifact {name!r}: the bytes differ")
    return found
