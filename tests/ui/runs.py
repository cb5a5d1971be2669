"""One small training run, made twice: through track, and by hand through the backend's own SDK,
as a user of that SDK would write it. The UI tests compare what the two look like."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import track_core as track
from track_core import system_metrics

EXPERIMENT = "ui-check"
DESCRIPTION = "A small run to look at in the UI"
TAG = "baseline"
HPARAMS: dict[str, Any] = {
    "lr": 0.01,
    "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
    "layers": [64, 64],
}
STEPS = 12
NOTES = "the notes of this run"


def loss(step: int, subset: str) -> float:
    return 1.0 / (step + 1) + (0.1 if subset == "val" else 0.0)


def accuracy(step: int) -> float:
    return 0.5 + step / (2 * STEPS)


def picture() -> np.ndarray:
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16, 0] = 255
    image[16:, :, 2] = 200
    return image


def samples() -> np.ndarray:
    return np.random.default_rng(0).normal(size=1000)


def by_track(backend: str, name: str = "by-track", sample_for: float = 1.0) -> str:
    """The run through track, with system metrics; returns its id."""
    with track.start_run(
        backend, experiment=EXPERIMENT, name=name, description=DESCRIPTION, tags=[TAG]
    ) as run:
        sampler = system_metrics.start_sampler(run, interval=0.2)
        run["hparams"] = HPARAMS
        for step in range(STEPS):
            for subset in ("train", "val"):
                run.track(loss(step, subset), "loss", step=step, context={"subset": subset})
            run.track(accuracy(step), "accuracy", step=step, context={"subset": "val"})
        run.track(track.Image(picture(), caption="sample"), "inputs", step=0)
        run.track(track.Text(NOTES), "notes", step=0)
        run.track(track.Distribution(samples()), "weights", step=0)
        time.sleep(sample_for)
        sampler.stop()
        return run.id


def by_aim(repo: str, name: str = "by-aim") -> str:
    """The same run through ``aim.Run`` (its own system metrics on, sampled at 0.2 s)."""
    import aim

    run = aim.Run(repo=repo, experiment=EXPERIMENT, system_tracking_interval=0.2)
    run.name = name
    run.description = DESCRIPTION
    run.add_tag(TAG)
    run["hparams"] = HPARAMS
    for step in range(STEPS):
        for subset in ("train", "val"):
            run.track(loss(step, subset), name="loss", step=step, context={"subset": subset})
        run.track(accuracy(step), name="accuracy", step=step, context={"subset": "val"})
    run.track(aim.Image(picture(), caption="sample"), name="inputs", step=0)
    run.track(aim.Text(NOTES), name="notes", step=0)
    run.track(aim.Distribution(samples()), name="weights", step=0)
    time.sleep(1.0)
    run_hash = str(run.hash)
    run.close()
    return run_hash


def by_mlflow(tracking_uri: str, name: str = "by-mlflow") -> str:
    """The same run through the MLflow client, written the way MLflow's docs show: flattened
    params, ``train/loss``-style keys, ``log_image``, ``log_text``, ``log_system_metrics``."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    mlflow.set_system_metrics_sampling_interval(0.5)
    with mlflow.start_run(
        run_name=name, description=DESCRIPTION, tags={TAG: ""}, log_system_metrics=True
    ) as active:
        mlflow.log_params(
            {
                "lr": HPARAMS["lr"],
                "optimizer.name": HPARAMS["optimizer"]["name"],
                "optimizer.betas": HPARAMS["optimizer"]["betas"],
                "layers": HPARAMS["layers"],
            }
        )
        for step in range(STEPS):
            mlflow.log_metrics(
                {
                    "train/loss": loss(step, "train"),
                    "val/loss": loss(step, "val"),
                    "val/accuracy": accuracy(step),
                },
                step=step,
            )
        mlflow.log_image(picture(), key="inputs", step=0)
        mlflow.log_text(NOTES, "notes.txt")
        time.sleep(1.5)
        return str(active.info.run_id)
