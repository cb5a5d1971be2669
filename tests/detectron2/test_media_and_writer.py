"""SimpleTrainer: images and histograms (shared with TensorBoard), TrackWriter, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import d2_helpers
import numpy as np
import pytest
import torch
from detectron2.engine import HookBase, SimpleTrainer, hooks
from detectron2.utils.events import JSONWriter, TensorboardXWriter

import track_core as track
from track_detectron2 import TrackHook, TrackSettings, TrackWriter, add_track_config


class PutMedia(HookBase):  # type: ignore[misc]
    """Puts one image and one histogram per step, as visualize_training / users do."""

    def after_step(self) -> None:
        storage = self.trainer.storage
        image = np.zeros((3, 8, 8), dtype=np.uint8)
        image[:, : self.trainer.iter % 8] = 255
        storage.put_image("vis/squares", image)
        storage.put_histogram("weights/body0", self.trainer.model.body[0].weight.detach().flatten())


def _trainer(tmp_path: Path, track_hook: Any, max_iter: int, tb: bool = True) -> SimpleTrainer:
    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    writers = [JSONWriter(str(tmp_path / "metrics.json"))]
    if tb:
        writers.append(TensorboardXWriter(str(tmp_path / "tb")))
    trainer.register_hooks(
        [hooks.IterationTimer(), PutMedia(), hooks.PeriodicWriter(writers, period=2), track_hook]
    )
    return trainer


def _tensorboard_counts(log_dir: Path) -> tuple[int, int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    return len(acc.Images("vis/squares")), len(acc.Histograms("weights/body0"))


def test_images_and_histograms_without_stealing_them(
    tmp_path: Path, recording_backend: Any
) -> None:
    hook = TrackHook(backend=recording_backend, output_dir=str(tmp_path), write_period=5)
    trainer = _trainer(tmp_path, hook, max_iter=7)
    trainer.train(0, 7)
    run = track.open_run(hook.run.id, recording_backend)
    images = run.sequence("vis/squares", {"subset": "train"})
    assert images.kind is track.ValueKind.IMAGE
    assert [p.step for p in images.points()] == list(range(7))
    hist = run.sequence("weights/body0", {"subset": "train"})
    assert hist.kind is track.ValueKind.DISTRIBUTION
    assert [p.step for p in hist.points()] == list(range(7))
    value = hist.points()[0].value
    assert isinstance(value, track.Distribution) and sum(value.counts) == 32 * 64
    # Detectron2's TensorBoard writer still got every image and histogram
    assert _tensorboard_counts(tmp_path / "tb") == (7, 7)
    assert max(recording_backend.counts.values()) == 1
    assert set(run.artifacts()) == {"metrics.json"}  # no config given, no log.txt in tmp_path


def test_simple_trainer_scalars_match_metrics_json(tmp_path: Path, recording_backend: Any) -> None:
    import json

    hook = TrackHook(
        backend=recording_backend,
        output_dir=str(tmp_path),
        write_period=7,
        log_images=False,
        log_histograms=False,
        upload=["metrics", "*.json"],
    )
    _trainer(tmp_path, hook, max_iter=25, tb=False).train(0, 25)
    run = track.open_run(hook.run.id, recording_backend)
    seen = 0
    for line in (tmp_path / "metrics.json").read_text().splitlines():
        record = json.loads(line)
        iteration = record.pop("iteration")
        for key, value in record.items():
            points = {p.step: p.value for p in run.sequence(key, {"subset": "train"}).points()}
            assert points[iteration] == pytest.approx(value, rel=1e-12), (key, iteration)
            seen += 1
    assert seen > 20
    assert [p.step for p in run.sequence("loss_0", {"subset": "train"}).points()] == list(range(25))
    assert "vis/squares" not in {s.name for s in run.sequences()}
    assert run.artifacts() == ["metrics.json"]


def test_raw_values_with_window_size_1(tmp_path: Path, recording_backend: Any) -> None:
    hook = TrackHook(
        backend=recording_backend, window_size=1, log_images=False, log_histograms=False
    )
    trainer = _trainer(tmp_path, hook, max_iter=5, tb=False)
    trainer.train(0, 5)
    history = trainer.storage.history("total_loss").values()
    run = track.open_run(hook.run.id, recording_backend)
    logged = [(p.value, p.step) for p in run.sequence("total_loss", {"subset": "train"}).points()]
    assert logged == [(float(v), int(i)) for v, i in history]


def test_track_writer_in_a_writer_list(tmp_path: Path, recording_backend: Any) -> None:
    writer = TrackWriter(
        backend=recording_backend,
        output_dir=str(tmp_path),
        max_iter=6,
        run_name="writer",
        config={"model": "small"},
    )
    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            PutMedia(),
            hooks.PeriodicWriter([JSONWriter(str(tmp_path / "metrics.json")), writer], period=4),
        ]
    )
    trainer.train(0, 6)
    run = track.open_run(writer.run.id, recording_backend)
    assert run.status is track.Status.FINISHED
    assert run.name == "writer"
    assert run["config"] == {"model": "small"}
    assert [p.step for p in run.sequence("loss_1", {"subset": "train"}).points()] == list(range(6))
    assert [p.step for p in run.sequence("vis/squares", {"subset": "train"}).points()] == list(
        range(6)
    )
    assert "metrics.json" in run.artifacts()


def test_upload_model(make_cfg: Any, recording_backend: Any, tmp_path: Path) -> None:
    (tmp_path / "model_final.pth").write_bytes(b"weights")
    hook = TrackHook(backend=recording_backend, output_dir=str(tmp_path), upload=["model"])
    _trainer(tmp_path, hook, max_iter=2, tb=False).train(0, 2)
    run = track.open_run(hook.run.id, recording_backend)
    assert run.artifacts() == ["model_final.pth"]
    assert run.artifact_bytes("model_final.pth") == b"weights"


def test_settings_from_cfg_and_keywords(make_cfg: Any) -> None:
    cfg = make_cfg()
    cfg.TRACK.BACKEND = "memory:x"
    cfg.TRACK.EXPERIMENT = "exp"
    cfg.TRACK.TAGS = ["a"]
    cfg.TRACK.UPLOAD = ["config", "model"]
    cfg.TRACK.WRITE_PERIOD = 5
    settings = TrackSettings.from_config(cfg, experiment="override", window_size=1)
    assert settings.backend == "memory:x"
    assert settings.experiment == "override"
    assert settings.tags == ("a",)
    assert settings.upload == ("config", "model")
    assert settings.write_period == 5
    assert settings.window_size == 1
    assert settings.output_dir == cfg.OUTPUT_DIR
    assert TrackSettings.from_config(make_cfg()).backend is None  # "" -> $TRACK_BACKEND
    with pytest.raises(TypeError, match="unknown"):
        TrackSettings.from_config(cfg, bakend="aim")
    with pytest.raises(ValueError):
        TrackSettings.from_config(cfg, write_period=0)
    # merge_from_list works on the added node, as users override from the command line
    cfg.merge_from_list(["TRACK.RUN_NAME", "from-cli", "TRACK.LOG_IMAGES", "False"])
    assert TrackSettings.from_config(cfg).run_name == "from-cli"
    assert TrackSettings.from_config(cfg).log_images is False
    assert add_track_config(cfg).TRACK.RUN_NAME == "from-cli"  # idempotent, keeps values


def test_disabled_and_env_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = TrackHook(enabled=False)
    _trainer(tmp_path, hook, max_iter=2, tb=False).train(0, 2)
    assert hook.run is None or isinstance(hook.run, track.NoOpRun)
    monkeypatch.setenv("TRACK_BACKEND", "memory:from-env")
    hook = TrackHook(config={"a": 1})
    _trainer(tmp_path, hook, max_iter=2, tb=False).train(0, 2)
    run = track.open_run(hook.run.id, "memory:from-env")
    assert run["config"] == {"a": 1}
