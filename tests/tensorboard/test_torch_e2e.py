"""The real writers in real torch training loops, captured by patch(), read back through Aim's
and MLflow's own SDKs; Lightning's TensorBoardLogger unchanged; event files imported twice."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")
tensorboardX = pytest.importorskip("tensorboardX")
pytest.importorskip("track_aim")
pytest.importorskip("track_mlflow")

from readers import event_scalars  # noqa: E402
from sdk_readers import Store, once_each  # noqa: E402
from torch.utils.tensorboard import SummaryWriter as TorchWriter  # noqa: E402

import track_core as track  # noqa: E402
import track_tensorboard  # noqa: E402

WRITERS = {"torch": TorchWriter, "tensorboardX": tensorboardX.SummaryWriter}
EPOCHS, BATCHES = 3, 4
HPARAMS = {"lr": 0.05, "optimizer": "sgd", "hidden": 16}


@pytest.fixture(params=["aim", "mlflow"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return Store(request.param, tmp_path)


def train(writer_cls: Any, log_dir: Path) -> dict[tuple[str, tuple[Any, ...]], dict[int, float]]:
    """A small classifier trained on random data, logging through ``writer_cls`` as user code
    does; returns the scalars it logged: ``{(name, context items): {step: value}}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=HPARAMS["lr"])
    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    logged: dict[tuple[str, tuple[Any, ...]], dict[int, float]] = {}
    writer = writer_cls(str(log_dir))
    step = 0
    for epoch in range(EPOCHS):
        for batch in range(BATCHES):
            xb, yb = x[batch * 16 : (batch + 1) * 16], y[batch * 16 : (batch + 1) * 16]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            writer.add_scalar("train/loss", loss.item(), step)
            logged.setdefault(("loss", (("subset", "train"),)), {})[step] = loss.item()
            step += 1
        with torch.no_grad():
            val_loss = nn.functional.cross_entropy(model(x), y)  # a tensor: the writer takes it
            accuracy = (model(x).argmax(1) == y).float().mean().item()
        writer.add_scalar("Loss/validation", val_loss, epoch)
        logged.setdefault(("loss", (("subset", "val"),)), {})[epoch] = val_loss.item()
        writer.add_scalars("accuracy", {"train": accuracy, "val": accuracy / 2}, epoch)
        logged.setdefault(("accuracy", (("subset", "train"),)), {})[epoch] = accuracy
        logged.setdefault(("accuracy", (("subset", "val"),)), {})[epoch] = accuracy / 2
        for name, parameter in model.named_parameters():
            writer.add_histogram(f"weights/{name}", parameter, epoch)
        writer.add_image("inputs", x[:3].reshape(3, 4, 2).clamp(0, 1), epoch)
        writer.add_images("batch", torch.rand(4, 1, 5, 5), epoch)
        writer.add_text("notes", f"epoch {epoch} done", epoch)
    figure = plt.figure(figsize=(2, 2), dpi=50)
    plt.plot([0, 1], [1, 0])
    writer.add_figure("plot", figure, EPOCHS - 1)
    writer.add_hparams(HPARAMS, {"hp/accuracy": accuracy})
    logged[("hp/accuracy", ())] = {0: accuracy}
    writer.close()
    return logged


