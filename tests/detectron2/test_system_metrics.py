"""System metrics from the Detectron2 config (``cfg.TRACK.SYSTEM_METRICS``): sampled into the run
from a thread of their own while a real trainer trains (the memory backend's names,
``system/...``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import d2_helpers
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.engine import HookBase, SimpleTrainer

import track_core as track
from track_detectron2 import TrackHook, add_track_config
from track_detectron2.names import TRAIN_CONTEXT
from track_detectron2.settings import TrackSettings

pytest.importorskip("psutil")

SYSTEM = {"system/cpu_percent", "system/memory_percent", "system/process_memory_percent"}


class Slow(HookBase):  # type: ignore[misc]
    """A step that takes 20 ms, as a real one would, so that the run lasts long enough to be
    sampled a few times."""

    def after_step(self) -> None:
        time.sleep(0.02)


def _train(hook: TrackHook, iterations: int) -> None:
    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    trainer.register_hooks([Slow(), hook])
    trainer.train(0, iterations)


def _system_names(backend: Any, run_id: str) -> set[str]:
    reader = backend.read_run(run_id)
    return {info.name for info in reader.sequences() if info.name.startswith("system/")}


def test_cfg_track_system_metrics_samples_the_machine_into_the_run(
    tmp_path: Path, recording_backend: Any
) -> None:
    cfg = add_track_config(get_cfg())
    # as a command line sets them (``train_net.py ... TRACK.SYSTEM_METRICS True``): yacs checks
    # each value against the default's type
    cfg.merge_from_list(["TRACK.SYSTEM_METRICS", "True", "TRACK.SYSTEM_METRICS_INTERVAL", "0.1"])
    hook = TrackHook(
        cfg,
        backend=recording_backend,
        output_dir=str(tmp_path),
        log_images=False,
        log_histograms=False,
    )
    _train(hook, 40)
    run = track.open_run(hook.run.id, recording_backend)
    assert run.status is track.Status.FINISHED
    assert _system_names(recording_backend, hook.run.id) >= SYSTEM
    cpu = run.sequence("system/cpu_percent").points()
    assert cpu and all(0.0 <= point.value <= 100.0 for point in cpu)
    # the training's own scalars are there as always
    assert len(run.sequence("total_loss", TRAIN_CONTEXT).points()) == 40


def test_off_by_default(tmp_path: Path, recording_backend: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("TRACK_SYSTEM_METRICS", raising=False)
    hook = TrackHook(
        add_track_config(get_cfg()),
        backend=recording_backend,
        output_dir=str(tmp_path),
        log_images=False,
        log_histograms=False,
    )
    _train(hook, 10)
    assert _system_names(recording_backend, hook.run.id) == set()


def test_settings() -> None:
    cfg = add_track_config(get_cfg())
    assert TrackSettings.from_config(cfg).system_metrics_option() is None  # False: not asked
    cfg.TRACK.SYSTEM_METRICS = True
    assert TrackSettings.from_config(cfg).system_metrics_option() is True  # the default interval
    cfg.TRACK.SYSTEM_METRICS_INTERVAL = 2.5
    assert TrackSettings.from_config(cfg).system_metrics_option() == 2.5
    assert TrackSettings.from_config(cfg, system_metrics=False).system_metrics_option() is False
    assert TrackSettings(system_metrics=5).system_metrics_option() == 5
    with pytest.raises(ValueError, match="interval must be"):
        TrackSettings(system_metrics=True, system_metrics_interval=-1.0)
    with pytest.raises(TypeError, match="system_metrics must be"):
        TrackSettings(system_metrics="often")
