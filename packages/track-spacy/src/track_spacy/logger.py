"""``track.Logger.v1``: spaCy's training logger for track.

spaCy resolves the ``[training]`` block twice (once in ``init_nlp``, once in ``train``), so the
factory only checks its options; the run starts in ``setup``, which spaCy calls once, right before
the training loop. ``finalize`` runs in the loop's ``finally`` and is not told whether training
failed: the exception being raised is read from ``sys.exc_info()``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

import track_core as track
from track_core.redaction import redact_text
from track_spacy import render
from track_spacy.config import remove_keys

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

LogStep = Callable[[dict[str, Any] | None], None]
Finalize = Callable[[], None]
LoggerSetup = Callable[..., tuple[LogStep, Finalize]]

#: The contexts that keep training losses apart from evaluation scores.
TRAIN = "train"
EVAL = "val"
MODEL_DIRS = {"best": "model-best", "latest": "model-last"}


class TrackLoggerWarning(track.TrackWarning):
    """Something the logger could not track; training goes on."""


@attrs.frozen
class Options:
    """The logger's options, checked when spaCy resolves the config."""

    backend: str | None
    experiment: str | None
    run_name: str | None
    run_id: str | None
    description: str | None
    tags: tuple[str, ...]
    remove_config_values: tuple[str, ...]
    viz_path: str | None
    styles: tuple[str, ...] | None  # None: inferred from the pipeline
    viz_limit: int | None
    spans_key: str
    image_size: tuple[int, int] | None
    render_images: bool
    model_log_interval: int | None
    log_best_dir: bool
    log_latest_dir: bool
    console: bool
    progress_bar: str | None
    system_metrics: bool | float | None = None  # as start_run takes it


def backend_string(backend: str | None, repo: str | None) -> str | None:
    """``backend`` with aim-spacy's ``repo`` as its location (``aim`` when no backend is named)."""
    if repo is None or not str(repo).strip():
        return backend
    if backend is None:
        backend = os.environ.get("TRACK_BACKEND", "").strip() or "aim"
    head, question, query = backend.partition("?")
    name, colon, location = head.partition(":")
    if colon and location:
        raise ValueError(
            f"give the location once: backend {backend!r} has one, and repo is {repo!r}"
        )
    return f"{name}:{repo}{question}{query}"


