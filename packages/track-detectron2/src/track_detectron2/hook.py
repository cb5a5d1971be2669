"""``TrackHook`` (a Detectron2 ``HookBase``) and ``TrackWriter`` (a Detectron2 ``EventWriter``)."""

from __future__ import annotations

import concurrent.futures
import logging
import weakref
from typing import Any

from detectron2.engine import HookBase  # type: ignore[import-untyped]
from detectron2.utils.events import (  # type: ignore[import-untyped]
    EventWriter,
    get_event_storage,
)

from track_detectron2.session import Session
from track_detectron2.settings import TrackSettings, _lookup

logger = logging.getLogger(__name__)


#: How long the hook waits for a trainer's metrics executor (async_write_metrics) to drain.
EXECUTOR_TIMEOUT = 300.0


def _nothing() -> None:
    pass


def wait_for_async_metrics(trainer: Any, timeout: float = EXECUTOR_TIMEOUT) -> None:
    """Wait until the metrics a trainer writes from its executor are in its storage.

    Detectron2's ``SimpleTrainer(async_write_metrics=True)`` (after v0.6) puts each iteration's
    losses from a one-thread ``concurrent_executor``, and waits for it only after the hooks'
    ``after_train``. Its tasks run in order: once a no-op submitted now has run, every earlier
    one has. ``DefaultTrainer`` keeps its ``SimpleTrainer`` / ``AMPTrainer`` as ``_trainer``.
    """
    seen: set[int] = set()
    for owner in (trainer, getattr(trainer, "_trainer", None)):
        if owner is None or not getattr(owner, "async_write_metrics", False):
            continue
        executor = getattr(owner, "concurrent_executor", None)
        if executor is None or id(executor) in seen:
            continue
        seen.add(id(executor))
        try:
            executor.submit(_nothing).result(timeout=timeout)
        except RuntimeError:  # shut down: shutdown(wait=True) already waited for its work
            pass
        except concurrent.futures.TimeoutError:
            logger.warning(
                "track-detectron2: the trainer's metrics executor did not finish within %.0f s; "
                "the values it has not put yet are not tracked",
                timeout,
            )


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
    ``write_period`` iterations, after the last iteration's step and at the end; each value is
    logged once, at the iteration it was recorded. The hook must come after ``EvalHook`` (so the
    final evaluation is in the run) and after ``PeriodicWriter`` (so metrics.json is complete
    when uploaded): appending it with ``register_hooks`` does both. If a hook before it raises
    in ``after_train`` (the final evaluation), the run still gets its artifacts and ends FAILED
    with that error: the hook wraps that trainer's ``after_train`` for the time of ``train()``.
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
        self._guard_after_train()

    def _guard_after_train(self) -> None:
        """Finish the run if the trainer's ``after_train`` raises before this hook's ran.

        ``TrainerBase.after_train`` calls the hooks in order and stops at the first one that
        raises (``EvalHook``'s final evaluation, which must come before this hook). The wrapper,
        set on that trainer object (not its class) and removed when it returns, ends the run
        with the error and uploads the artifacts, then lets the error go on. It holds the trainer
        and the hook weakly, as Detectron2's hooks hold their trainer.
        """
        try:
            bound = self.trainer.after_train
            owner, function = bound.__self__, bound.__func__
        except AttributeError:  # not a method of the trainer (someone else's wrapper): leave it
            return
        owner_ref = weakref.ref(owner)
        hook_ref = weakref.ref(self)

        def after_train() -> None:
            trainer = owner_ref()
            try:
                function(trainer)
            except BaseException as error:
                hook = hook_ref()
                if hook is not None:
                    hook._finish_after(error)
                raise
            finally:
                if trainer is not None and vars(trainer).get("after_train") is after_train:
                    del trainer.after_train

        owner.after_train = after_train

    def _finish_after(self, error: BaseException) -> None:
        session = self._session
        if session is None or not session.active:
            return
        logger.warning(
            "track-detectron2: a hook before TrackHook raised in after_train (%s); "
            "the run ends %s with it",
            type(error).__name__,
            "killed" if isinstance(error, KeyboardInterrupt) else "failed",
        )
        try:
            wait_for_async_metrics(self.trainer)
        finally:
            session.finish(self.trainer.storage, None, error=error)

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
        trainer = self.trainer
        following = trainer.iter + 1
        max_iter = getattr(trainer, "max_iter", None)
        if max_iter is not None and following >= max_iter:
            # The last iteration: its values are stored now, whatever after_train does.
            wait_for_async_metrics(trainer)
            session.write(trainer.storage)
        elif following % self.settings.write_period == 0:
            session.write(trainer.storage)

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
        try:
            wait_for_async_metrics(trainer)
        finally:
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
