"""The functions users call: start a run, open one for reading, replay a spool."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from track_core import discovery
from track_core._deferred import (
    DeferredRunWriter,
    created_id,
    marker_of,
    new_own_id,
    spec_from_meta,
    spec_to_meta,
)
from track_core._fanout import SEPARATOR, MultiRun, split_backend_strings
from track_core._names import check_description, check_label, check_tags
from track_core._run import TrackedRun
from track_core._spool import (
    DAMAGED_SUFFIX,
    SPOOL_SUFFIX,
    Spool,
    SpoolHeader,
    default_spool_dir,
    keep_damaged,
    read_spool,
)
from track_core._views import RunView
from track_core._writer import (
    BackgroundWriter,
    Operation,
    WriterOptions,
    apply_items,
    is_transient,
)
from track_core.backend import Backend, Capability, RunSpec, RunWriter, batch_size_of
from track_core.discovery import DISABLED, RUN_OPTIONS, BackendString, get_backend
from track_core.distributed import is_main_process
from track_core.errors import BackendUnavailableWarning, TrackWarning
from track_core.noop import NoOpRun
from track_core.protocols import Run
from track_core.redaction import redact_text, register_backend_secrets
from track_core.status import Status


def _run_options(parsed: BackendString | None, given: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    if parsed is not None:
        for key in RUN_OPTIONS:
            if key in parsed.options:
                merged[key] = parsed.options[key]
    merged.update({key: value for key, value in given.items() if value is not None})
    if "run_name" in merged:
        merged.setdefault("name", merged.pop("run_name"))
    if "resume" in merged:
        merged.setdefault("run_id", merged.pop("resume"))
    return merged


def _tags(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return check_tags(tag.strip() for tag in value.split(",") if tag.strip())
    return check_tags(value)


#: A backend string without credentials: see ``track_core.redaction.redact_text``.
redact = redact_text


def start_run(
    backend: str | Backend | Sequence[str | Backend] | None = None,
    *,
    experiment: str | None = None,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | str | None = None,
    run_id: str | None = None,
    enabled: bool | None = None,
    writer: WriterOptions | None = None,
    system_metrics: bool | float | None = None,
    **backend_options: Any,
) -> Run:
    """Start a run (or resume ``run_id``) on a backend and return it.

    ``system_metrics``: True samples CPU, memory, disk, network and GPUs into the run every
    ``track_core.system_metrics.DEFAULT_INTERVAL`` seconds, a number every that many seconds,
    from a thread of its own (None: the backend string's ``system_metrics=`` option, else
    ``$TRACK_SYSTEM_METRICS``; off by default).

    ``backend`` is a backend string (``"aim"``, ``"mlflow:sqlite:///mlflow.db"``, ...), a Backend
    object, or None for ``$TRACK_BACKEND``; a list of them (or one string joining them with
    ``|``) writes the run to each (``track_core._fanout``). ``enabled=None`` tracks on the main process only
    (rank 0); other ranks, ``enabled=False`` and the backend string ``"none"`` get a no-op run.
    Extra keyword arguments go to the backend's factory.
    """
    if enabled is None:
        enabled = is_main_process()
    if backend is None:
        backend = discovery.default_backend_string()
    if not enabled or (isinstance(backend, str) and backend.strip().lower() in DISABLED):
        return NoOpRun()
    if isinstance(backend, str) and SEPARATOR in backend:
        backend = split_backend_strings(backend)
    if isinstance(backend, (list, tuple)):
        return _start_multi(
            backend,
            writer,
            backend_options,
            system_metrics=system_metrics,
            experiment=experiment,
            name=name,
            description=description,
            tags=tags,
            run_id=run_id,
        )
    spec_text = backend if isinstance(backend, str) else None
    parsed = BackendString.parse(spec_text) if spec_text is not None else None
    options = _run_options(
        parsed,
        {
            "experiment": experiment,
            "name": name,
            "description": description,
            "tags": tags,
            "run_id": run_id,
            "system_metrics": system_metrics,
        },
    )
    source: tuple[str, dict[str, Any]] | None = None
    if isinstance(backend, str) or backend is None:
        assert spec_text is not None
        register_backend_secrets(spec_text, backend_options)  # never printed nor stored
        store = get_backend(spec_text, **backend_options)
        origin = redact(spec_text.partition("?")[0])
        source = (spec_text, backend_options)
    else:
        if backend_options:
            raise TypeError(
                f"backend options {sorted(backend_options)} need a backend string, not a Backend object"
            )
        assert not isinstance(backend, (list, tuple))
        store = backend  # type: ignore[assignment]
        origin = f"{store.name}:{store.location}"
    interval = _system_metrics_interval(options.get("system_metrics"))  # checked first
    run = _start(store, origin, options, writer or WriterOptions(), source)
    if interval is not None:
        from track_core.system_metrics import start_sampler  # psutil, NVML: only when asked

        run.system_metrics = start_sampler(run, interval)
    return run


def _system_metrics_interval(setting: object) -> float | None:
    """Seconds between samples, or None for off, from an argument, an option or the
    environment: true/on/yes/1 (the default interval), a number of seconds, false/off/no/0."""
    if setting is None:
        setting = os.environ.get("TRACK_SYSTEM_METRICS", "")
    if isinstance(setting, bool):
        enabled, seconds = setting, None
    elif isinstance(setting, (int, float)):
        enabled, seconds = setting > 0, float(setting)
    else:
        text = str(setting).strip().lower()
        if text in ("", "0", "false", "off", "no"):
            return None
        if text in ("1", "true", "on", "yes"):
            enabled, seconds = True, None
        else:
            try:
                enabled, seconds = True, float(text)
            except ValueError:
                raise ValueError(
                    f"system_metrics must be true, false or a number of seconds "
                    f"(TRACK_SYSTEM_METRICS), got {setting!r}"
                ) from None
    if not enabled:
        return None
    from track_core.system_metrics import DEFAULT_INTERVAL, check_interval

    return check_interval(DEFAULT_INTERVAL if seconds is None else seconds)


def _start_multi(
    backends: Sequence[str | Backend],
    writer: WriterOptions | None,
    backend_options: dict[str, Any],
    *,
    run_id: str | None,
    system_metrics: bool | float | None,
    **options: Any,
) -> Run:
    if not backends:
        raise ValueError("start_run() got an empty list of backends")
    if len(backends) == 1:
        return start_run(
            backends[0],
            run_id=run_id,
            writer=writer,
            enabled=True,
            system_metrics=system_metrics,
            **options,
        )
    if backend_options:
        raise TypeError(
            f"backend options {sorted(backend_options)} are ambiguous with several backends: "
            "put them in each backend string (e.g. 'mlflow:http://h:5000?key=value')"
        )
    ids: list[str | None] = [None] * len(backends)
    if run_id is not None:
        ids = list(str(run_id).split(SEPARATOR))
        if len(ids) != len(backends):
            raise ValueError(
                f"run_id {run_id!r} names {len(ids)} run(s) for {len(backends)} backends: "
                "resume with the id of a run started on the same backends, in the same order"
            )
    runs: list[TrackedRun] = []
    try:
        for backend, one_id in zip(backends, ids, strict=True):
            run = start_run(
                backend,
                run_id=one_id,
                writer=writer,
                enabled=True,
                system_metrics=system_metrics,  # each backend's sampler, in its native names
                **options,
            )
            assert isinstance(run, TrackedRun)
            runs.append(run)
    except BaseException:
        for started in runs:  # nothing half-started is left open
            started.close(Status.FAILED, "another backend of this run could not start")
        raise
    origins = [
        redact(b.partition("?")[0]) if isinstance(b, str) else f"{b.name}:{b.location}"
        for b in backends
    ]
    return MultiRun(runs, origins)


def _writer_source(
    backend: Backend, writer_options: WriterOptions, source: tuple[str, dict[str, Any]] | None
) -> tuple[str, dict[str, Any]] | None:
    """The backend string and options a writer process is made from (None: write in a thread)."""
    if writer_options.process == "off" or writer_options.synchronous:
        return None
    if source is None:
        reason: str | None = "it was given a Backend object; pass a backend string instead"
    elif Capability.WRITER_PROCESS not in backend.capabilities:
        reason = f"the {backend.name} backend does not declare Capability.WRITER_PROCESS"
    else:
        from track_core._writer_process import can_run_in_process  # subprocess, sockets: lazily

        reason = can_run_in_process(source[1])
    if reason is None:
        return source
    if writer_options.process == "on":
        warnings.warn(
            f"track: the run's writes stay in a thread of this process: {reason}",
            TrackWarning,
            stacklevel=4,
        )
    return None


def _start(
    backend: Backend,
    origin: str,
    options: dict[str, Any],
    writer_options: WriterOptions,
    source: tuple[str, dict[str, Any]] | None = None,
) -> TrackedRun:
    experiment = options.get("experiment")
    name = options.get("name")
    description = options.get("description")
    tag_set = _tags(options.get("tags"))
    if experiment is not None:
        check_label(experiment, "an experiment name")
    if name is not None:
        check_label(name, "a run name")
    if description is not None:
        check_description(description)
    run_id = options.get("run_id")
    batch_size = batch_size_of(backend)  # a bad declaration fails before a run exists
    in_process = _writer_source(backend, writer_options, source)
    if in_process is not None:
        from track_core._writer_process import ProcessRunWriter
    target: RunWriter
    if run_id is not None:
        if Capability.RESUME not in backend.capabilities:
            raise TypeError(f"the {backend.name} backend cannot resume runs")
        if in_process is not None:
            target = ProcessRunWriter(*in_process, str(run_id))
        else:
            target = backend.resume_run(str(run_id))
        stored = backend.read_run(target.id)
        params = dict(stored.params)
        experiment = stored.experiment
        name = name or stored.name
        description = description if description is not None else stored.description
        tag_set = stored.tags | tag_set
        archived = Capability.ARCHIVE in backend.capabilities and stored.archived
    meta: dict[str, Any] = {}
    if run_id is None:
        spec = RunSpec(experiment, name, description, tag_set)
        try:
            if in_process is not None:
                target = ProcessRunWriter(*in_process, spec)
            else:
                target = backend.create_run(spec)
        except Exception as error:
            if not (writer_options.start_offline and is_transient(error)):
                raise
            target = _start_offline(backend, spec, error)
            meta = {"create": spec_to_meta(spec)}
        params = {}
        archived = False
    spool_path = _spool_path(backend, target.id)
    if isinstance(target, DeferredRunWriter):
        target.marker = marker_of(spool_path)
    spool = Spool(spool_path, SpoolHeader(origin, target.id, meta=meta))
    describe = f"the {backend.name} backend at {backend.location}"
    background = BackgroundWriter(target, spool, writer_options, batch_size, describe)
    run = TrackedRun(
        backend,
        background,
        target.id,
        experiment=experiment,
        name=name,
        description=description,
        tags=tag_set,
        params=params,
        sequences=target.sequences() if run_id is not None else (),  # a new run holds none
        archived=archived,
    )
    if run_id is not None:
        if name is not None and name != stored.name:
            run.set_name(name)
        if description is not None and description != stored.description:
            run.set_description(description)
        if tag_set != stored.tags:
            background.put(Operation("set_tags", (tag_set,)))
    return run


def _spool_path(backend: Backend, run_id: str) -> Path:
    # one file per process: a run resumed by two processes never shares a spool
    return default_spool_dir() / f"{backend.name}-{run_id}-{os.getpid()}{SPOOL_SUFFIX}"


def _start_offline(backend: Backend, spec: RunSpec, error: BaseException) -> DeferredRunWriter:
    """A run whose backend is unreachable now: it gets track's own id and is created on the
    backend by its first write that goes through (``track_core._deferred``)."""
    own_id = new_own_id()
    warnings.warn(
        BackendUnavailableWarning(
            f"track: the {backend.name} backend at {backend.location} cannot be reached "
            f"({error}); the run starts anyway as {own_id}: everything is kept in the spool "
            "and the run is created there, in order, as soon as it is back (its own id is "
            "then run.backend_id). To fail instead, pass "
            "writer=WriterOptions(start_offline=False) or set TRACK_START_OFFLINE=0."
        ),
        stacklevel=4,
    )
    return DeferredRunWriter(lambda: backend.create_run(spec), own_id)


def open_run(run_id: str, backend: str | Backend | None = None, **backend_options: Any) -> RunView:
    """Open a stored run for reading."""
    store = (
        backend
        if not isinstance(backend, (str, type(None)))
        else get_backend(backend, **backend_options)
    )
    return RunView(store.read_run(run_id))


def replay(path: str | os.PathLike[str], backend: str | Backend | None = None) -> int:
    """Write a spool file (left by a run whose backend was down) to its backend, then delete it.

    Returns the number of items written. ``backend`` overrides the one named in the file (to add
    credentials, say). A damaged file's intact items are all written; what was lost is reported
    by a ``SpoolDamagedWarning`` (its attributes hold the numbers), and the file is kept as
    ``PATH.damaged`` instead of deleted. A file whose header is damaged, or that is not a spool,
    raises ``SpoolFormatError`` and is left as it is. Replaying the same file again (after a
    replay was killed, say) stores nothing twice: backends keep one point per sequence and step.
    """
    spool_path = Path(path)
    header, frames = read_spool(spool_path)
    store = backend if isinstance(backend, Backend) else get_backend(backend or header.backend)
    target = _replay_target(store, header, spool_path)
    written = 0
    for frame in frames:
        apply_items(target, frame)
        written += len(frame)
    # Only now, with every intact item stored, does the file go (or, damaged, move aside).
    if frames.damage:
        kept = keep_damaged(spool_path)
        warnings.warn(frames.damage.warning(kept, written), stacklevel=2)
    else:
        spool_path.unlink()
    marker_of(spool_path).unlink(missing_ok=True)
    return written


def _replay_target(store: Backend, header: SpoolHeader, spool_path: Path) -> RunWriter:
    """The run a spool file's items go to: the one it names, or, for a run that started while
    its backend was unreachable, the run created for it (once, whatever the replays)."""
    create = header.meta.get("create")
    if create is None:
        return store.resume_run(header.run_id)
    existing = created_id(spool_path)
    if existing is not None:
        return store.resume_run(existing)
    spec = spec_from_meta(create)
    deferred = DeferredRunWriter(lambda: store.create_run(spec), header.run_id)
    deferred.marker = marker_of(spool_path)
    return deferred


def pending_spools(
    directory: str | os.PathLike[str] | None = None, *, damaged: bool = False
) -> list[Path]:
    """Spool files waiting to be replayed (``damaged=True``: also those kept as damaged)."""
    folder = Path(directory) if directory is not None else default_spool_dir()
    if not folder.is_dir():
        return []
    found = set(folder.glob(f"*{SPOOL_SUFFIX}"))
    if damaged:
        found.update(folder.glob(f"*{SPOOL_SUFFIX}{DAMAGED_SUFFIX}*"))
    return sorted(found)