def track_logger_v1(
    backend: str | None = None,
    repo: str | None = None,
    experiment_name: str | None = None,
    run_name: str | None = None,
    run_id: str | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    remove_config_values: Sequence[str] = (),
    viz_path: str | None = None,
    experiment_type: str | None = None,
    viz_limit: int | None = 5,
    spans_key: str = "sc",
    image_size: str | None = None,
    render_images: bool = True,
    model_log_interval: int | None = None,
    log_best_dir: bool = False,
    log_latest_dir: bool = False,
    console: bool = True,
    progress_bar: str | None = None,
    system_metrics: bool | None = None,
    system_metrics_interval: float | None = None,
) -> LoggerSetup:
    """Track a spaCy training run (losses, scores, config, renderings, models) with track.

    backend: a track backend string (``"aim"``, ``"aim:./runs"``, ``"mlflow:sqlite:///m.db"``,
        ``"memory"``, ``"none"``); None reads ``$TRACK_BACKEND``.
    repo: aim-spacy's option: the backend's location (the backend is ``aim`` if none is named).
    experiment_name, run_name, run_id, description, tags: the run's; ``run_id`` resumes a run.
    remove_config_values: dotted config keys or shell patterns (``paths.*``, ``*.api_key``) to
        leave out of the ``config`` param, each with everything under it.
    viz_path: a ``.spacy`` file (usually the dev set) whose docs are rendered with displaCy.
    experiment_type: ``dep``, ``ent`` (aim-spacy's ``ner``), ``span``, or several with commas;
        None renders what the pipeline predicts.
    viz_limit: how many docs of ``viz_path`` to render (None: all).
    spans_key: the ``doc.spans`` key that ``span`` renderings show.
    image_size: aim-spacy's ``"height,width"``: images are fitted into it (aspect kept).
    render_images: also track ``dep`` renderings as PNG images (needs ``track-spacy[images]``).
    model_log_interval: render (and log model directories) every this many steps; None: at
        every evaluation. Model directories exist only at evaluations, so they are logged at the
        first evaluation at or after each interval.
    log_best_dir, log_latest_dir: log ``model-best`` / ``model-last`` as artifacts (needs
        ``spacy train --output``); off by default, as models can be large.
    console: keep spaCy's console table (``spacy.ConsoleLogger.v3``).
    progress_bar: the console table's progress bar, ``"train"`` or ``"eval"``.
    system_metrics: true samples CPU, memory, disk, network and GPUs into the run from a thread
        of their own (``track_core.start_run(system_metrics=...)``; needs
        ``track-core[system]``), false switches that off; null leaves it to the backend
        string's ``system_metrics=`` and ``$TRACK_SYSTEM_METRICS``.
    system_metrics_interval: seconds between samples (null: the core's default, 10 s).
    """
    if model_log_interval is not None and model_log_interval < 1:
        raise ValueError(f"model_log_interval must be >= 1 or null, got {model_log_interval}")
    if viz_limit is not None and viz_limit < 0:
        raise ValueError(f"viz_limit must be >= 0 or null, got {viz_limit}")
    if viz_path is not None and not Path(viz_path).is_file():
        raise ValueError(f"viz_path {viz_path!r} is not a file (a .spacy file of docs to render)")
    if progress_bar not in (None, "train", "eval"):
        raise ValueError(f"progress_bar must be 'train', 'eval' or null, got {progress_bar!r}")
    styles = render.parse_styles(experiment_type) if experiment_type is not None else None
    if system_metrics_interval is not None:
        from track_core.system_metrics import check_interval

        check_interval(system_metrics_interval)
    sampling: bool | float | None = system_metrics
    if system_metrics and system_metrics_interval is not None:
        sampling = float(system_metrics_interval)
    options = Options(
        backend=backend_string(backend, repo),
        experiment=experiment_name,
        run_name=run_name,
        run_id=run_id,
        description=description,
        tags=tuple(tags),
        remove_config_values=tuple(remove_config_values),
        viz_path=viz_path,
        styles=styles,
        viz_limit=viz_limit,
        spans_key=spans_key,
        image_size=render.parse_image_size(image_size),
        render_images=render_images,
        model_log_interval=model_log_interval,
        log_best_dir=log_best_dir,
        log_latest_dir=log_latest_dir,
        console=console,
        progress_bar=progress_bar,
        system_metrics=sampling,
    )

    def setup(
        nlp: Language, stdout: IO[str] = sys.stdout, stderr: IO[str] = sys.stderr
    ) -> tuple[LogStep, Finalize]:
        logger = SpacyRunLogger.start(options, nlp, stdout, stderr)
        return logger.log_step, logger.finalize

    return setup


def _console(
    options: Options, nlp: Language, stdout: IO[str], stderr: IO[str]
) -> tuple[LogStep, Finalize] | None:
    if not options.console:
        return None
    from spacy.util import registry

    factory = registry.get("loggers", "spacy.ConsoleLogger.v3")
    setup = factory(progress_bar=options.progress_bar, console_output=True, output_file=None)
    log_step, finalize = setup(nlp, stdout, stderr)
    return log_step, finalize


#: The text files of a spaCy model directory that hold the training config (and so the
#: ``[training.logger]`` block with its backend string).
CONFIG_FILES = ("config.cfg",)


def _redact_config_files(directory: Path) -> None:
    """Rewrite the config files of a copied model directory without credentials."""
    for path in directory.rglob("*"):
        if path.name in CONFIG_FILES and path.is_file():
            text = path.read_text(encoding="utf-8")
            redacted = redact_text(text)
            if redacted is not text:
                path.write_text(redacted, encoding="utf-8")


def _scores(scores: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of spaCy's scores, nested ones (per label) as dotted names."""
    for key, value in scores.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _scores(value, f"{name}.")
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, (int, float)):
            yield name, float(value)
        else:
            try:
                yield name, float(value)
            except (TypeError, ValueError):
                continue


