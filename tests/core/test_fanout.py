"""One run to several backends at once (issue 14 §1), on memory backends in this process."""

from __future__ import annotations

import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

import track_core as track
from track_core._fanout import MultiRun, split_backend_strings
from track_core.backend import Capability
from track_core.context import Context
from track_core.memory import MemoryBackend, MemoryStore
from track_core.values import ValueKind


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
    return folder


class NoAtSigns(MemoryBackend):
    """A memory backend that refuses sequence names with '@' (as a backend with stricter
    names does) and cannot store images."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities - {Capability.IMAGES}

    def check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        if "@" in name:
            raise ValueError(f"this backend cannot name a sequence {name!r}")


def memory() -> MemoryBackend:
    return MemoryBackend(MemoryStore(), f"fan-{uuid.uuid4().hex}")


FAST = track.WriterOptions(flush_interval=0.02, retry_initial=0.02, retry_max=0.1)


def steps(backend: MemoryBackend, run_id: str, name: str = "loss", **context: str) -> list[int]:
    return [p.step for p in backend.read_run(run_id).points(name, Context(**context))]


def test_every_call_reaches_every_backend() -> None:
    first, second = memory(), memory()
    run = track.start_run([first, second], experiment="fan", name="both", tags=["a"], writer=FAST)
    assert isinstance(run, MultiRun)
    run["hparams"] = {"lr": 0.1, "layers": [2, 3]}
    for step in range(500):
        run.track(step * 0.5, "loss", step=step, context={"subset": "train"})
    run.track({"acc": 0.9, "f1": 0.8}, step=3)
    run.set_description("two places")
    run.add_tag("b")
    run.close(track.Status.FAILED, "diverged")
    first_id, second_id = run.id.split("|")
    assert list(run.ids.values()) == [first_id, second_id]
    for backend, run_id in ((first, first_id), (second, second_id)):
        stored = backend.read_run(run_id)
        assert stored.params == {"hparams": {"lr": 0.1, "layers": [2, 3]}}
        assert stored.experiment == "fan" and stored.name == "both"
        assert stored.description == "two places" and stored.tags == {"a", "b"}
        assert stored.status is track.Status.FAILED and "diverged" in (stored.error or "")
        assert steps(backend, run_id, subset="train") == list(range(500))
        assert [p.value for p in stored.points("acc", Context())] == [0.9]
    # one timestamp for both copies of a value
    a = first.read_run(first_id).points("loss", Context(subset="train"))
    b = second.read_run(second_id).points("loss", Context(subset="train"))
    assert [p.timestamp for p in a] == [p.timestamp for p in b]


def test_a_value_one_backend_cannot_hold_is_refused_for_all() -> None:
    first, strict = memory(), NoAtSigns(MemoryStore(), "strict")
    run = track.start_run([first, strict], writer=FAST)
    run.track(1.0, "loss", step=0)
    with pytest.raises(ValueError, match="cannot name a sequence"):
        run.track(1.0, "acc@top1", step=0)
    with pytest.raises(track.CapabilityError, match="memory backend cannot store image") as error:
        run.track(track.Image(np.zeros((4, 4, 3), dtype=np.uint8)), "picture")
    assert error.value.capability is Capability.IMAGES
    run.track(2.0, "loss", step=1)
    run.close()
    first_id, strict_id = run.id.split("|")
    for backend, run_id in ((first, first_id), (strict, strict_id)):
        assert {info.name for info in backend.read_run(run_id).sequences()} == {"loss"}
        assert steps(backend, run_id) == [0, 1]


def test_one_backend_down_slows_and_loses_nothing_elsewhere(spool_dir: Path) -> None:
    up, down = memory(), memory()
    run = track.start_run([up, down], writer=FAST)
    down.store.unavailable = True
    up_id, down_id = run.id.split("|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", track.BackendUnavailableWarning)
        for step in range(3000):
            run.track(float(step), "loss", step=step)
        assert run.runs[0].flush(timeout=30), "the healthy backend waited for the down one"
        assert steps(up, up_id) == list(range(3000))
        assert run.runs[1].pending == 3000
        deadline = time.monotonic() + 30
        while not list(spool_dir.glob("*.spool")) and time.monotonic() < deadline:
            time.sleep(0.02)  # the down backend's writer spools on its next attempt
        assert list(spool_dir.glob("*.spool")), "the down backend's values were not spooled"
        down.store.unavailable = False
        run.close()
    assert steps(down, down_id) == list(range(3000))
    assert down.read_run(down_id).status is track.Status.FINISHED


def test_resuming_resumes_on_each_backend() -> None:
    first, second = memory(), memory()
    run = track.start_run([first, second], writer=FAST)
    run.track(1.0, "loss")
    run.close()
    again = track.start_run([first, second], run_id=run.id, writer=FAST)
    assert again.id == run.id
    again.track(2.0, "loss")
    again.close()
    for backend, run_id in zip((first, second), run.id.split("|"), strict=True):
        assert steps(backend, run_id) == [0, 1]
    with pytest.raises(ValueError, match="names 1 run"):
        track.start_run([first, second], run_id=run.id.split("|")[0])


def test_one_string_names_several_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    location_a, location_b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    monkeypatch.setenv("TRACK_BACKEND", f"memory:{location_a}?experiment=x | memory:{location_b}")
    run = track.start_run(writer=FAST)
    run.track(1.0, "loss")
    run.close()
    first_id, second_id = run.id.split("|")
    assert track.open_run(first_id, f"memory:{location_a}").experiment == "x"
    assert track.open_run(second_id, f"memory:{location_b}").experiment is None
    assert list(run.ids) == [f"memory:{location_a}", f"memory:{location_b}"]


def test_splitting_keeps_urls_whole() -> None:
    text = "aim://127.0.0.1:53800 | mlflow:postgresql+psycopg2://u@db:5432/mlflow?tags=a,b&x=1"
    assert split_backend_strings(text) == [
        "aim://127.0.0.1:53800",
        "mlflow:postgresql+psycopg2://u@db:5432/mlflow?tags=a,b&x=1",
    ]
    with pytest.raises(ValueError, match="empty backend"):
        split_backend_strings("aim | ")


def test_artifacts_and_archive_reach_every_backend(tmp_path: Path) -> None:
    first, second = memory(), memory()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("A")
    run = track.start_run([first, second], writer=FAST)
    run.log_artifact(tmp_path / "out" / "a.txt", "x/a.txt")
    run.log_artifacts(tmp_path / "out", prefix="tree")
    run.set_archived(True)
    run.close()
    for backend, run_id in zip((first, second), run.id.split("|"), strict=True):
        stored = backend.read_run(run_id)
        assert stored.archived
        assert sorted(stored.artifacts()) == ["tree/a.txt", "x/a.txt"]
        assert stored.artifact_bytes("tree/a.txt") == b"A"
