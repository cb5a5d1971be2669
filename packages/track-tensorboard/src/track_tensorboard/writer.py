"""A drop-in ``SummaryWriter`` on a track run, and the recorder that patched writers share.

``Recorder`` turns TensorBoard's ``add_*`` calls into ``run.track`` calls; ``SummaryWriter``
is a recorder with torch's constructor that opens (or finds) its run, warns about what track
cannot hold, and optionally also writes the event files (``tee=True``).
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import track_core as track
from track_core import TrackWarning
from track_tensorboard import convert
from track_tensorboard.names import Namer, NamesOption, subset_of

#: What track cannot hold; a call warns once per method and writer, then returns.
UNSUPPORTED = (
    "add_graph",
    "add_onnx_graph",
    "add_embedding",
    "add_mesh",
    "add_video",
    "add_audio",
    "add_pr_curve",
    "add_pr_curve_raw",
    "add_custom_scalars",
    "add_custom_scalars_multilinechart",
    "add_custom_scalars_marginchart",
    "add_image_with_boxes",
    "add_tensor",
    "add_openvino_graph",
)

HPARAMS_KEY = "hparams"
#: The attribute that keeps a writer out of ``patch()``'s capture (the event writer of ``tee``).
SKIP_ATTRIBUTE = "_track_tensorboard_skip"


class UnsupportedWarning(TrackWarning):
    """A SummaryWriter method whose data track cannot hold (once per method and writer)."""


def default_log_dir(comment: str = "") -> str:
    """torch's default: ``runs/<Mon DD_HH-MM-SS>_<hostname><comment>``."""
    stamp = datetime.now().strftime("%b%d_%H-%M-%S")
    return os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")


def log_dir_subset(log_dir: str | os.PathLike[str] | None) -> str | None:
    """``runs/exp/val`` -> ``"val"``: a writer per subset, as Keras-style code makes them."""
    if log_dir is None or not os.fspath(log_dir):
        return None
    return subset_of(Path(os.fspath(log_dir)).name)


def _step(global_step: object) -> int | None:
    if global_step is None or type(global_step) is int:
        return global_step
    item = getattr(global_step, "item", None)  # a 0-d tensor or numpy integer
    if callable(item):
        global_step = item()
    if isinstance(global_step, float) and global_step.is_integer():
        global_step = int(global_step)
    return global_step  # type: ignore[return-value]  # track() says what is wrong


def _walltime(walltime: object) -> float | None:
    if walltime is None or type(walltime) is float:
        return walltime
    if isinstance(walltime, (int, float)) and not isinstance(walltime, bool):
        return float(walltime)
    item = getattr(walltime, "item", None)
    if callable(item):
        return float(item())
    raise TypeError(f"walltime must be seconds since the epoch, got {type(walltime).__name__}")


