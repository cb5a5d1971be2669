"""A DefaultTrainer that diverges (Detectron2 raises FloatingPointError): the run ends FAILED."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import track_core as track
from track_detectron2 import TrackHook

pytestmark = pytest.mark.filterwarnings("ignore::track_core.NonFiniteValueWarning")


def test_diverging_training_fails_the_run(
    make_cfg: Any, trainer_cls: type, recording_backend: Any
) -> None:
    # From random weights, BASE_LR = 1e-3 makes the losses explode within a few iterations.
    cfg = make_cfg(base_lr=1e-3, max_iter=30, eval_period=0)
    torch.manual_seed(0)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=False)
    trainer.register_hooks([TrackHook(cfg, backend=recording_backend, write_period=1)])
    with pytest.raises(FloatingPointError):
        trainer.train()
    runs = recording_backend.list_runs()
    assert len(runs) == 1
    run = track.open_run(runs[0].id, recording_backend)
    assert run.status is track.Status.FAILED
    assert run.error is not None
    assert "FloatingPointError" in run.error
    assert "diverged" in run.error
    # what was logged before the failure is there, and the output files were uploaded
    losses = run.sequence("total_loss", {"subset": "train"}).points()
    assert losses and losses[-1].step < cfg.SOLVER.MAX_ITER - 1
    assert "config.yaml" in run.artifacts()
    assert max(recording_backend.counts.values()) == 1


def test_keyboard_interrupt_is_killed(make_cfg: Any, recording_backend: Any) -> None:
    import d2_helpers
    from detectron2.engine import HookBase, SimpleTrainer

    class Interrupt(HookBase):  # type: ignore[misc]
        def after_step(self) -> None:
            if self.trainer.iter == 2:
                raise KeyboardInterrupt

    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    hook = TrackHook(backend=recording_backend, config={"lr": 0.01})
    trainer.register_hooks([Interrupt(), hook])
    with pytest.raises(KeyboardInterrupt):
        trainer.train(0, 10)
    run = track.open_run(hook.run.id, recording_backend)
    assert run.status is track.Status.KILLED
    assert run["config"] == {"lr": 0.01}
