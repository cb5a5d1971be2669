"""LazyConfig (OmegaConf) configs: params, settings node, a LazyConfig-style training script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import d2_helpers
import pytest
import torch
import yaml
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, instantiate
from omegaconf import OmegaConf

import track_core as track
from track_detectron2 import TrackHook, TrackSettings, add_track_config, config_to_params


def test_model_zoo_lazyconfig_as_params() -> None:
    cfg = LazyConfig.load(
        model_zoo.get_config_file("new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py")
    )
    params = config_to_params(cfg)
    assert params["model"]["_target_"] == "detectron2.modeling.meta_arch.rcnn.GeneralizedRCNN"
    assert params["train"]["max_iter"] == cfg.train.max_iter
    assert params["optimizer"]["lr"] == cfg.optimizer.lr
    assert track.to_params(params) == params  # plain data all the way down


def test_add_track_config_to_lazyconfig() -> None:
    cfg = OmegaConf.create({"train": {"output_dir": "/tmp/out", "max_iter": 10}})
    add_track_config(cfg)
    cfg.track.backend = "memory:lazy"
    cfg.track.tags = ["lazy"]
    settings = TrackSettings.from_config(cfg)
    assert settings.backend == "memory:lazy"
    assert settings.tags == ("lazy",)
    assert settings.output_dir == "/tmp/out"
    assert settings.write_period == 20
    assert settings.writer_process is None


def test_writer_process_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACK_WRITER_PROCESS", raising=False)
    assert TrackSettings().writer_options().process == "auto"
    monkeypatch.setenv("TRACK_WRITER_PROCESS", "off")
    assert TrackSettings().writer_options().process == "off"  # the environment, for debugging
    assert TrackSettings(writer_process="on").writer_options().process == "on"
    cfg = OmegaConf.create({"train": {"output_dir": "/tmp/out"}})
    add_track_config(cfg)
    cfg.track.writer_process = "on"
    assert TrackSettings.from_config(cfg).writer_options().process == "on"
    with pytest.raises(ValueError, match="'off', 'on' or 'auto'"):
        TrackSettings(writer_process="sometimes")


def _params_of(model: Any) -> Any:
    return model.parameters()


def test_lazyconfig_training_script(tmp_path: Path) -> None:
    """The shape of tools/lazyconfig_train_net.py, with TrackHook added last."""
    from detectron2.engine import AMPTrainer, SimpleTrainer, hooks
    from detectron2.engine.defaults import default_writers

    cfg = OmegaConf.create()
    cfg.model = L(d2_helpers.SmallModel)(n_losses=3, width=16)
    cfg.optimizer = L(torch.optim.SGD)(params=L(_params_of)(model=None), lr=0.01, momentum=0.9)
    cfg.train = dict(output_dir=str(tmp_path), max_iter=6, log_period=2, amp=dict(enabled=False))
    add_track_config(cfg)
    cfg.track.backend = "memory:lazy-train"
    cfg.track.run_name = "lazy"

    model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(
        model, d2_helpers.synthetic_batches(n_losses=3), optimizer
    )
    hook = TrackHook(cfg)
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.PeriodicWriter(
                default_writers(cfg.train.output_dir, cfg.train.max_iter),
                period=cfg.train.log_period,
            ),
            hook,
        ]
    )
    trainer.train(0, cfg.train.max_iter)

    run = track.open_run(hook.run.id, "memory:lazy-train")
    assert run.status is track.Status.FINISHED and run.name == "lazy"
    params = run["config"]
    assert params["model"] == {"_target_": "d2_helpers.SmallModel", "n_losses": 3, "width": 16}
    assert params["optimizer"]["_target_"] == "torch.optim.sgd.SGD"
    assert params["optimizer"]["params"]["model"] == "<d2_helpers.SmallModel object>" or params[
        "optimizer"
    ]["params"]["model"].startswith("SmallModel(")
    assert params["train"]["max_iter"] == 6 and params["track"]["run_name"] == "lazy"
    assert {"config.yaml", "metrics.json"} <= set(run.artifacts())
    dumped = yaml.unsafe_load(run.artifact_bytes("config.yaml"))
    assert dumped["train"]["max_iter"] == 6
    assert [p.step for p in run.sequence("loss_2", {"subset": "train"}).points()] == list(range(6))


@pytest.mark.parametrize("trainer_name", ["SimpleTrainer", "AMPTrainer"])
def test_plain_trainers(trainer_name: str, recording_backend: Any) -> None:
    from detectron2 import engine

    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    if trainer_name == "AMPTrainer" and not torch.cuda.is_available():
        pytest.skip("Detectron2 v0.6's AMPTrainer asserts CUDA")
    trainer = getattr(engine, trainer_name)(model, d2_helpers.synthetic_batches(), opt)
    hook = TrackHook(backend=recording_backend)
    trainer.register_hooks([hook])
    trainer.train(0, 3)
    run = track.open_run(hook.run.id, recording_backend)
    assert [p.step for p in run.sequence("total_loss", {"subset": "train"}).points()] == [0, 1, 2]