def check_run(store: Store, run_id: str, logged: dict[Any, dict[int, float]]) -> None:
    stored = store.read(run_id)
    sequences = {
        (s.name, tuple(sorted(s.context.to_dict().items()))): s for s in stored.sequences()
    }
    for (name, context), values in logged.items():
        rows = store.scalar_rows(run_id, name, dict(context))
        assert once_each(rows), (name, context, rows)
        assert dict(rows) == values, (name, context)  # every scalar once, at its step, exactly
    for name in ("weights/0.weight", "weights/0.bias", "weights/2.weight"):
        points = stored.points(name, track.Context({}))
        assert [p.step for p in points] == list(range(EPOCHS))
        assert all(isinstance(p.value, track.Distribution) for p in points)
    counts = stored.points("weights/0.weight", track.Context({}))[0].value.counts
    assert sum(counts) == pytest.approx(8 * 16)
    inputs = stored.points("inputs", track.Context({}))
    assert [(p.step, p.value.width, p.value.height) for p in inputs] == [
        (e, 2, 4) for e in range(3)
    ]
    batch = stored.points("batch", track.Context({}))
    assert [(p.value.width, p.value.height) for p in batch] == [(20, 5)] * EPOCHS
    (plot,) = stored.points("plot", track.Context({}))
    assert (plot.step, plot.value.width, plot.value.height) == (EPOCHS - 1, 100, 100)
    notes = stored.points("notes", track.Context({}))
    assert [p.value.text for p in notes] == [f"epoch {e} done" for e in range(EPOCHS)]
    assert stored.params["hparams"] == HPARAMS
    assert ("loss", (("subset", "train"),)) in sequences


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_patched_writers_in_a_training_loop(store: Store, tmp_path: Path, writer: str) -> None:
    with track_tensorboard.patch(store.backend, experiment="loop", run_name=writer) as capture:
        logged = train(WRITERS[writer], tmp_path / "runs" / writer)
        run = capture.run
    assert run is not None and run.status is track.Status.FINISHED
    assert store.run_ids("loop") == [run.id]
    assert store.read(run.id).name == writer
    check_run(store, run.id, logged)
    # the writer's own event files are complete
    scalars = event_scalars(tmp_path / "runs" / writer)
    assert sorted(scalars["train/loss"]) == list(range(EPOCHS * BATCHES))


def test_the_drop_in_writer_with_tee(store: Store, tmp_path: Path) -> None:
    def writer(log_dir: str) -> track_tensorboard.SummaryWriter:
        return track_tensorboard.SummaryWriter(
            log_dir, backend=store.backend, experiment="dropin", tee=True
        )

    logged = train(writer, tmp_path / "runs" / "dropin")
    (run_id,) = store.run_ids("dropin")
    assert store.read(run_id).name == "dropin"
    check_run(store, run_id, logged)
    assert sorted(event_scalars(tmp_path / "runs" / "dropin")["train/loss"]) == list(range(12))


