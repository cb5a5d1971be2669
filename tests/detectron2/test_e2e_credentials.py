"""A credentialed backend string in the config never reaches the run: a real ``mlflow server``
that asks for that password (basic auth), a real DefaultTrainer set up by ``default_setup`` (which
logs the command line and writes config.yaml) and a LazyConfig training; every param, tag,
artifact, the run's texts and the server's own store are read back and the password is nowhere.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import d2_helpers
import pytest
import torch

from track_detectron2 import TrackHook, add_track_config

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::track_core.NonFiniteValueWarning"),
]

USER = "alice"
SECRET = "s3cret-pw-2026"  # MLflow asks an admin password of 12 characters or more


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("track_mlflow")
    from track_mlflow.testing import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow-auth"), admin=(USER, SECRET)) as running:
        yield running


#: A basic-auth server checks the password hash on every request: slow on a loaded machine.
OPTIONS = "?http_timeout=120"


def _backend(server: Any) -> str:
    return f"mlflow:http://{USER}:{SECRET}@127.0.0.1:{server.port}{OPTIONS}"


def _redacted(server: Any) -> str:
    return f"mlflow:http://127.0.0.1:{server.port}{OPTIONS}"


def _client(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    return MlflowClient(server.url)


def _everything_stored(client: Any, run_id: str, tmp_path: Path) -> dict[str, bytes]:
    """Every param, tag, run text and artifact (downloaded) of the run, by where it is."""
    run = client.get_run(run_id)
    found: dict[str, bytes] = {}
    for key, value in run.data.params.items():
        found[f"param {key}"] = f"{key}={value}".encode()
    for key, value in run.data.tags.items():
        found[f"tag {key}"] = f"{key}={value}".encode()
    found["run name"] = str(run.info.run_name).encode()
    pending: list[str | None] = [None]
    download = tmp_path / "downloaded"
    while pending:
        for info in client.list_artifacts(run_id, pending.pop()):
            if info.is_dir:
                pending.append(info.path)
            else:
                local = client.download_artifacts(run_id, info.path, str(download))
                found[f"artifact {info.path}"] = Path(local).read_bytes()
    return found


def _server_files(server: Any) -> dict[str, bytes]:
    """The server's store (its database and artifact files), not its own auth config."""
    files = {}
    for path in Path(server.directory).rglob("*"):
        if path.is_file() and not path.name.startswith("basic_auth") and path.suffix != ".log":
            files[str(path)] = path.read_bytes()
    return files


def _no_secret(where: dict[str, bytes]) -> None:
    leaks = [name for name, data in where.items() if SECRET.encode() in data]
    assert not leaks, leaks


@pytest.fixture
def track_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="track_detectron2")
    caplog.set_level(logging.DEBUG, logger="track_core")
    caplog.set_level(logging.DEBUG, logger="track_mlflow")
    return caplog


def test_default_trainer_with_default_setup(
    server: Any,
    make_cfg: Any,
    trainer_cls: type,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    track_logs: pytest.LogCaptureFixture,
    recwarn: pytest.WarningsRecorder,
) -> None:
    from detectron2.config import get_cfg
    from detectron2.engine import default_argument_parser, default_setup

    cfg = make_cfg()
    cfg.TRACK.EXPERIMENT = "credentials"
    cfg.TRACK.RUN_NAME = "faster-rcnn"
    # as on the command line of tools/train_net.py: default_setup logs it into log.txt
    args = default_argument_parser().parse_args(["TRACK.BACKEND", _backend(server)])
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    loggers = [logging.getLogger(name) for name in ("detectron2", "fvcore")]
    saved = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    try:
        default_setup(cfg, args)
        output = Path(cfg.OUTPUT_DIR)
        assert SECRET in (output / "log.txt").read_text()  # Detectron2's own log has it
        torch.manual_seed(0)
        trainer = trainer_cls(cfg)
        trainer.resume_or_load(resume=False)
        hook = TrackHook(cfg)
        trainer.register_hooks([hook])
        trainer.train()
    finally:  # default_setup's setup_logger added handlers and stopped propagation
        for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            for handler in lg.handlers[:]:
                if handler not in handlers:
                    lg.removeHandler(handler)
                    handler.close()
            lg.propagate, lg.level = propagate, level

    client = _client(server, monkeypatch)
    stored = client.get_run(hook.run.id)
    assert stored.info.status == "FINISHED"  # it authenticated: the server refuses anonymous
    assert stored.data.params["config.SOLVER.MAX_ITER"] == "4"
    assert stored.data.params["config.TRACK.BACKEND"] == _redacted(server)
    assert client.get_metric_history(hook.run.id, "total_loss :: subset: train")
    everything = _everything_stored(client, hook.run.id, tmp_path)
    assert {"artifact config.yaml", "artifact metrics.json", "artifact log.txt"} <= set(everything)
    assert b"Command line arguments" in everything["artifact log.txt"]
    _no_secret(everything)
    _no_secret(_server_files(server))
    assert not [r.getMessage() for r in track_logs.records if SECRET in r.getMessage()]
    assert not [str(w.message) for w in recwarn if SECRET in str(w.message)]

    # the config.yaml default_setup wrote loads into a plain config (no TRACK node in it)
    loaded = get_cfg()
    loaded.merge_from_file(str(Path(cfg.OUTPUT_DIR) / "config.yaml"))
    assert loaded.SOLVER.MAX_ITER == 4 and "TRACK" not in loaded


def _params_of(model: Any) -> Any:
    return model.parameters()


def test_lazyconfig(
    server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    track_logs: pytest.LogCaptureFixture,
) -> None:
    from detectron2.config import LazyCall as L
    from detectron2.config import instantiate
    from detectron2.engine import SimpleTrainer, hooks
    from detectron2.engine.defaults import default_writers
    from omegaconf import OmegaConf

    cfg = OmegaConf.create()
    cfg.model = L(d2_helpers.SmallModel)(n_losses=3, width=16)
    cfg.optimizer = L(torch.optim.SGD)(params=L(_params_of)(model=None), lr=0.01)
    cfg.train = dict(output_dir=str(tmp_path / "out"), max_iter=6, log_period=2)
    os.makedirs(cfg.train.output_dir)
    add_track_config(cfg)
    cfg.track.backend = _backend(server)
    cfg.track.experiment = "credentials-lazy"
    cfg.track.upload = ["config", "metrics", "*.yaml"]
    # a LazyConfig dump in the output directory, as default_setup writes it
    from detectron2.config import LazyConfig

    LazyConfig.save(cfg, os.path.join(cfg.train.output_dir, "lazy.yaml"))

    model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(n_losses=3), instantiate(cfg.optimizer)
    )
    hook = TrackHook(cfg)
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.PeriodicWriter(default_writers(cfg.train.output_dir, 6), period=2),
            hook,
        ]
    )
    trainer.train(0, 6)

    client = _client(server, monkeypatch)
    stored = client.get_run(hook.run.id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params["config.track.backend"] == _redacted(server)
    everything = _everything_stored(client, hook.run.id, tmp_path)
    assert {"artifact config.yaml", "artifact metrics.json", "artifact lazy.yaml"} <= set(
        everything
    )
    assert b"track" in everything["artifact lazy.yaml"]
    _no_secret(everything)
    _no_secret(_server_files(server))
    assert not [r.getMessage() for r in track_logs.records if SECRET in r.getMessage()]