@attrs.define
class SpacyRunLogger:
    """The state of one training run's logger."""

    _options: Options
    _nlp: Language
    _run: track.Run
    _console: tuple[LogStep, Finalize] | None
    _stderr: IO[str]
    _error_at_setup: BaseException | None
    _styles: tuple[str, ...] = ()
    _viz_docs: list[Doc] = attrs.Factory(list)
    _svg_to_png: render.SvgToPng | None = None
    _step: int = -1
    _epoch: int | None = None  # of the last evaluation
    _eval_step: int | None = None
    _last_eval: tuple[float, int] | None = None
    _started: float = attrs.Factory(time.perf_counter)
    _rendered_step: int | None = None
    _next_model_step: int = 0
    _model_dir: Path | None = None
    _models_logged_step: int | None = None
    _snapshots: Path | None = None
    _snapshot_count: int = 0
    _warned: set[str] = attrs.Factory(set)
    _finalized: bool = False

    @classmethod
    def start(
        cls, options: Options, nlp: Language, stdout: IO[str], stderr: IO[str]
    ) -> SpacyRunLogger:
        console = _console(options, nlp, stdout, stderr)
        run = track.start_run(
            options.backend,
            experiment=options.experiment,
            name=options.run_name,
            description=options.description,
            tags=options.tags or None,
            run_id=options.run_id,
            system_metrics=options.system_metrics,
        )
        logger = cls(options, nlp, run, console, stderr, sys.exc_info()[1])
        logger._prepare()
        return logger

    @property
    def run(self) -> track.Run:
        return self._run

    @property
    def _tracking(self) -> bool:
        return self._run.recording

    def _warn(self, what: str, error: BaseException) -> None:
        if what in self._warned:
            return
        self._warned.add(what)
        warnings.warn(
            redact_text(
                f"track-spacy could not {what} ({type(error).__name__}: {error}); training goes on"
            ),
            TrackLoggerWarning,
            stacklevel=3,
        )

    def _prepare(self) -> None:
        try:
            config, unused = remove_keys(
                self._nlp.config.interpolate(), self._options.remove_config_values
            )
            if unused:
                warnings.warn(
                    f"remove_config_values matched no config key: {sorted(unused)}",
                    TrackLoggerWarning,
                    stacklevel=2,
                )
            # The config holds the backend string: no credential goes in with it.
            self._run["config"] = track.redact_params(config)
        except Exception as error:
            self._warn("store the training config", error)
        if self._options.viz_path is None or not self._tracking:
            return
        styles = self._options.styles
        self._styles = styles if styles is not None else render.infer_styles(self._nlp)
        if not self._styles:
            return
        self._viz_docs = render.load_docs(
            self._nlp, self._options.viz_path, self._options.viz_limit
        )
        if "dep" in self._styles and self._options.render_images:
            self._svg_to_png = render.find_svg_renderer()
            if self._svg_to_png is None:
                self._warn(
                    "render dependency parses as images: install track-spacy[images] (resvg-py)",
                    ImportError("no SVG renderer"),
                )

    # -- spaCy's callbacks -----------------------------------------------------------------
    def log_step(self, info: dict[str, Any] | None) -> None:
        if self._console is not None:
            self._console[0](info)
        if info is None:
            self._step += 1
            if self._render_due(self._step, evaluated=False):
                self._render(self._step, None)
            return
        step, epoch = int(info["step"]), int(info["epoch"])
        self._step, self._epoch, self._eval_step = step, epoch, step
        if not self._tracking:
            return
        try:
            self._track_evaluation(info, step, epoch)
        except Exception as error:
            self._warn("track the losses and scores", error)
        if info.get("output_path"):
            self._model_dir = Path(info["output_path"]).parent
            if self._models_due(step):
                self._log_models(step)
        if self._render_due(step, evaluated=True):
            self._render(step, epoch)

    def finalize(self) -> None:
        if self._finalized:
            return
        self._finalized = True
        error = sys.exc_info()[1]
        if error is self._error_at_setup:  # an exception the caller was handling already
            error = None
        try:
            if self._console is not None:
                self._console[1]()
        finally:
            self._finish(error)

    # -- what is tracked -------------------------------------------------------------------
    def _track_evaluation(self, info: Mapping[str, Any], step: int, epoch: int) -> None:
        run = self._run
        for component, loss in (info.get("losses") or {}).items():
            run.track(
                float(loss),
                "loss",
                step=step,
                epoch=epoch,
                context={"subset": TRAIN, "component": str(component)},
            )
        if info.get("score") is not None:
            run.track(
                float(info["score"]), "score", step=step, epoch=epoch, context={"subset": EVAL}
            )
        other = info.get("other_scores")
        if isinstance(other, Mapping):
            for name, value in _scores(other):
                run.track(value, name, step=step, epoch=epoch, context={"subset": EVAL})
        words = info.get("words")
        if isinstance(words, int):
            now = time.perf_counter()
            since, words_before = self._last_eval or (self._started, 0)
            if now > since and words >= words_before:
                run.track(
                    (words - words_before) / (now - since),
                    "words_per_second",
                    step=step,
                    epoch=epoch,
                    context={"subset": TRAIN},
                )
            run.track(words, "words", step=step, epoch=epoch, context={"subset": TRAIN})
            self._last_eval = (now, words)

    def _render_due(self, step: int, *, evaluated: bool) -> bool:
        if not self._viz_docs or not self._tracking:
            return False
        interval = self._options.model_log_interval
        return evaluated if interval is None else step % interval == 0

    def _render(self, step: int, epoch: int | None) -> None:
        if self._rendered_step == step:
            return
        self._rendered_step = step
        try:
            predicted = render.predict(self._nlp, self._viz_docs)
        except Exception as error:
            self._warn("run the pipeline over viz_path", error)
            return
        for style in self._styles:
            for index, doc in enumerate(predicted):
                context = track.Context({"style": style, "doc": index})
                try:
                    markup = render.render(doc, style, self._options.spans_key)
                    self._run.track(
                        track.Text(markup), "displacy", step=step, epoch=epoch, context=context
                    )
                    if style == "dep" and self._svg_to_png is not None:
                        picture = render.fit_png(self._svg_to_png(markup), self._options.image_size)
                        self._run.track(
                            track.Image(picture, caption=doc.text),
                            "displacy_image",
                            step=step,
                            epoch=epoch,
                            context=context,
                        )
                except Exception as error:
                    self._warn(f"render {style!r} with displaCy", error)

    def _models_due(self, step: int) -> bool:
        if not (self._options.log_best_dir or self._options.log_latest_dir):
            return False
        interval = self._options.model_log_interval
        if interval is None:  # at the end only
            return False
        return step >= self._next_model_step

    def _log_models(self, step: int) -> None:
        directory = self._model_dir
        if directory is None or self._models_logged_step == step:
            return
        interval = self._options.model_log_interval or 1
        self._next_model_step = (step // interval + 1) * interval
        self._models_logged_step = step
        wanted = [kind for kind in ("best", "latest") if getattr(self._options, f"log_{kind}_dir")]
        for kind in wanted:
            source = directory / MODEL_DIRS[kind]
            if not source.is_dir():
                continue
            try:
                # spaCy rewrites these directories at the next evaluation, and the backend reads
                # the files later, on its own thread: log a copy.
                if self._snapshots is None:
                    self._snapshots = Path(tempfile.mkdtemp(prefix="track-spacy-"))
                self._snapshot_count += 1
                copy = self._snapshots / str(self._snapshot_count) / MODEL_DIRS[kind]
                shutil.copytree(source, copy)
                _redact_config_files(copy)
                for path in sorted(p for p in copy.rglob("*") if p.is_file()):
                    name = f"{MODEL_DIRS[kind]}/{path.relative_to(copy).as_posix()}"
                    self._run.log_artifact(str(path), name=name)
            except Exception as error:
                self._warn(f"log {source} as artifacts", error)

    def _finish(self, error: BaseException | None) -> None:
        try:
            if self._tracking and self._viz_docs and self._step >= 0:
                # Once more, unless this step has been rendered already.
                epoch = self._epoch if self._eval_step == self._step else None
                self._render(self._step, epoch)
            if self._tracking and (self._options.log_best_dir or self._options.log_latest_dir):
                self._log_models(self._step)
        except Exception as failure:
            self._warn("track the end of the training", failure)
        if error is None:
            status = track.Status.FINISHED
        elif isinstance(error, KeyboardInterrupt):
            status = track.Status.KILLED
        else:
            status = track.Status.FAILED
        self._run.close(status=status, error=error)
        # What the backend did not take by now waits in track's spool, which names these files.
        if self._snapshots is not None and getattr(self._run, "pending", 0) == 0:
            shutil.rmtree(self._snapshots, ignore_errors=True)
