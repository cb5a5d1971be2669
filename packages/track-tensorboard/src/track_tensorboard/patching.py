"""Capture of the real writers: ``patch()`` makes every ``torch.utils.tensorboard.SummaryWriter``
and ``tensorboardX.SummaryWriter`` of the process (made before or after) send its calls to a track
run too. The writers still write their event files: the original method runs first, and whatever
it raises is the caller's; then the call is recorded, and nothing track does raises into the
training loop (a value it cannot record is one warning per tag, method and error).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import track_core as track
from track_core import TrackWarning
from track_tensorboard.names import Namer, NamesOption
from track_tensorboard.writer import (
    SKIP_ATTRIBUTE,
    UNSUPPORTED,
    Recorder,
    log_dir_subset,
    record_hparams,
    warn_unsupported,
)

#: The writer classes patched, where installed: (module, class name).
WRITER_CLASSES = (
    ("torch.utils.tensorboard.writer", "SummaryWriter"),
    ("tensorboardX.writer", "SummaryWriter"),
)
#: Their event-file writers: ``add_summary`` of an hparams summary (Lightning's
#: ``log_hyperparams`` writes one there, not through ``add_hparams``) records the hparams.
FILE_WRITER_CLASSES = (
    ("torch.utils.tensorboard.writer", "FileWriter"),
    ("tensorboardX.writer", "FileWriter"),
)
RECORDED = (
    "add_scalar",
    "add_scalars",
    "add_histogram",
    "add_histogram_raw",
    "add_image",
    "add_images",
    "add_figure",
    "add_text",
    "add_hparams",
)


class CaptureWarning(TrackWarning):
    """A call of a patched writer that track could not record (the event files have it)."""


_lock = threading.RLock()
_active: Patch | None = None
_local = threading.local()


def _depth() -> int:
    depth: int = getattr(_local, "depth", 0)
    return depth


def writer_log_dir(writer: Any) -> str | None:
    """A torch (``log_dir``) or tensorboardX (``logdir``) writer's log dir."""
    for attribute in ("log_dir", "logdir"):
        value = getattr(writer, attribute, None)
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
    return None


