"""A small real training run, tracked with track.

A two-layer numpy network learns to tell two spirals apart (400 steps of mini-batch gradient
descent). It tracks params, the loss on the training and validation sets (one name, two
contexts), the accuracy, a distribution of the weights, an image of the decision regions and a
text summary, to the default backend: ``$TRACK_BACKEND`` when set, else a local Aim repository in
the working directory.

    python demo/train.py [--steps 400] [--backend aim:./aim-demo]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import track_core as track


def spirals(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals with noise: points (count, 2) and labels (count,)."""
    turns = np.sqrt(rng.uniform(0.05, 1.0, count // 2)) * 3 * np.pi
    first = np.stack([turns * np.cos(turns), turns * np.sin(turns)], axis=1)
    points = np.concatenate([first, -first]) / (3 * np.pi) + rng.normal(0, 0.04, (count, 2))
    labels = np.concatenate([np.zeros(count // 2), np.ones(count // 2)])
    return points.astype(np.float64), labels


class Network:
    """2 -> hidden (tanh) -> 1 (sigmoid), trained with plain gradient descent."""

    def __init__(self, hidden: int, rng: np.random.Generator) -> None:
        self.w1 = rng.normal(0, 1.0, (2, hidden))
        self.b1 = np.zeros(hidden)
        self.w2 = rng.normal(0, 1.0 / np.sqrt(hidden), (hidden, 1))
        self.b2 = np.zeros(1)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = np.tanh(x @ self.w1 + self.b1)
        return hidden, 1 / (1 + np.exp(-(hidden @ self.w2 + self.b2)[:, 0]))

    def loss_and_accuracy(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        _, p = self.forward(x)
        p = np.clip(p, 1e-7, 1 - 1e-7)
        loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        return float(loss), float(np.mean((p > 0.5) == y))

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> None:
        hidden, p = self.forward(x)
        grad_out = (p - y)[:, None] / len(y)
        grad_hidden = grad_out @ self.w2.T * (1 - hidden**2)
        self.w2 -= lr * hidden.T @ grad_out
        self.b2 -= lr * grad_out.sum(axis=0)
        self.w1 -= lr * x.T @ grad_hidden
        self.b1 -= lr * grad_hidden.sum(axis=0)

    def decision_image(self, size: int = 96) -> np.ndarray:
        grid = np.linspace(-1.3, 1.3, size)
        xx, yy = np.meshgrid(grid, grid)
        _, p = self.forward(np.stack([xx.ravel(), yy.ravel()], axis=1))
        p = p.reshape(size, size)
        return np.stack([p, 0.2 * np.ones_like(p), 1 - p], axis=-1)  # HWC floats in [0, 1]


def where_to_look(backend: str) -> str:
    name, _, location = backend.partition(":")
    if name == "aim":
        if location.startswith("//"):
            return f"Runs are on the Aim server aim:{location}; open its UI to see them."
        repo = Path(location or ".").resolve()
        return (
            f"Runs are in the Aim repository {repo / '.aim'}.\nOpen them with: aim up --repo {repo}"
        )
    if name == "mlflow":
        uri = location or "sqlite:///mlflow.db"
        return f"Runs are in MLflow at {uri}.\nOpen them with: mlflow ui --backend-store-uri {uri}"
    return f"Runs are in the {name} backend ({backend})."


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--backend", default=os.environ.get("TRACK_BACKEND") or "aim")
    arguments = parser.parse_args()
    hparams = {"hidden": 32, "lr": 0.5, "batch_size": 64, "steps": arguments.steps, "seed": 0}
    rng = np.random.default_rng(hparams["seed"])
    train_x, train_y = spirals(1024, rng)
    val_x, val_y = spirals(256, rng)
    model = Network(hparams["hidden"], rng)

    with track.start_run(
        arguments.backend,
        experiment="demo-spirals",
        name="two-layer-mlp",
        description="numpy MLP on two spirals",
        tags=["demo"],
    ) as run:
        run["hparams"] = hparams
        batches_per_epoch = len(train_x) // hparams["batch_size"]
        for step in range(arguments.steps):
            epoch = step // batches_per_epoch
            pick = rng.integers(0, len(train_x), hparams["batch_size"])
            model.step(train_x[pick], train_y[pick], hparams["lr"])
            loss, accuracy = model.loss_and_accuracy(train_x[pick], train_y[pick])
            run.track(loss, "loss", step=step, epoch=epoch, context={"subset": "train"})
            run.track(accuracy, "accuracy", step=step, epoch=epoch, context={"subset": "train"})
            if step % 20 == 0 or step == arguments.steps - 1:
                val_loss, val_accuracy = model.loss_and_accuracy(val_x, val_y)
                run.track(val_loss, "loss", step=step, epoch=epoch, context={"subset": "val"})
                run.track(
                    val_accuracy, "accuracy", step=step, epoch=epoch, context={"subset": "val"}
                )
                run.track(
                    track.Distribution(model.w1), "weights", step=step, context={"layer": "hidden"}
                )
            if step % 100 == 0 or step == arguments.steps - 1:
                picture = track.Image(
                    model.decision_image(), caption=f"decision regions, step {step}"
                )
                run.track(picture, "decision_regions", step=step)
        run.track(
            track.Text(f"final validation loss {val_loss:.4f}, accuracy {val_accuracy:.3f}"),
            "summary",
        )

    print(f"Tracked run {run.id}: validation loss {val_loss:.4f}, accuracy {val_accuracy:.3f}.")
    print(where_to_look(arguments.backend))


if __name__ == "__main__":
    main()