class Recorder:
    """TensorBoard's ``add_*`` methods on a run: what a drop-in or patched writer records."""

    def __init__(self, run: track.Run, namer: Namer) -> None:
        self.run = run
        self.namer = namer
        self._track = run.track

    # -- scalars ---------------------------------------------------------------------------
    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: Any = None,
        walltime: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        cls = type(scalar_value)
        value = scalar_value if cls is float or cls is int else convert.scalar(scalar_value, tag)
        name, context = self.namer(tag)
        if global_step is not None and type(global_step) is not int:
            global_step = _step(global_step)
        if walltime is not None and type(walltime) is not float:
            walltime = _walltime(walltime)
        self._track(value, name, step=global_step, context=context, timestamp=walltime)

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: Mapping[str, Any],
        global_step: Any = None,
        walltime: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if not isinstance(tag_scalar_dict, Mapping):
            raise TypeError(
                f"add_scalars({main_tag!r}): tag_scalar_dict must be a dict of tag -> scalar, "
                f"got {type(tag_scalar_dict).__name__}"
            )
        step, stamp = _step(global_step), _walltime(walltime)
        values = [
            (convert.scalar(value, f"{main_tag}/{sub}"), *self.namer.series(main_tag, str(sub)))
            for sub, value in tag_scalar_dict.items()
        ]
        for value, name, context in values:
            self._track(value, name, step=step, context=context, timestamp=stamp)

    # -- distributions ---------------------------------------------------------------------
    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: Any = None,
        bins: Any = "tensorflow",
        walltime: Any = None,
        max_bins: int | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        distribution = convert.histogram(values, bins, max_bins, tag)
        name, context = self.namer(tag)
        self._track(
            distribution,
            name,
            step=_step(global_step),
            context=context,
            timestamp=_walltime(walltime),
        )

    def add_histogram_raw(
        self,
        tag: str,
        min: float,
        max: float,
        num: int,
        sum: float,
        sum_squares: float,
        bucket_limits: Any,
        bucket_counts: Any,
        global_step: Any = None,
        walltime: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        distribution = convert.histogram_raw(min, max, bucket_limits, bucket_counts, tag)
        name, context = self.namer(tag)
        self._track(
            distribution,
            name,
            step=_step(global_step),
            context=context,
            timestamp=_walltime(walltime),
        )

    # -- images and text -------------------------------------------------------------------
    def add_image(
        self,
        tag: str,
        img_tensor: Any,
        global_step: Any = None,
        walltime: Any = None,
        dataformats: str = "CHW",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        picture = convert.image(img_tensor, dataformats, tag, "add_image")
        self._track_value(picture, tag, global_step, walltime)

    def add_images(
        self,
        tag: str,
        img_tensor: Any,
        global_step: Any = None,
        walltime: Any = None,
        dataformats: str = "NCHW",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        picture = convert.image(img_tensor, dataformats, tag, "add_images")
        self._track_value(picture, tag, global_step, walltime)

    def add_figure(
        self,
        tag: str,
        figure: Any,
        global_step: Any = None,
        close: bool = True,
        walltime: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        picture = convert.figure_image(figure, tag, close)
        self._track_value(picture, tag, global_step, walltime)

    def add_text(
        self,
        tag: str,
        text_string: Any,
        global_step: Any = None,
        walltime: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self._track_value(convert.text(text_string, tag), tag, global_step, walltime)

    def _track_value(self, value: Any, tag: str, global_step: Any, walltime: Any) -> None:
        name, context = self.namer(tag)
        self._track(
            value, name, step=_step(global_step), context=context, timestamp=_walltime(walltime)
        )

    # -- hparams ---------------------------------------------------------------------------
    def add_hparams(
        self,
        hparam_dict: Mapping[str, Any],
        metric_dict: Mapping[str, Any],
        hparam_domain_discrete: Any = None,
        run_name: str | None = None,
        global_step: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """The hparams go into the run's ``hparams`` param (merged with earlier ones), each
        metric into a scalar sequence at ``global_step``."""
        params = convert.hparams(hparam_dict)
        if not isinstance(metric_dict, Mapping):
            raise TypeError(
                f"add_hparams: metric_dict must be a dict, got {type(metric_dict).__name__}"
            )
        metrics = [
            (convert.scalar(value, str(tag)), str(tag)) for tag, value in metric_dict.items()
        ]
        record_hparams(self.run, params)
        step = _step(global_step)
        for value, tag in metrics:
            name, context = self.namer(tag)
            self._track(value, name, step=step, context=context)


def record_hparams(run: track.Run, params: Mapping[str, Any]) -> None:
    """``run["hparams"]``, merged with what it held."""
    try:
        previous = run[HPARAMS_KEY]
    except KeyError:
        previous = None
    merged = dict(previous) if isinstance(previous, Mapping) else {}
    merged.update(params)
    run[HPARAMS_KEY] = merged


class SummaryWriter(Recorder):
    """``torch.utils.tensorboard.SummaryWriter``'s constructor and methods, on a track run.

    The run: ``run=`` (an open track run; not closed by ``close()``), or one started from
    ``backend`` and the run options (closed by ``close()``), or else the current run
    (``track_core.current_run()``, e.g. from ``start_logging``), or else one started from
    ``$TRACK_BACKEND``. ``tee=True`` also writes the event files to ``log_dir`` through torch's
    writer (or tensorboardX's), so TensorBoard keeps working. ``names`` is the tag rule (see
    ``track_tensorboard.names``); ``writer_options`` the run's ``track_core.WriterOptions``.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
        *,
        run: track.Run | None = None,
        backend: str | None = None,
        experiment: str | None = None,
        run_name: str | None = None,
        tags: Any = None,
        description: str | None = None,
        names: NamesOption = True,
        tee: bool = False,
        writer_options: track.WriterOptions | None = None,
    ) -> None:
        self.log_dir = os.fspath(log_dir) if log_dir is not None else default_log_dir(comment)
        self._owns_run = False
        options = {"experiment": experiment, "tags": tags, "description": description}
        if run is not None:
            if backend is not None or any(value is not None for value in options.values()):
                raise TypeError("give either run= or backend and run options, not both")
            chosen: track.Run = run
        elif backend is None and all(v is None for v in options.values()) and run_name is None:
            found = track.current_run()
            if found is not None:
                chosen = found
            else:
                chosen = track.start_run(
                    name=Path(self.log_dir).name or None, writer=writer_options
                )
                self._owns_run = True
        else:
            name = run_name if run_name is not None else (Path(self.log_dir).name or None)
            chosen = track.start_run(backend, name=name, writer=writer_options, **options)
            self._owns_run = True
        super().__init__(chosen, Namer(names, log_dir_subset(self.log_dir)))
        self._warned: set[str] = set()
        self._closed = False
        self.tee: Any = None
        if tee:
            self.tee = _event_writer(
                self.log_dir, purge_step, max_queue, flush_secs, filename_suffix
            )

    # torch's accessors
    def get_logdir(self) -> str:
        return self.log_dir

    @property
    def logdir(self) -> str:  # tensorboardX's name
        return self.log_dir

    def __getattr__(self, name: str) -> Any:
        if name in UNSUPPORTED:
            return lambda *args, **kwargs: self._unsupported(name, args, kwargs)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _unsupported(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.tee is not None:
            getattr(self.tee, method)(*args, **kwargs)
        if method not in self._warned:
            self._warned.add(method)
            warn_unsupported(method, self.tee is not None)

    # -- the recorder's methods, also written to the event files with tee=True -------------
    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: Any = None,
        walltime: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if self.tee is not None:
            self.tee.add_scalar(tag, scalar_value, global_step, walltime, *args, **kwargs)
        cls = type(scalar_value)
        value = scalar_value if cls is float or cls is int else convert.scalar(scalar_value, tag)
        name, context = self.namer(tag)
        if global_step is not None and type(global_step) is not int:
            global_step = _step(global_step)
        if walltime is not None and type(walltime) is not float:
            walltime = _walltime(walltime)
        self._track(value, name, step=global_step, context=context, timestamp=walltime)

    def add_scalars(self, *args: Any, **kwargs: Any) -> None:
        if self.tee is not None:
            self.tee.add_scalars(*args, **kwargs)
        super().add_scalars(*args, **kwargs)

    def add_histogram(self, *args: Any, **kwargs: Any) -> None:
        if self.tee is not None:
            self.tee.add_histogram(*args, **kwargs)
        super().add_histogram(*args, **kwargs)

    def add_histogram_raw(self, *args: Any, **kwargs: Any) -> None:
        if self.tee is not None:
            self.tee.add_histogram_raw(*args, **kwargs)
        super().add_histogram_raw(*args, **kwargs)

    def add_image(self, *args: Any, **kwargs: Any) -> None:
        if self.tee is not None:
            self.tee.add_image(*args, **kwargs)
        super().add_image(*args, **kwargs)

    def add_images(self, *args: Any, **kwargs: Any) -> None:
        if self.tee is not None:
            self.tee.add_images(*args, **kwargs)
        super().add_images(*args, **kwargs)

    def add_figure(self, *args: Any, **kwargs: Any) -> None:
        if self.tee is not None:  # rendered here first, then by the event writer (which closes)
            named = dict(kwargs)
            close = named.pop("close", args[3] if len(args) > 3 else True)
            rest = args[:3] + args[4:]
            super().add_figure(*rest, **{**named, "close": False})
            self.tee.add_figure(*rest, **{**named, "close": close})
            return
        super().add_figure(*args, **kwargs)

    def add_text(self, *args: Any, **kwargs: Any) -> None:
        if self.tee is not None:
            self.tee.add_text(*args, **kwargs)
        super().add_text(*args, **kwargs)

    def add_hparams(self, *args: Any, **kwargs: Any) -> None:
        if self.tee is not None:
            self.tee.add_hparams(*args, **kwargs)
        super().add_hparams(*args, **kwargs)

    def flush(self) -> None:
        """Write what is pending: the event files (tee) and the run's backend."""
        if self.tee is not None:
            self.tee.flush()
        self.run.flush()

    def close(self) -> None:
        """Close the event files (tee); end the run if this writer started it, else flush it."""
        if self._closed:
            return
        self._closed = True
        if self.tee is not None:
            self.tee.close()
        if self._owns_run:
            self.run.close()
        else:
            self.run.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_run and exc is not None and not self._closed:
            self._closed = True  # the run ends FAILED (KILLED on Ctrl-C) with the error
            if self.tee is not None:
                self.tee.close()
            self.run.__exit__(exc_type, exc, tb)
            return
        self.close()


def warn_unsupported(method: str, written: bool) -> None:
    where = " (it is still written to the event files)" if written else ""
    warnings.warn(
        f"track-tensorboard: SummaryWriter.{method} is not tracked: track cannot hold its "
        f"data{where}; warned once per method",
        UnsupportedWarning,
        stacklevel=4,
    )


def _event_writer(
    log_dir: str, purge_step: int | None, max_queue: int, flush_secs: int, filename_suffix: str
) -> Any:
    """torch's SummaryWriter, else tensorboardX's, writing the event files (``tee=True``); kept
    out of ``patch()``'s capture, which would record its calls a second time."""
    import importlib

    event_writer: Any
    try:
        event_writer = importlib.import_module("torch.utils.tensorboard").SummaryWriter
    except ImportError:
        try:
            event_writer = importlib.import_module("tensorboardX").SummaryWriter
        except ImportError:
            raise ImportError(
                "tee=True writes event files through torch's or tensorboardX's SummaryWriter: "
                'pip install "track-tensorboard[torch]" (or tensorboardX)'
            ) from None
    writer = event_writer(
        log_dir=log_dir,
        purge_step=purge_step,
        max_queue=max_queue,
        flush_secs=flush_secs,
        filename_suffix=filename_suffix,
    )
    setattr(writer, SKIP_ATTRIBUTE, True)
    return writer
