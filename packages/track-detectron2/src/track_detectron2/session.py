"""One tracked training: the run, the storage reader, the end (artifacts and status).

Shared by ``TrackHook`` and ``TrackWriter``. Only the main process (Detectron2's
``comm.is_main_process()``, rank 0) opens a run; on every other rank a session is inactive and
each of its methods returns at once.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

import track_core as track
from track_detectron2.names import NameMapper
from track_detectron2.settings import UPLOAD_WORDS, TrackSettings
from track_detectron2.storage import StorageReader

logger = logging.getLogger(__name__)

PARAMS_KEY = "config"


def is_main_process() -> bool:
    """Detectron2's notion (rank 0 of ``torch.distributed``, or not distributed)."""
    try:
        from detectron2.utils import comm  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - detectron2 is there whenever this is used
        return track.distributed.is_main_process()
    return bool(comm.is_main_process())


def _dotted_name(value: Any) -> str:
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if module and qualname:
        return f"{module}.{qualname}"
    return repr(value)


def _sanitize(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(key): _sanitize(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(item) for item in value]
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        return _dotted_name(value)  # LazyCall targets: "torch.optim.SGD"
    try:
        return track.to_params(value)
    except (TypeError, ValueError):
        text = repr(value)
        if len(text) > 200:  # a model or a dataset put into a LazyConfig: name it, do not print it
            text = f"<{_dotted_name(type(value))} object>"
        return text


def config_to_params(cfg: Any) -> Any:
    """A Detectron2 config as plain nested data.

    yacs ``CfgNode`` (a dict) as nested dicts, tuples as lists; LazyConfig / OmegaConf resolved
    (``OmegaConf.to_container(resolve=True)``) with ``LazyCall`` targets and other callables as
    their dotted names; anything else through ``track_core.to_params`` (dataclasses, attrs,
    Namespace, ...), unknown objects as their ``repr``.
    """
    module = type(cfg).__module__ or ""
    if module.startswith("omegaconf"):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    elif not isinstance(cfg, (Mapping, list, tuple)):
        try:
            return track.to_params(cfg)
        except (TypeError, ValueError):
            pass
    return _sanitize(cfg)


def dump_config(cfg: Any, path: Path) -> Path | None:
    """Write ``cfg`` as YAML the way Detectron2 does (``cfg.dump()`` / ``LazyConfig.save``),
    with every credential removed (``track_core.redact_text``)."""
    try:
        dump = getattr(cfg, "dump", None)
        if callable(dump) and hasattr(cfg, "merge_from_file"):  # yacs CfgNode
            path.write_text(track.redact_text(dump()))
            return path
        if (type(cfg).__module__ or "").startswith("omegaconf"):
            from detectron2.config import LazyConfig  # type: ignore[import-untyped]

            LazyConfig.save(cfg, str(path))
            if path.is_file():
                redact_file(path)
                return path
        import yaml  # type: ignore[import-untyped]

        params = track.redact_params(config_to_params(cfg))
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return path
    except Exception as error:
        logger.warning("track-detectron2: could not dump the config as YAML: %s", error)
        return None


#: Uploaded files that are text, whose credentials are removed before they are stored.
TEXT_SUFFIXES = frozenset(
    {".yaml", ".yml", ".json", ".txt", ".log", ".py", ".cfg", ".ini", ".toml", ".csv"}
)


def redact_file(path: Path, into: Path | None = None) -> Path:
    """Remove credentials from a text file (``track_core.redact_text``): in place, or into a
    copy at ``into``. Returns the file to upload: ``path`` itself when nothing had to go."""
    data = path.read_bytes()
    text = data.decode("utf-8", errors="surrogateescape")
    clean = track.redact_text(text)
    if clean == text:
        return path
    target = into if into is not None else path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(clean.encode("utf-8", errors="surrogateescape"))
    return target


def outcome(
    completed: bool | None, error: BaseException | None = None
) -> tuple[track.Status, BaseException | str | None]:
    """The run status at the end of training, from inside ``after_train`` / ``close``.

    ``error``: an exception known to end the training (an earlier hook's ``after_train``
    raised it): the run is FAILED with it (KILLED for ``KeyboardInterrupt``), whatever else.

    Detectron2 v0.6's ``TrainerBase.train`` calls ``after_train`` from a ``finally`` clause after
    ``except Exception: logger.exception(...); raise``: while that ``finally`` runs because of an
    exception, ``sys.exc_info()`` returns it (checked on CPython 3.11). ``completed`` is
    ``trainer.iter >= trainer.max_iter`` where known (the loop ends with ``iter == max_iter`` only
    on success), which also covers a ``train()`` called while an outer exception is handled.
    """
    if error is not None:
        return (
            track.Status.KILLED if isinstance(error, KeyboardInterrupt) else track.Status.FAILED,
            error,
        )
    error = sys.exc_info()[1]
    if completed is True:
        return track.Status.FINISHED, None
    if isinstance(error, KeyboardInterrupt):
        return track.Status.KILLED, error
    if error is not None:
        return track.Status.FAILED, error
    if completed is False:
        return track.Status.FAILED, "training stopped before reaching max_iter"
    return track.Status.FINISHED, None


@attrs.define
class Session:
    """The tracking state of one training (on the main process)."""

    settings: TrackSettings
    config: Any = None
    given_run: Any = None
    run: Any = attrs.field(default=None, init=False)
    active: bool = attrs.field(default=False, init=False)
    final_status: track.Status | None = attrs.field(default=None, init=False)
    final_error: str | None = attrs.field(default=None, init=False)
    _reader: StorageReader | None = attrs.field(default=None, init=False)

    def start(self) -> Any:
        """Open the run (main process only); return it, or None on other ranks."""
        settings = self.settings
        enabled = settings.enabled
        if enabled is False or not is_main_process():
            self.active = False
            return None
        if self.given_run is not None:
            self.run = self.given_run
        else:
            self.run = track.start_run(
                settings.backend,
                experiment=settings.experiment,
                name=settings.run_name,
                description=settings.description,
                tags=settings.tags or None,
                run_id=settings.run_id,
                enabled=enabled,
                writer=settings.writer_options(),
                system_metrics=settings.system_metrics_option(),
            )
        if not self.run.recording:  # tracking off (a no-op run), or a closed run given
            self.active = False
            return self.run
        self.active = True
        self._reader = StorageReader(
            NameMapper.create(
                settings.eval_tasks, default_dataset=single_test_dataset(self.config)
            ),
            window_size=settings.window_size,
            log_images=settings.log_images,
            log_histograms=settings.log_histograms,
        )
        if self.config is not None:
            try:
                self.run[PARAMS_KEY] = track.redact_params(config_to_params(self.config))
            except Exception as error:
                logger.warning(
                    "track-detectron2: could not store the config as params: %s",
                    track.redact_text(str(error)),
                )
        return self.run

    def attach(self, storage: Any) -> None:
        if self.active and self._reader is not None:
            self._reader.attach(storage, self.run)

    @property
    def last_iteration(self) -> int | None:
        """The last training iteration tracked (the iteration of the newest training scalar)."""
        return self._reader.last_train_iteration if self._reader is not None else None

    @property
    def test_dataset(self) -> str | None:
        """The one test dataset of the config (``DATASETS.TEST``), if there is exactly one."""
        return single_test_dataset(self.config)

    def write(self, storage: Any) -> None:
        if not self.active or self._reader is None:
            return
        self._reader.write(self.run, storage)

    def finish(
        self, storage: Any | None, completed: bool | None, error: BaseException | None = None
    ) -> None:
        """Last read, artifacts, status. Called from ``after_train`` / ``close``, or with the
        ``error`` that ended the training where ``after_train`` could not run."""
        if not self.active:
            return
        status, reason = outcome(completed, error)
        self.active = False  # once: a failure below must not make a second finish try again
        tmp = Path(tempfile.mkdtemp(prefix="track-detectron2-"))
        try:
            if storage is not None and self._reader is not None:
                try:
                    self._reader.write(self.run, storage)
                except Exception as failure:  # the run still gets its artifacts and status
                    logger.warning(
                        "track-detectron2: could not read the last values: %s",
                        track.redact_text(str(failure)),
                    )
                finally:
                    self._reader.detach()
            self._upload(tmp)
        finally:
            self.final_status = status
            self.final_error = None if reason is None else track.redact_text(str(reason))
            try:
                if self.given_run is None:
                    self.run.close(status, error=reason)
                else:
                    self.run.flush()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def _upload(self, tmp: Path) -> None:
        output_dir = self.settings.output_dir
        for item in self.settings.upload:
            try:
                for path, name in self._files_for(item, output_dir, tmp):
                    if path.suffix.lower() in TEXT_SUFFIXES and not path.is_relative_to(tmp):
                        path = redact_file(path, into=tmp / "redacted" / name)
                    self.run.log_artifact(str(path), name=name)
            except Exception as error:
                logger.warning(
                    "track-detectron2: could not upload %r: %s", item, track.redact_text(str(error))
                )

    def _files_for(self, item: str, output_dir: str | None, tmp: Path) -> list[tuple[Path, str]]:
        if item == "config":
            if self.config is None:
                return []
            dumped = dump_config(self.config, tmp / "config.yaml")
            return [(dumped, "config.yaml")] if dumped is not None else []
        if output_dir is None:
            return []
        root = Path(output_dir)
        if item in UPLOAD_WORDS:
            file = {"metrics": "metrics.json", "log": "log.txt", "model": "model_final.pth"}[item]
            path = root / file
            return [(path, file)] if path.is_file() else []
        found = sorted(glob.glob(os.path.join(glob.escape(str(root)), item), recursive=True))
        return [(Path(p), Path(p).relative_to(root).as_posix()) for p in found if os.path.isfile(p)]


def single_test_dataset(cfg: Any) -> str | None:
    """``cfg.DATASETS.TEST`` when it names exactly one dataset, else None."""
    try:
        datasets = cfg.DATASETS.TEST
    except Exception:
        return None
    if isinstance(datasets, str):
        return datasets
    if isinstance(datasets, (list, tuple)) and len(datasets) == 1:
        return str(datasets[0])
    return None
