"""patch() on tensorboardX's real SummaryWriter (no torch here; torch's writer, Lightning and the
real backends: test_torch_e2e), and the start_logging session API, on the memory backend."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from readers import by_sequence, event_scalars, read, steps_values

import track_core as track
import track_tensorboard
from track_core.memory import memory_store
from track_tensorboard import CaptureWarning, SummaryWriter

tensorboardX = pytest.importorskip("tensorboardX")
pytest.importorskip("tensorboard")


def test_writers_made_before_and_after_go_to_one_run(memory: str, tmp_path: Path) -> None:
    before = tensorboardX.SummaryWriter(str(tmp_path / "before"))
    with track_tensorboard.patch(memory, experiment="patched") as capture:
        after = tensorboardX.SummaryWriter(str(tmp_path / "after"))
        for step in range(4):
            before.add_scalar("train/loss", 1.0 + step, step)
            after.add_scalar("val/loss", 2.0 + step, global_step=step, walltime=1.7e9 + step)
            after.add_scalars("acc", {"train": 0.5, "val": 0.25}, step)
        before.add_histogram("w", np.arange(20.0), 0)
        before.add_image("img", np.zeros((3, 4, 4)), 0)
        before.add_text("note", "hi", 0)
        before.add_hparams({"lr": 0.1}, {"hp/acc": 0.9})  # a writer of its own inside: once
        before.close()
        after.close()
        run = capture.run
        assert run is not None and run.status is track.Status.RUNNING
    assert run.status is track.Status.FINISHED  # patch() started it: unpatch() ends it
    stored = read(memory, run.id)
    sequences = by_sequence(stored)
    assert steps_values(sequences[("loss", (("subset", "train"),))]) == [
        (s, 1.0 + s) for s in range(4)
    ]
    val = sequences[("loss", (("subset", "val"),))]
    assert [(p.step, p.timestamp) for p in val.points()] == [(s, 1.7e9 + s) for s in range(4)]
    assert steps_values(sequences[("acc", (("subset", "val"),))]) == [(s, 0.25) for s in range(4)]
    assert steps_values(sequences[("hp/acc", ())]) == [(0, 0.9)]
    assert stored.params["hparams"] == {"lr": 0.1}
    assert {key[0] for key in sequences} == {"loss", "acc", "w", "img", "note", "hp/acc"}
    # the event files are still written
    assert sorted(event_scalars(tmp_path / "before")["train/loss"]) == [0, 1, 2, 3]
    assert sorted(event_scalars(tmp_path / "after")["val/loss"]) == [0, 1, 2, 3]


def test_unpatch_restores_the_writers(memory: str, tmp_path: Path) -> None:
    original = tensorboardX.SummaryWriter.add_scalar
    capture = track_tensorboard.patch(memory)
    assert tensorboardX.SummaryWriter.add_scalar is not original
    with pytest.raises(RuntimeError, match="already in force"):
        track_tensorboard.patch(memory)
    track_tensorboard.unpatch()
    assert tensorboardX.SummaryWriter.add_scalar is original
    writer = tensorboardX.SummaryWriter(str(tmp_path))
    writer.add_scalar("loss", 1.0, 0)
    writer.close()
    assert capture.run is not None and capture.run.status is track.Status.FINISHED
    assert read(memory, capture.run.id).sequences() == []


def test_one_run_per_writer_when_asked(memory: str, tmp_path: Path) -> None:
    with track_tensorboard.patch(memory, per_writer=True, experiment="per") as capture:
        for name in ("fold0", "fold1"):
            with tensorboardX.SummaryWriter(str(tmp_path / name)) as writer:
                writer.add_scalar("loss", 1.0, 0)
        runs = capture.runs
        assert [r.status for r in runs] == [track.Status.FINISHED] * 2  # closed with the writer
    listed = track.get_backend(memory).list_runs("per")
    assert sorted(info.name for info in listed) == ["fold0", "fold1"]


def test_what_track_cannot_record_is_a_warning_not_an_exception(
    memory: str, tmp_path: Path
) -> None:
    with track_tensorboard.patch(memory) as capture:
        writer = tensorboardX.SummaryWriter(str(tmp_path))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(3):
                writer.add_scalar("bad\x01tag", 1.0, step)  # tensorboardX takes it, track not
                writer.add_scalar("loss", 1.0, step)
            writer.add_pr_curve("pr", np.array([0, 1]), np.array([0.2, 0.8]), 0)
            writer.add_pr_curve("pr", np.array([0, 1]), np.array([0.2, 0.8]), 1)
        writer.close()
        capture_warnings = [w for w in caught if w.category is CaptureWarning]
        assert len(capture_warnings) == 1  # once per method and error
        assert "add_scalar was not tracked" in str(capture_warnings[0].message)
        assert "control characters" in str(capture_warnings[0].message)
        unsupported = [w for w in caught if "add_pr_curve is not tracked" in str(w.message)]
        assert len(unsupported) == 1
        assert capture.run is not None
        assert steps_values(by_sequence(capture.run)[("loss", ())]) == [
            (0, 1.0),
            (1, 1.0),
            (2, 1.0),
        ]
    # what the writer itself rejects is still raised, as without track
    with track_tensorboard.patch(memory):
        writer = tensorboardX.SummaryWriter(str(tmp_path / "2"))
        with pytest.raises(Exception):  # noqa: B017 - tensorboardX's own error
            writer.add_scalar("loss", "not a number", 0)
        writer.close()


def test_a_backend_that_fails_never_breaks_the_training_loop(memory: str, tmp_path: Path) -> None:
    store = memory_store(memory.partition(":")[2])
    spool = tmp_path / "spool"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRACK_SPOOL_DIR", str(spool))
        with track_tensorboard.patch(memory) as capture:
            writer = tensorboardX.SummaryWriter(str(tmp_path / "logs"))
            store.unavailable = True  # every write raises ConnectionError from now on
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for step in range(200):
                    writer.add_scalar("train/loss", float(step), step)
                writer.close()
                run = capture.run
                assert run is not None
                store.unavailable = False  # back: the spooled values are written in order
                assert run.flush(timeout=30)
    assert sorted(event_scalars(tmp_path / "logs")["train/loss"]) == list(range(200))
    stored = by_sequence(read(memory, run.id))[("loss", (("subset", "train"),))]
    assert [p.step for p in stored.points()] == list(range(200))


def test_the_session_api(memory: str, tmp_path: Path) -> None:
    artifact = tmp_path / "model.txt"
    artifact.write_text("weights")
    experiment = track_tensorboard.start_logging(
        exp_name="session_run", project="tutorials", backend=memory, config={"tags": ["a"]}
    )
    assert track_tensorboard.get_active_experiment() is experiment
    assert track.current_run() is experiment.run
    with pytest.raises(RuntimeError, match="stop_logging\\(\\) first"):
        track_tensorboard.start_logging(backend=memory)
    torch_like = tensorboardX.SummaryWriter(str(tmp_path / "tbx"))  # patched
    torch_like.add_scalar("epoch/loss", 0.5, 0)
    ours = SummaryWriter()  # the drop-in finds the current run
    ours.add_scalar("train/acc", 0.9, 0)
    experiment.log_params({"model.type": "mlp", "training.epochs": 10})
    experiment.log_params({"optimizer.type": "adam"})
    experiment.log_artifact(str(artifact), artifact_path="models/")
    experiment.log_metric("val/acc", 0.8, 0)
    ours.close()
    torch_like.close()
    run = experiment.run
    track_tensorboard.stop_logging()
    assert track_tensorboard.get_active_experiment() is None
    assert track.current_run() is None
    assert run.status is track.Status.FINISHED
    stored = read(memory, run.id)
    assert (stored.experiment, stored.name, stored.tags) == ("tutorials", "session_run", {"a"})
    assert stored.params["hparams"] == {
        "model.type": "mlp", "training.epochs": 10, "optimizer.type": "adam",
    }  # fmt: skip
    sequences = by_sequence(stored)
    assert steps_values(sequences[("epoch/loss", ())]) == [(0, 0.5)]
    assert steps_values(sequences[("acc", (("subset", "train"),))]) == [(0, 0.9)]
    assert steps_values(sequences[("acc", (("subset", "val"),))]) == [(0, 0.8)]
    assert "models/model.txt" in stored.artifacts()
    track_tensorboard.stop_logging()  # twice: nothing


def test_session_config_is_checked(memory: str) -> None:
    with pytest.raises(TypeError, match="unknown config keys \\['buffer_size'\\]"):
        track_tensorboard.start_logging(backend=memory, config={"buffer_size": 10})
    assert track_tensorboard.get_active_experiment() is None
