"""A hook before TrackHook raises in ``after_train`` (the final evaluation of ``EvalHook``), so
TrackHook's ``after_train`` never runs; and trainers that put metrics from an executor thread.

The run must still hold every iteration's values, get its artifacts and end FAILED with the error
at once, also when the caller catches the exception (a sweep, a notebook).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import d2_helpers
import pytest
import torch
from detectron2.engine import HookBase, SimpleTrainer, hooks
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils.events import JSONWriter

import track_core as track
from track_detectron2 import TrackHook

TRAIN = {"subset": "train"}


class BrokenEvaluator(DatasetEvaluator):  # type: ignore[misc]
    """Runs through the test set, then fails, as an evaluator with a bad annotation file does."""

    def reset(self) -> None:
        self.seen = 0

    def process(self, inputs: Any, outputs: Any) -> None:
        self.seen += len(inputs)

    def evaluate(self) -> Any:
        raise RuntimeError(f"evaluation broke after {self.seen} images")


def _steps(run: Any, name: str) -> list[int]:
    return [p.step for p in run.sequence(name, TRAIN).points()]


def test_default_trainer_final_evaluation_raises(
    make_cfg: Any, trainer_cls: type, recording_backend: Any, output_dir: Path
) -> None:
    class Trainer(trainer_cls):  # type: ignore[misc, valid-type]
        @classmethod
        def build_evaluator(cls, cfg: Any, dataset_name: str, output_folder: Any = None) -> Any:
            return BrokenEvaluator()

    # EVAL_PERIOD=0: DefaultTrainer's EvalHook evaluates only after the last iteration, in its
    # after_train, which comes before TrackHook's (and before PeriodicWriter's).
    cfg = make_cfg(max_iter=10, eval_period=0)
    cfg.TRACK.WRITE_PERIOD = 7
    torch.manual_seed(0)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    hook = TrackHook(cfg, backend=recording_backend)
    trainer.register_hooks([hook])
    with pytest.raises(RuntimeError, match="evaluation broke"):
        trainer.train()  # the caller catches it: nothing else will close the run

    run = track.open_run(hook.run.id, recording_backend)
    assert run.status is track.Status.FAILED
    assert run.error is not None and "evaluation broke after 4 images" in run.error
    # every value of every iteration, including 7-9 after the last periodic read (at 6)
    for key, history in trainer.storage.histories().items():
        assert _steps(run, key) == sorted({int(i) for _, i in history.values()}), key
    assert _steps(run, "total_loss") == list(range(10))
    assert {"config.yaml", "metrics.json", "log.txt"} <= set(run.artifacts())
    assert max(recording_backend.counts.values()) == 1
    assert "after_train" not in vars(trainer)  # the wrapper is gone with train()


class RaisingEval(HookBase):  # type: ignore[misc]
    """``EvalHook``'s behaviour in brief: the final evaluation runs in after_train."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def after_train(self) -> None:
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            raise self._error


def _simple_trainer(tmp_path: Path, first: list[Any], hook: TrackHook) -> SimpleTrainer:
    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            *first,
            hooks.PeriodicWriter([JSONWriter(str(tmp_path / "metrics.json"))], period=5),
            hook,
        ]
    )
    return trainer


def test_simple_trainer_eval_hook_raises(tmp_path: Path, recording_backend: Any) -> None:
    def do_test() -> dict[str, float]:
        raise ValueError("no such dataset: val2")

    hook = TrackHook(
        backend=recording_backend, output_dir=str(tmp_path), write_period=7, config={"lr": 0.01}
    )
    trainer = _simple_trainer(tmp_path, [hooks.EvalHook(0, do_test)], hook)
    try:
        trainer.train(0, 20)
    except ValueError:
        pass  # a sweep goes on with the next trial
    assert hook.run.status is track.Status.FAILED  # at once, not at interpreter exit
    run = track.open_run(hook.run.id, recording_backend)
    assert run.status is track.Status.FAILED
    assert "ValueError" in (run.error or "") and "no such dataset: val2" in (run.error or "")
    assert _steps(run, "total_loss") == list(range(20))
    for key, history in trainer.storage.histories().items():  # losses, data_time, time
        assert _steps(run, key) == sorted({int(i) for _, i in history.values()}), key
    assert set(run.artifacts()) == {"config.yaml", "metrics.json"}
    assert max(recording_backend.counts.values()) == 1


def test_keyboard_interrupt_in_an_earlier_after_train_is_killed(
    tmp_path: Path, recording_backend: Any
) -> None:
    hook = TrackHook(backend=recording_backend, output_dir=str(tmp_path), write_period=7)
    trainer = _simple_trainer(tmp_path, [RaisingEval(KeyboardInterrupt())], hook)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(0, 9)
    run = track.open_run(hook.run.id, recording_backend)
    assert run.status is track.Status.KILLED
    assert _steps(run, "total_loss") == list(range(9))


