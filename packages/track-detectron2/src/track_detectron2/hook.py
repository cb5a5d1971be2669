"""``TrackHook`` (a Detectron2 ``HookBase``) and ``TrackWriter`` (a Detectron2 ``EventWriter``)."""

from __future__ import annotations

import logging
from typing import Any

from detectron2.engine import HookBase  # type: ignore[import-untyped]
from detectron2.utils.events import (  # type: ignore[import-untyped]
    EventWriter,
    get_event_storage,
)

from track_detectron2.session import Session
from track_detectron2.settings import TrackSettings, _lookup

logger = logging.getLogger(__name__)


def _max_iter_of(cfg: Any) -> int | None:
    for path in (("SOLVER", "MAX_ITER"), ("train", "max_iter")):
        value = _lookup(cfg, path)
        if value is not None:
            return int(value)
    return None


class TrackHook(HookBase):  # type: ignore[misc]
    """Tracks a Detectron2 training into one track run. Add it last::

        trainer = DefaultTrainer(cfg)
        trainer.register_hooks([TrackHook(cfg)])   # after EvalHook and PeriodicWriter
        trainer.train()

    ``cfg``: the training config (yacs ``CfgNode`` or LazyConfig), stored as the run's params
    under ``"config"``, dumped as ``config.yaml`` at the end, and read for the ``TRACK`` /
    ``track`` settings node (``add_track_config``). Without ``cfg``, a trainer's ``cfg``
    attribute (``DefaultTrainer``) is used. Every setting is also a keyword argument (see
    ``TrackSettings``): ``backend``, ``experiment``, ``run_name``, ``description``, ``tags``,
    ``run_id``, ``upload``, ``write_period``, ``window_size``, ``log_images``,
    ``log_histograms``, ``eval_tasks``, ``enabled``, ``output_dir``.

    ``run``: write into this run instead of opening one (the hook then flushes it at the end
    but does not close it). ``config``: params to store instead of ``cfg``.

    The run is opened in ``before_train`` on the main process only. Scalars are read every
    ``write_period`` iterations and at the end; each value is logged once, at the iteration it
    was recorded. The hook must come after ``EvalHook`` (so the final evaluation is in the run)
    and after ``PeriodicWriter`` (so metrics.json is complete when uploaded): appending it with
    ``register_hooks`` does both.
    """

    def __init__(
        self, cfg: Any = None, *, run: Any = None, config: Any = None, **settings: Any
    ) -> None:
        self._cfg = cfg
        self._overrides = settings
        self.settings = TrackSettings.from_config(cfg, **settings)  # fail early on bad settings
        self._given_run = run
        self._config = config
        self._session: Session | None = None

    @property
    def run(self) -> Any:
        """The run of the current (or last) training; None before training and on other ranks."""
        return self._session.run if self._session is not None else None

    @property
    def session(self) -> Session | None:
        return self._session

    def before_train(self) -> None:
        cfg = self._cfg
        if cfg is None:
            cfg = getattr(self.trainer, "cfg", None)
            self.settings = TrackSettings.from_config(cfg, **self._overrides)
        config = self._config if self._config is not None else cfg
        self._session = Session(self.settings, config, self._given_run)
        self._session.start()
        if not self._session.active:
            return
        self._session.attach(self.trainer.storage)
        self._check_order()

    def _check_order(self) -> None:
        from detectron2.engine import hooks

        registered = list(getattr(self.trainer, "_hooks", ()))
        try:
            index = next(i for i, h in enumerate(registered) if h is self)
        except StopIteration:
            return
        later = [
            type(h).__name__
            for h in registered[index + 1 :]
            if isinstance(h, (hooks.EvalHook, hooks.PeriodicWriter))
        ]
        if later:
            logger.warning(
                "track-detectron2: TrackHook is registered before %s; register it last so that "
                "the final evaluation and a complete metrics.json are tracked",
                ", ".join(later),
            )

    def after_step(self) -> None:
        session = self._session
        if session is None or not session.active:
            return
        if (self.trainer.iter + 1) % self.settings.write_period == 0:
            session.write(self.trainer.storage)

    def after_train(self) -> None:
        session = self._session
        if session is None or not session.active:
            return
        trainer = self.trainer
        completed = None
        try:
            completed = int(trainer.iter) >= int(trainer.max_iter)
        except (AttributeError, TypeError, ValueError):
            pass
        session.finish(trainer.storage, completed)


class TrackWriter(EventWriter):  # type: ignore[misc]
    """The same tracking as a Detectron2 ``EventWriter``, for users who build their writers::

        writers = default_writers(cfg.OUTPUT_DIR, cfg.SOLVER.MAX_ITER)
        writers.append(TrackWriter(cfg))            # last: metrics.json is closed before it
        hooks.PeriodicWriter(writers, period=20)

    Takes the same arguments as ``TrackHook``, plus ``max_iter`` (default: ``SOLVER.MAX_ITER`` /
    ``train.max_iter``) used at ``close()`` to tell a finished training from a failed one. The
    run is opened at the first ``write()`` on the main process. Images and histograms put before
    that first write are only seen if no ``TensorboardXWriter`` before it in the list cleared them;
    ``TrackHook`` has no such gap.
    """

    def __init__(
        self,
        cfg: Any = None,
        *,
        run: Any = None,
        config: Any = None,
        max_iter: int | None = None,
        **settings: Any,
    ) -> None:
        self.settings = TrackSettings.from_config(cfg, **settings)
        self._session = Session(self.settings, config if config is not None else cfg, run)
        self._max_iter = max_iter if max_iter is not None else _max_iter_of(cfg)
        self._started = False
        self._storage: Any = None

    @property
    def run(self) -> Any:
        return self._session.run

    @property
    def session(self) -> Session:
        return self._session

    def write(self) -> None:
        storage = get_event_storage()
        if not self._started:
            self._started = True
            self._session.start()
        if not self._session.active:
            return
        if storage is not self._storage:
            self._storage = storage
            self._session.attach(storage)
        self._session.write(storage)

    def close(self) -> None:
        if not self._session.active:
            return
        storage = self._storage
        completed = None
        if storage is not None and self._max_iter is not None:
            completed = int(storage.iter) >= self._max_iter
        self._session.finish(storage, completed)
        self._storage = None
