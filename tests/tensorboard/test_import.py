"""``import_logdir`` / ``python -m track_tensorboard import``: event files written by tensorboardX
read back with tensorboard's reader into the memory backend (Aim and MLflow: test_torch_e2e)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from readers import by_sequence, read, steps_values

import track_core as track
from track_tensorboard import EventFileError, import_logdir

pytest.importorskip("tensorboard")
tensorboardX = pytest.importorskip("tensorboardX")

T0 = 1_700_000_000.0


def write_logs(root: Path, steps: range = range(10)) -> None:
    """``root/a``: every kind, and hparams (in the sub-directory add_hparams makes); ``root/b``:
    scalars only."""
    with tensorboardX.SummaryWriter(str(root / "a")) as writer:
        for step in steps:
            writer.add_scalar("train/loss", 1.0 / (step + 1), step, walltime=T0 + step)
            writer.add_scalar("Loss/validation", 2.0 + step, step, walltime=T0 + step)
            writer.add_histogram("weights", np.arange(step, step + 50.0), step, walltime=T0 + step)
            writer.add_image("img", np.full((3, 4, 5), step * 10, dtype=np.uint8), step)
            writer.add_text("notes", f"step {step}", step, walltime=T0 + step)
            # a sub-directory per sub tag (a/acc_train, a/acc_val), merged into the run of a
            writer.add_scalars("acc", {"train": step / 10, "val": step / 20}, step)
        if steps.start == 0:
            writer.add_hparams({"lr": 0.01, "opt": "adam", "nesterov": True}, {"hp/acc": 0.75})
    with tensorboardX.SummaryWriter(str(root / "b")) as writer:
        for step in steps:
            writer.add_scalar("acc", step / 10, step, walltime=T0 + step)


def runs_of(backend: str, experiment: str) -> dict[str, track.RunView]:
    store = track.get_backend(backend)
    return {info.name: read(backend, info.id) for info in store.list_runs(experiment)}


def test_every_run_directory_becomes_one_run(memory: str, tmp_path: Path) -> None:
    write_logs(tmp_path / "logs")
    report = import_logdir(tmp_path / "logs", memory, "imported", progress=False)
    assert sorted((r.name, r.action) for r in report.runs) == [("a", "created"), ("b", "created")]
    runs = runs_of(memory, "imported")
    assert sorted(runs) == ["a", "b"]
    a = runs["a"]
    assert "tensorboard-import" in a.tags
    assert a.params["hparams"] == {"lr": 0.01, "opt": "adam", "nesterov": True}
    assert a.params["tensorboard"]["source"] == str((tmp_path / "logs" / "a").resolve())
    sequences = by_sequence(a)
    loss = sequences[("loss", (("subset", "train"),))]
    assert [(p.step, p.timestamp) for p in loss.points()] == [(s, T0 + s) for s in range(10)]
    assert [p.value for p in loss.points()] == pytest.approx([1.0 / (s + 1) for s in range(10)])
    val = sequences[("loss", (("subset", "val"),))]
    assert steps_values(val) == [(s, 2.0 + s) for s in range(10)]  # exact in float32
    weights = sequences[("weights", ())].points()
    assert [p.step for p in weights] == list(range(10))
    assert sum(weights[3].value.counts) == pytest.approx(50)
    assert weights[3].value.range[0] == pytest.approx(3.0, abs=1e-6)
    assert weights[3].value.is_uniform
    images = sequences[("img", ())].points()
    assert [p.step for p in images] == list(range(10))
    assert (images[2].value.width, images[2].value.height) == (5, 4)
    assert set(np.asarray(images[2].value.to_pil()).ravel().tolist()) == {20}
    texts = sequences[("notes", ())]
    assert steps_values(texts)[4] == (4, track.Text("step 4"))
    assert steps_values(sequences[("hp/acc", ())]) == [(0, 0.75)]
    acc = by_sequence(runs["b"])[("acc", ())].points()
    assert [p.step for p in acc] == list(range(10))
    # event files hold float32: the value as stored, float(np.float32(0.1)) == 0.10000000149...
    assert [p.value for p in acc] == [float(np.float32(s / 10)) for s in range(10)]
    train_acc = sequences[("acc", (("subset", "train"),))].points()
    assert [p.value for p in train_acc] == [float(np.float32(s / 10)) for s in range(10)]
    assert len(sequences[("acc", (("subset", "val"),))].points()) == 10
    assert report.values == 10 * 7 + 1 + 10


def test_importing_twice_duplicates_nothing_and_adds_what_is_new(
    memory: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    write_logs(logs)
    first = import_logdir(logs, memory, "twice", progress=False)
    again = import_logdir(logs, memory, "twice", progress=False)
    assert [r.action for r in again.runs] == ["unchanged", "unchanged"]
    assert [r.run_id for r in again.runs] == [r.run_id for r in first.runs]
    assert again.values == 0
    # the training went on: a second event file in each run directory
    write_logs(logs, range(10, 15))
    grown = import_logdir(logs, memory, "twice", progress=False)
    assert [(r.action, r.values) for r in grown.runs] == [("updated", 5 * 7), ("updated", 5)]
    runs = runs_of(memory, "twice")
    assert sorted(runs) == ["a", "b"]  # still one run per directory
    loss = by_sequence(runs["a"])[("loss", (("subset", "train"),))]
    assert [p.step for p in loss.points()] == list(range(15))
    assert [p.step for p in by_sequence(runs["b"])[("acc", ())].points()] == list(range(15))
    assert runs["a"].params["hparams"] == {"lr": 0.01, "opt": "adam", "nesterov": True}


def test_an_unreadable_event_file_is_reported_and_the_rest_imported(
    memory: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    write_logs(logs, range(3))
    broken = logs / "c"
    broken.mkdir()
    (broken / "events.out.tfevents.123.host").write_bytes(bytes(range(256)) * 8)
    report = import_logdir(logs, memory, "broken", progress=False)
    actions = {r.name: r.action for r in report.runs}
    assert actions == {"a": "created", "b": "created", "c": "failed"}
    (failed,) = report.failed
    assert (
        "cannot read event file" in failed.error and "not a TensorBoard event file" in failed.error
    )
    assert sorted(runs_of(memory, "broken")) == ["a", "b"]


def test_missing_and_empty_log_dirs(memory: str, tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match=r"log dir .*nowhere.* does not exist"):
        import_logdir(tmp_path / "nowhere", memory)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EventFileError, match="holds no TensorBoard event files"):
        import_logdir(tmp_path / "empty", memory)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "track_tensorboard", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_line(tmp_path: Path) -> None:
    missing = _cli("import", str(tmp_path / "nowhere"), "--to", "memory")
    assert missing.returncode == 2
    assert "error: log dir" in missing.stderr and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    logs = tmp_path / "logs"
    write_logs(logs, range(3))
    (logs / "c").mkdir()
    (logs / "c" / "events.out.tfevents.1.x").write_bytes(b"garbage" * 100)
    done = _cli("import", str(logs), "--to", "memory", "--experiment", "cli")
    assert done.returncode == 1, done.stderr  # one directory failed
    assert "created    a: 22 values" in done.stdout
    assert "created    b: 3 values" in done.stdout
    assert "failed     c: cannot read event file" in done.stderr
    assert "3 run directories, 25 values imported" in done.stdout
    assert "importing" not in done.stderr  # no progress bar when stderr is not a terminal
    bad = _cli("import", str(logs), "--to", "nosuchbackend")
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_a_progress_bar_when_asked(
    memory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_logs(tmp_path / "logs", range(2))
    import_logdir(tmp_path / "logs", memory, "bar", progress=True)
    shown = capsys.readouterr().err
    assert "importing" in shown and "2/2" in shown
    import_logdir(tmp_path / "logs", memory, "quiet")  # stderr is not a terminal here: quiet
    assert capsys.readouterr().err == ""