def test_a_hook_after_ours_raising_leaves_the_finished_run(
    tmp_path: Path, recording_backend: Any
) -> None:
    hook = TrackHook(backend=recording_backend, output_dir=str(tmp_path), write_period=7)
    trainer = _simple_trainer(tmp_path, [], hook)
    trainer.register_hooks([RaisingEval(RuntimeError("late"))])
    with pytest.raises(RuntimeError, match="late"):
        trainer.train(0, 9)
    run = track.open_run(hook.run.id, recording_backend)
    assert run.status is track.Status.FINISHED  # the training and TrackHook's end completed
    assert _steps(run, "total_loss") == list(range(9))


# -- metrics put from an executor thread (async_write_metrics) --------------------------------


class ExecutorTrainer(SimpleTrainer):  # type: ignore[misc]
    """What ``SimpleTrainer(async_write_metrics=True)`` of the newest Detectron2 does, on v0.6:
    each iteration's losses are put by a one-thread ``concurrent_executor``, and ``after_train``
    runs the hooks' ``after_train`` before it waits for that executor. Its tasks are slow (the
    last one more so), so the last iteration's losses arrive after the hooks ran unless a hook
    waits. (v0.6's ``put_scalar`` has no ``cur_iter``: a task waits for the one before it.)
    """

    def __init__(self, *args: Any, delay: float = 0.2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_write_metrics = True
        self.concurrent_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._delay = delay
        self._pending: concurrent.futures.Future[None] | None = None

    def before_step(self) -> None:
        if self._pending is not None:
            self._pending.result()  # before storage.iter moves on
        super().before_step()

    def run_step(self) -> None:
        batch = next(self._data_loader_iter)
        losses = self.model(batch)
        total = sum(losses.values())
        self.optimizer.zero_grad()
        total.backward()
        values = {name: float(value) for name, value in losses.items()}
        last = self.iter == self.max_iter - 1
        self._pending = self.concurrent_executor.submit(self._put, values, total.item(), last)
        self.optimizer.step()

    def _put(self, values: dict[str, float], total: float, last: bool) -> None:
        time.sleep(self._delay if last else 0.001)
        storage = self.storage
        storage.put_scalars(total_loss=total, **values)

    def after_train(self) -> None:
        super().after_train()
        self.concurrent_executor.shutdown(wait=True)


def test_waits_for_the_trainer_s_metrics_executor(tmp_path: Path, recording_backend: Any) -> None:
    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = ExecutorTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    hook = TrackHook(backend=recording_backend, output_dir=str(tmp_path), write_period=4)
    trainer.register_hooks([hooks.IterationTimer(), hook])
    trainer.train(0, 10)
    run = track.open_run(hook.run.id, recording_backend)
    for name in ("total_loss", "loss_0", "loss_3"):
        assert _steps(run, name) == list(range(10)), name
    stored = {p.step: p.value for p in run.sequence("loss_1", TRAIN).points()}
    history = trainer.storage.history("loss_1").values()
    assert [int(i) for _, i in history] == list(range(10))
    assert stored[9] == pytest.approx(statistics.median([v for v, _ in history]))


@pytest.mark.skipif(
    "async_write_metrics" not in inspect.signature(SimpleTrainer.__init__).parameters,
    reason="SimpleTrainer(async_write_metrics=...) is newer than the installed Detectron2",
)
def test_async_write_metrics(tmp_path: Path, recording_backend: Any) -> None:
    """The newest Detectron2's own async_write_metrics: every iteration of every loss."""
    for attempt in range(2):
        torch.manual_seed(attempt)
        model = d2_helpers.SmallModel()
        trainer = SimpleTrainer(
            model,
            d2_helpers.synthetic_batches(),
            torch.optim.SGD(model.parameters(), lr=0.01),
            async_write_metrics=True,
        )
        out = tmp_path / str(attempt)
        out.mkdir()
        hook = TrackHook(backend=recording_backend, output_dir=str(out), write_period=20)
        trainer.register_hooks(
            [
                hooks.IterationTimer(),
                hooks.PeriodicWriter([JSONWriter(str(out / "metrics.json"))], period=20),
                hook,
            ]
        )
        trainer.train(0, 300)
        run = track.open_run(hook.run.id, recording_backend)
        for name in ("total_loss", "loss_0", "loss_1", "loss_2", "loss_3"):
            assert _steps(run, name) == list(range(300)), (attempt, name)
        lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
        assert os.path.getsize(out / "metrics.json") > 0 and lines