def test_lightning_tensorboard_logger_unchanged(tmp_path: Path) -> None:
    lightning = pytest.importorskip("lightning")
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(lightning.LightningModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = nn.Linear(4, 2)

        def training_step(self, batch: Any, index: int) -> Any:
            x, y = batch
            loss = nn.functional.cross_entropy(self.layer(x), y)
            self.log("train/loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch: Any, index: int) -> None:
            x, y = batch
            self.log("val/loss", nn.functional.cross_entropy(self.layer(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    store = Store("aim", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and log intervals
        with track_tensorboard.patch(store.backend, experiment="lightning") as capture:
            logger = TensorBoardLogger(str(tmp_path / "tb"), name="tiny")
            trainer = lightning.Trainer(
                max_epochs=3, accelerator="cpu", logger=logger, log_every_n_steps=1,
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            )  # fmt: skip
            trainer.fit(Tiny(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))
            run = capture.run
    assert run is not None
    (run_id,) = store.run_ids("lightning")
    assert run_id == run.id
    written = event_scalars(Path(logger.log_dir))
    assert {"train/loss_step", "train/loss_epoch", "val/loss", "epoch"} <= set(written)
    for tag, points in written.items():
        name, context = track_tensorboard.split_tag(tag)
        rows = store.scalar_rows(run_id, name, context)
        assert once_each(rows), tag
        # event files hold float32; Lightning gave the writer the same float32 tensor values
        assert dict(rows) == pytest.approx({s: v for s, (v, _) in points.items()}), tag
    assert [s for s, _ in store.scalar_rows(run_id, "loss_step", {"subset": "train"})] == list(
        range(12)
    )
    # save_hyperparameters(): Lightning writes them with FileWriter.add_summary, captured too
    assert store.read(run_id).params["hparams"] == {"lr": 0.1}


def _import(logs: Path, store: Store, experiment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "track_tensorboard", "import", str(logs), "--to", store.backend,
         "--experiment", experiment],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_import_event_files_of_the_real_writers_twice(store: Store, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logged = {name: train(cls, logs / name) for name, cls in WRITERS.items()}
    first = _import(logs, store, "imported")
    assert first.returncode == 0, first.stderr
    run_ids = store.run_ids("imported")
    assert len(run_ids) == 2  # one run per run directory (the hparams sub-directory joins it)
    by_name = {store.read(run_id).name: run_id for run_id in run_ids}
    assert sorted(by_name) == ["tensorboardX", "torch"]
    for name, values in logged.items():
        run_id = by_name[name]
        stored = store.read(run_id)
        for (sequence, context), expected in values.items():
            rows = store.scalar_rows(run_id, sequence, dict(context))
            assert once_each(rows)
            assert dict(rows) == pytest.approx(expected, rel=1e-6)  # float32 in event files
        walls = event_scalars(logs / name)["train/loss"]
        points = stored.points("loss", track.Context({"subset": "train"}))
        assert [p.timestamp for p in points] == pytest.approx(
            [walls[s][1] for s in range(12)], abs=1e-3
        )
        assert [p.step for p in stored.points("weights/0.weight", track.Context({}))] == [0, 1, 2]
        assert len(stored.points("inputs", track.Context({}))) == EPOCHS
        assert stored.points("notes", track.Context({}))[1].value.text == "epoch 1 done"
        assert stored.params["hparams"] == HPARAMS
    again = _import(logs, store, "imported")
    assert again.returncode == 0, again.stderr
    assert "unchanged  torch: 0 values" in again.stdout
    assert store.run_ids("imported") == run_ids
    rows = store.scalar_rows(by_name["torch"], "loss", {"subset": "train"})
    assert len(rows) == EPOCHS * BATCHES and once_each(rows)


def test_a_server_outage_never_breaks_the_training_loop(tmp_path: Path) -> None:
    """The MLflow server goes down in the middle of a patched training loop: the loop runs on, the
    event files are whole, and once the server is back every value is stored once."""
    from torch import nn

    from track_mlflow.testing import mlflow_server

    steps = 60
    with (
        pytest.MonkeyPatch.context() as env,
        mlflow_server(tmp_path / "server", workers=1) as server,
    ):
        env.setenv("TRACK_SPOOL_DIR", str(tmp_path / "spool"))
        store = Store("mlflow", tmp_path)
        store.location = server.url
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the backend's unavailability warnings
            with track_tensorboard.patch(f"mlflow:{server.url}", experiment="outage") as capture:
                writer = TorchWriter(str(tmp_path / "runs"))
                model = nn.Linear(4, 1)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
                losses = {}
                for step in range(steps):
                    if step == 20:
                        server.stop()
                    loss = model(torch.randn(8, 4)).pow(2).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    writer.add_scalar("train/loss", loss.item(), step)
                    losses[step] = loss.item()
                writer.close()
                assert sorted(event_scalars(tmp_path / "runs")["train/loss"]) == list(range(steps))
                server.start()
                run = capture.run
                assert run is not None and run.flush(timeout=60)
        rows = store.scalar_rows(run.id, "loss", {"subset": "train"})
    assert once_each(rows) and dict(rows) == losses


def test_the_seeds_complete_example(tmp_path: Path) -> None:
    """The seed's "Complete Example" with only its tracelet lines replaced (README)."""
    script = Path(__file__).with_name("seed_example.py")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Training completed" in done.stdout
    store = Store("aim", tmp_path)
    store.location = str(tmp_path)  # backend "aim": the .aim repository in the working directory
    (run_id,) = store.run_ids("tutorials")
    stored = store.read(run_id)
    assert stored.name == "aim_pytorch_example"
    rows = store.scalar_rows(run_id, "batch/loss", {})
    assert [s for s, _ in rows] == list(range(10 * 32))
    assert [s for s, _ in store.scalar_rows(run_id, "epoch/loss", {})] == list(range(10))
    assert [p.step for p in stored.points("weights/0.weight", track.Context({}))] == list(range(10))
    assert stored.params["hparams"]["model.type"] == "simple_mlp"
    assert (tmp_path / "runs").is_dir()  # torch's writer still wrote its event files