class Patch:
    """The capture in force: made by ``patch()``, ended by ``unpatch()`` or as a context manager.

    ``run`` is the run every writer records into (``per_writer=False``); ``runs`` every run of
    this capture.
    """

    def __init__(
        self,
        target: track.Run | str | None,
        run_options: dict[str, Any],
        names: NamesOption,
        per_writer: bool,
    ) -> None:
        self._names = names
        self._per_writer = per_writer
        self._options = run_options
        self._backend = target if isinstance(target, str) else None
        self._shared: track.Run | None = None
        self._owned: list[track.Run] = []
        self._recorders: weakref.WeakKeyDictionary[Any, Recorder | None] = (
            weakref.WeakKeyDictionary()
        )
        self._originals: list[tuple[type, str, Any]] = []
        self._warned: set[tuple[str, str, str]] = set()
        self._unsupported_warned: set[str] = set()
        self.classes: list[type] = []
        if target is not None and not isinstance(target, str):
            if not isinstance(target, track.Run):
                raise TypeError(
                    f"patch() takes a track run, a backend string or None, got "
                    f"{type(target).__name__}"
                )
            if run_options:
                raise TypeError("run options need a backend string, not a run")
            self._shared = target
        elif target is not None and not per_writer:
            self._shared = track.start_run(target, **run_options)
            self._owned.append(self._shared)

    @property
    def run(self) -> track.Run | None:
        """The shared run (None until the first call where it is started lazily)."""
        return self._shared

    @property
    def runs(self) -> list[track.Run]:
        shared = [self._shared] if self._shared is not None else []
        return list(dict.fromkeys([*shared, *self._owned]))

    # -- the recorders ---------------------------------------------------------------------
    def recorder(self, writer: Any) -> Recorder | None:
        try:
            return self._recorders[writer]
        except KeyError:
            pass
        except TypeError:  # not weak-referenceable: no capture
            return None
        with _lock:
            if writer in self._recorders:
                return self._recorders[writer]
            found = None if getattr(writer, SKIP_ATTRIBUTE, False) else self._new_recorder(writer)
            self._recorders[writer] = found
            return found

    def _new_recorder(self, writer: Any) -> Recorder:
        log_dir = writer_log_dir(writer)
        if self._per_writer:
            options = dict(self._options)
            if log_dir is not None:
                options.setdefault("run_name", Path(log_dir).name or None)
            if options.get("run_name") is not None:
                options["name"] = options.pop("run_name")
            else:
                options.pop("run_name", None)
            run = track.start_run(self._backend, **options)
            self._owned.append(run)
        else:
            run = self._shared_run(log_dir)
        return Recorder(run, Namer(self._names, log_dir_subset(log_dir)))

    def _shared_run(self, log_dir: str | None) -> track.Run:
        with _lock:
            if self._shared is None:
                current = track.current_run()
                if current is not None:
                    self._shared = current
                else:
                    options = dict(self._options)
                    name = options.pop("run_name", None)
                    if name is None and log_dir is not None:
                        name = Path(log_dir).name or None
                    self._shared = track.start_run(self._backend, name=name, **options)
                    self._owned.append(self._shared)
            return self._shared

    def summary_written(self, file_writer: Any, summary: Any) -> None:
        """An ``add_summary`` made outside ``add_*`` (Lightning's hparams): its hparams."""
        try:
            for value in getattr(summary, "value", ()):
                metadata = value.metadata.plugin_data
                if metadata.plugin_name != "hparams":
                    continue
                from track_tensorboard.importer import hparams_of

                params = hparams_of(metadata.content)
                if not params:
                    continue
                log_dir = file_writer.get_logdir()
                if self._per_writer:
                    runs = [
                        recorder.run
                        for writer, recorder in list(self._recorders.items())
                        if recorder is not None and writer_log_dir(writer) == log_dir
                    ]
                    if not runs:
                        continue
                    run = runs[0]
                else:
                    run = self._shared_run(log_dir)
                record_hparams(run, params)
        except Exception as error:
            key = ("add_summary", type(error).__name__, str(error)[:80])
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"track-tensorboard: hparams written by add_summary were not tracked: "
                    f"{type(error).__name__}: {error}",
                    CaptureWarning,
                    stacklevel=4,
                )

    def forward(self, writer: Any, method: str, call: Callable[[Recorder], None]) -> None:
        """Record one call; a failure is a warning, never an exception."""
        try:
            recorder = self.recorder(writer)
            if recorder is not None:
                call(recorder)
        except Exception as error:
            key = (method, type(error).__name__, str(error)[:80])
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"track-tensorboard: {type(writer).__name__}.{method} was not tracked "
                    f"(the event file has it): {type(error).__name__}: {error}",
                    CaptureWarning,
                    stacklevel=4,
                )

    def writer_closed(self, writer: Any) -> None:
        try:
            recorder = self._recorders.get(writer)
        except TypeError:
            return
        if recorder is None:
            return
        try:
            if self._per_writer and recorder.run in self._owned:
                recorder.run.close()
            else:
                recorder.run.flush(timeout=5.0)
        except Exception as error:  # never into the training loop
            warnings.warn(f"track-tensorboard: {error}", CaptureWarning, stacklevel=4)

    def unsupported(self, method: str) -> None:
        if method not in self._unsupported_warned:
            self._unsupported_warned.add(method)
            warn_unsupported(method, True)

    # -- installing ------------------------------------------------------------------------
    def install(self, classes: Iterable[type], file_writers: Iterable[type] = ()) -> None:
        for cls in file_writers:
            method = "add_summary"
            original = cls.__dict__.get(method)
            if original is not None:
                self._originals.append((cls, method, original))
                setattr(cls, method, _wrap_add_summary(original))
        for cls in classes:
            self.classes.append(cls)
            for method in (*RECORDED, "close", *UNSUPPORTED):
                original = cls.__dict__.get(method)
                if original is None or not callable(original):
                    continue
                self._originals.append((cls, method, original))
                setattr(cls, method, _wrap(method, original))

    def uninstall(self) -> None:
        for cls, method, original in reversed(self._originals):
            setattr(cls, method, original)
        self._originals.clear()

    def close(self) -> None:
        """Undo the patch and end the runs it started (a run given to ``patch()`` stays open)."""
        unpatch(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        unpatch(self, exc_type, exc, tb)


def _wrap(method: str, original: Any) -> Any:
    signature = inspect.signature(original)
    parameters = list(signature.parameters)

    if method == "close":

        @functools.wraps(original)
        def close(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            state = _active
            if state is not None and _depth() == 0:
                state.writer_closed(self)
            return result

        return close

    if method in UNSUPPORTED:

        @functools.wraps(original)
        def unsupported(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = _call(original, self, args, kwargs)
            state = _active
            if state is not None and _depth() == 0 and not getattr(self, SKIP_ATTRIBUTE, False):
                state.unsupported(method)
            return result

        return unsupported

    if method == "add_scalar":

        @functools.wraps(original)
        def add_scalar(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = _call(original, self, args, kwargs)
            state = _active
            if state is not None and _depth() == 0:
                if not kwargs and len(args) <= 4:
                    state.forward(self, method, lambda r: r.add_scalar(*args))
                else:
                    named = _named(signature, self, args, kwargs)
                    state.forward(self, method, lambda r: r.add_scalar(**named))
            return result

        return add_scalar

    @functools.wraps(original)
    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = _call(original, self, args, kwargs)
        state = _active
        if state is not None and _depth() == 0:
            named = _named(signature, self, args, kwargs)
            if method == "add_figure":
                named["close"] = False  # the writer closed it, if asked
            state.forward(self, method, lambda r: getattr(r, method)(**named))
        return result

    del parameters
    return recorded


def _wrap_add_summary(original: Any) -> Any:
    @functools.wraps(original)
    def add_summary(self: Any, summary: Any, *args: Any, **kwargs: Any) -> Any:
        result = _call(original, self, (summary, *args), kwargs)
        state = _active
        if state is not None and _depth() == 0:
            state.summary_written(self, summary)
        return result

    return add_summary


def _call(original: Any, writer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The writer's own method; calls it makes to other patched methods are not recorded."""
    _local.depth = _depth() + 1
    try:
        return original(writer, *args, **kwargs)
    finally:
        _local.depth -= 1


def _named(
    signature: inspect.Signature, writer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    bound = signature.bind(writer, *args, **kwargs)
    named = dict(bound.arguments)
    named.pop(next(iter(signature.parameters)), None)  # self
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD and name in named:
            named.update(named.pop(name))
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            named.pop(name, None)
    return named


def _writer_classes(which: tuple[tuple[str, str], ...] = WRITER_CLASSES) -> list[type]:
    found = []
    for module_name, class_name in which:
        root = module_name.split(".")[0]
        if root not in __import__("sys").modules and importlib.util.find_spec(root) is None:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # torch without the tensorboard package, say
            continue
        cls = getattr(module, class_name, None)
        if isinstance(cls, type):
            found.append(cls)
    return found


def patch(
    run_or_backend: track.Run | str | None = None,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    tags: Any = None,
    description: str | None = None,
    names: NamesOption = True,
    per_writer: bool = False,
) -> Patch:
    """Send every TensorBoard ``SummaryWriter`` call of this process to a track run as well.

    ``run_or_backend``: an open run (stays open at ``unpatch()``), a backend string (a run is
    started now, with the run options, and ended at ``unpatch()``), or None (the current run at
    the first call, else one started from ``$TRACK_BACKEND``). Every writer records into that one
    run; ``per_writer=True`` gives each writer a run of its own, named after its log dir and
    ended when the writer closes. Use as a context manager, or call ``unpatch()``.
    """
    global _active
    options = {
        key: value
        for key, value in {
            "experiment": experiment,
            "run_name": run_name,
            "tags": tags,
            "description": description,
        }.items()
        if value is not None
    }
    if isinstance(run_or_backend, str) and not per_writer and "run_name" in options:
        options["name"] = options.pop("run_name")
    with _lock:
        if _active is not None:
            raise RuntimeError("track_tensorboard.patch() is already in force: unpatch() first")
        classes = _writer_classes()
        if not classes:
            raise ImportError(
                "patch() found no TensorBoard writer to patch: install torch with tensorboard "
                '(pip install "track-tensorboard[torch]") or tensorboardX'
            )
        state = Patch(run_or_backend, options, names, per_writer)
        state.install(classes, _writer_classes(FILE_WRITER_CLASSES))
        _active = state
    return state


def unpatch(
    state: Patch | None = None,
    exc_type: type[BaseException] | None = None,
    exc: BaseException | None = None,
    tb: TracebackType | None = None,
) -> None:
    """Undo ``patch()``: the writers write event files only; the runs ``patch()`` started end
    (FAILED with ``exc`` when given). Does nothing when no patch is in force."""
    global _active
    with _lock:
        current = _active
        if current is None or (state is not None and state is not current):
            return
        current.uninstall()
        _active = None
    for run in current._owned:
        if exc is not None:
            run.__exit__(exc_type, exc, tb)
        else:
            run.close()


def active_patch() -> Patch | None:
    """The patch in force, or None."""
    return _active
