"""copy_run / copy_runs between memory backends: whole runs, no duplicates, interrupted copies.

``check_copy_round_trip`` is the conformance-kit test in waiting: a run copied A -> B -> A reads
back equal to the original through A's reader (and the copy in B through B's).
"""

from __future__ import annotations

import io
import math
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import track_core as track
from track_core.backend import Backend, Capability, RunSpec, TrackedPoint
from track_core.copying import (
    COPYING_TAG,
    CopyAction,
    CopyError,
    CopyProgress,
    copy_run,
    copy_runs,
    run_differences,
    source_tag,
)
from track_core.memory import MemoryBackend, MemoryRunWriter, MemoryStore
from track_core.status import Status

#: Whole milliseconds, so that a backend keeping milliseconds (MLflow) holds them exactly.
T0 = 1_700_000_000.0


def memory(label: str = "copy") -> MemoryBackend:
    return MemoryBackend(MemoryStore(), f"{label}-{uuid.uuid4().hex}")


def write_full_run(
    backend: Backend, tmp_path: Path, *, scalars: int = 2500, status: Status = Status.FAILED
) -> str:
    """A run holding every kind of thing a run can hold (what the backend declares)."""
    caps = backend.capabilities
    run = track.start_run(
        backend,
        enabled=True,
        experiment="copying",
        name="original",
        description="a run to copy",
        tags=["baseline", "sweep:3"],
    )
    run["hparams"] = {"lr": 0.01, "layers": [64, 32], "optimizer": {"name": "adam"}}
    run["seed"] = 7
    for step in range(scalars):
        stamp = T0 + step * 0.001
        run.track(1.0 / (step + 1), "loss", step=step, epoch=step // 500, timestamp=stamp)
        if step % 10 == 0:
            run.track(step, "acc", step=step, context={"subset": "val", "fold": 1}, timestamp=stamp)
    with pytest.warns(track.NonFiniteValueWarning):
        run.track(float("nan"), "odd", step=0, timestamp=T0)
        run.track(float("inf"), "odd", step=1, timestamp=T0 + 1)
    if Capability.IMAGES in caps:
        for step in range(3):
            pixels = np.full((8, 6, 3), step * 40, np.uint8)
            run.track(track.Image(pixels, caption=f"i{step}"), "samples", step=step, timestamp=T0)
    if Capability.TEXTS in caps:
        run.track(track.Text("hello ✓"), "notes", step=5, epoch=1, timestamp=T0 + 2)
    if Capability.DISTRIBUTIONS in caps:
        run.track(track.Distribution([1.0, 2.0, 2.5, 4.0], bins=4), "weights", timestamp=T0)
    if Capability.ARTIFACTS in caps:
        artifact = tmp_path / f"model-{uuid.uuid4().hex}.bin"
        artifact.write_bytes(bytes(range(256)) * 3)
        run.log_artifact(str(artifact), "model/weights.bin")
    if Capability.ARCHIVE in caps:
        run.set_archived(True)
    run.close(status, "ValueError: diverged" if status is Status.FAILED else None)
    return run.id


def check_copy_round_trip(a: Backend, b: Backend, tmp_path: Path, tolerance: float = 0.0) -> None:
    """The kit test: a run copied A -> B -> A reads back equal to the original, through A's
    reader; and the copy in B reads back equal through B's; copying again duplicates nothing."""
    run_id = write_full_run(a, tmp_path)
    original = a.read_run(run_id)
    there = copy_run(run_id, a, b)
    assert there.action is CopyAction.CREATED and there.complete, there
    assert source_tag(a.name, run_id) in b.read_run(there.dest_id).tags
    assert run_differences(original, b.read_run(there.dest_id), timestamp_tolerance=tolerance) == []
    back = copy_run(there.dest_id, b, a)
    assert back.action is CopyAction.CREATED and back.complete, back
    returned = a.read_run(back.dest_id)
    assert run_differences(original, returned, timestamp_tolerance=tolerance) == []
    # one source tag: the run it was copied from (B's copy), not the original's
    assert sorted(t for t in returned.tags if t.startswith("track.source=")) == [
        source_tag(b.name, there.dest_id)
    ]
    runs_in_b = len(b.list_runs())
    again = copy_run(run_id, a, b)
    assert (again.action, again.dest_id, again.points) == (CopyAction.SKIPPED, there.dest_id, 0)
    assert len(b.list_runs()) == runs_in_b


def test_memory_round_trip_a_to_b_to_a(tmp_path: Path) -> None:
    check_copy_round_trip(memory("a"), memory("b"), tmp_path)


def test_every_point_keeps_step_epoch_timestamp_and_value(tmp_path: Path) -> None:
    a, b = memory(), memory()
    run_id = write_full_run(a, tmp_path, scalars=30)
    result = copy_run(run_id, a, b)
    copied = b.read_run(result.dest_id)
    original = a.read_run(run_id)
    loss = copied.points("loss", {})
    assert [(p.step, p.epoch, p.timestamp, p.value) for p in loss] == [
        (p.step, p.epoch, p.timestamp, p.value) for p in original.points("loss", {})
    ]
    assert loss[29].epoch == 0 and loss[29].timestamp == T0 + 0.029
    odd = copied.points("odd", {})
    assert math.isnan(odd[0].value) and odd[1].value == math.inf  # type: ignore[arg-type]
    images = copied.points("samples", {})
    assert [p.value.caption for p in images] == ["i0", "i1", "i2"]  # type: ignore[union-attr]
    assert copied.points("notes", {})[0].value == track.Text("hello ✓")
    assert (copied.status, copied.error, copied.archived) == (
        Status.FAILED,
        "ValueError: diverged",
        True,
    )
    assert (copied.name, copied.description, copied.experiment) == (
        "original",
        "a run to copy",
        "copying",
    )
    assert copied.artifact_bytes("model/weights.bin") == bytes(range(256)) * 3
    assert result.points == 30 + 3 + 2 + 3 + 1 + 1 and result.artifacts == 1


def test_points_are_written_in_batches_of_1000(tmp_path: Path) -> None:
    a, b = memory(), memory()
    with track.start_run(a, enabled=True) as run:
        for step in range(2500):
            run.track(float(step), "loss", step=step)
    result = copy_run(run.id, a, b)
    assert b.store.runs[result.dest_id].write_calls == 3  # 1000 + 1000 + 500
    with track.start_run(a, enabled=True) as many:
        for index in range(30):
            for step in range(10):
                many.track(float(step), f"short{index}", step=step)
    result = copy_run(many.id, a, b)
    assert result.points == 300
    assert b.store.runs[result.dest_id].write_calls == 1  # short sequences share a batch


def test_run_differences_sees_a_changed_point(tmp_path: Path) -> None:
    """The comparison the round-trip tests rely on is not vacuous."""
    a, b = memory(), memory()
    run_id = write_full_run(a, tmp_path, scalars=20)
    result = copy_run(run_id, a, b)
    stored = b.store.runs[result.dest_id]
    loss = stored.sequences[("loss", track.EMPTY_CONTEXT)]
    point = loss.points[7]
    loss.points[7] = attrs.evolve(point, timestamp=point.timestamp + 0.01)
    stored.params["seed"] = 8
    differences = run_differences(a.read_run(run_id), b.read_run(result.dest_id))
    assert len(differences) == 2, differences
    assert "params" in differences[0] and "step 7: timestamp" in differences[1]
    assert run_differences(
        a.read_run(run_id), b.read_run(result.dest_id), timestamp_tolerance=0.02
    ) == [differences[0]]


def test_copying_again_updates_the_copy_with_new_points(tmp_path: Path) -> None:
    a, b = memory(), memory()
    run = track.start_run(a, enabled=True, name="live")
    for step in range(1500):
        run.track(float(step), "loss", step=step)
    run.flush()
    first = copy_run(run.id, a, b)
    assert first.action is CopyAction.CREATED
    assert b.read_run(first.dest_id).status is Status.RUNNING  # the source is still running
    for step in range(1500, 4000):
        run.track(float(step), "loss", step=step)
    run["late"] = {"x": 1}
    run.add_tag("later")
    run.close()
    second = copy_run(run.id, a, b)
    assert (second.action, second.dest_id) == (CopyAction.UPDATED, first.dest_id)
    # the new points, and one batch of overlap before them (written again, stored once)
    assert second.points == 2500 + 1000
    assert len(b.list_runs()) == 1
    copied = b.read_run(first.dest_id)
    assert run_differences(a.read_run(run.id), copied) == []
    assert [p.step for p in copied.points("loss", {})] == list(range(4000))
    assert copy_run(run.id, a, b).action is CopyAction.SKIPPED


@attrs.define
class FlakyWriter(MemoryRunWriter):
    """A memory writer that dies (a connection lost for good) after a number of batches."""

    batches_left: list[int] = attrs.Factory(lambda: [10**9])

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        if self.batches_left[0] <= 0:
            raise ConnectionError("the destination went away")
        self.batches_left[0] -= 1
        super().write_points(points)


class FlakyBackend(MemoryBackend):
    """The memory backend, whose writes fail after ``batches`` batches (when set)."""

    batches: list[int]

    def create_run(self, spec: RunSpec) -> MemoryRunWriter:
        writer = super().create_run(spec)
        return FlakyWriter(self._store, writer._run, self.batches)

    def resume_run(self, run_id: str) -> MemoryRunWriter:
        writer = super().resume_run(run_id)
        return FlakyWriter(self._store, writer._run, self.batches)


def test_an_interrupted_copy_is_finished_by_copying_again(tmp_path: Path) -> None:
    a = memory()
    run_id = write_full_run(a, tmp_path, scalars=5000, status=Status.FINISHED)
    b = FlakyBackend(MemoryStore(), "flaky")
    b.batches = [3]
    with pytest.raises(ConnectionError, match="went away"):
        copy_run(run_id, a, b, attempts=2, retry_delay=0.0)
    (info,) = b.list_runs()
    partial = b.read_run(info.id)
    assert COPYING_TAG in partial.tags and partial.status is Status.RUNNING
    assert len(partial.points("loss", {})) == 3000
    b.batches[0] = 10**9  # the destination is back
    result = copy_run(run_id, a, b)
    assert (result.action, result.dest_id) == (CopyAction.UPDATED, info.id)
    assert [run.id for run in b.list_runs()] == [info.id]
    copied = b.read_run(info.id)
    assert run_differences(a.read_run(run_id), copied) == []
    assert COPYING_TAG not in copied.tags and copied.status is Status.FINISHED
    assert copy_run(run_id, a, b).action is CopyAction.SKIPPED


def test_a_write_that_fails_once_is_retried(tmp_path: Path) -> None:
    a = memory()
    run_id = write_full_run(a, tmp_path, scalars=100)

    class OnceFlakyWriter(MemoryRunWriter):
        failed = False

        def write_points(self, points: Sequence[TrackedPoint]) -> None:
            if not OnceFlakyWriter.failed:
                OnceFlakyWriter.failed = True
                raise ConnectionError("blip")
            super().write_points(points)

    class OnceFlakyBackend(MemoryBackend):
        def create_run(self, spec: RunSpec) -> MemoryRunWriter:
            writer = super().create_run(spec)
            return OnceFlakyWriter(self._store, writer._run)

    b = OnceFlakyBackend(MemoryStore(), "once")
    result = copy_run(run_id, a, b, retry_delay=0.0)
    assert OnceFlakyWriter.failed and result.complete
    assert run_differences(a.read_run(run_id), b.read_run(result.dest_id)) == []


class ScalarsOnly(MemoryBackend):
    """A minimal third-party backend: no optional capability, and no names starting "__"."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset()

    def check_sequence(self, name: str, context: Any, kind: Any) -> None:
        if name.startswith("__"):
            raise ValueError(f"names starting with '__' are reserved: {name!r}")


def test_what_the_destination_cannot_hold_is_listed_not_dropped(tmp_path: Path) -> None:
    a = memory()
    run_id = write_full_run(a, tmp_path, scalars=50)
    with track.start_run(a, enabled=True, run_id=run_id) as run:
        run.track(1.0, "__system", step=0)
    b = ScalarsOnly(MemoryStore(), "small")
    result = copy_run(run_id, a, b)
    assert not result.complete
    listed = {item.what: (item.values, item.reason) for item in result.not_copied}
    assert listed["sequence 'samples'"][0] == 3
    assert "images" in listed["sequence 'samples'"][1]
    assert listed["sequence 'notes'"][0] == 1
    assert listed["sequence 'weights'"][0] == 1
    assert listed["sequence '__system'"] == (1, "names starting with '__' are reserved: '__system'")
    assert "artifact 'model/weights.bin'" in listed
    assert "the archived flag" in listed
    copied = b.read_run(result.dest_id)
    assert len(copied.points("loss", {})) == 50
    assert copied.status is Status.FINISHED  # resuming set the source to running, closing ended it
    # copying again: nothing new to write, and the same gaps are not a reason to update forever
    assert copy_run(run_id, a, b).action is CopyAction.SKIPPED


def test_start_and_end_times_are_copied_and_an_update_brings_the_end_time(
    tmp_path: Path,
) -> None:
    a, b = memory(), memory()
    run_id = write_full_run(a, tmp_path, scalars=20, status=Status.FINISHED)
    source = a.store.runs[run_id]
    source.created_at, source.ended_at = T0 - 3600.0, T0 - 60.0  # a run of an hour ago
    result = copy_run(run_id, a, b)
    assert result.complete, result
    copied = b.store.runs[result.dest_id]
    assert (copied.created_at, copied.ended_at) == (T0 - 3600.0, T0 - 60.0)
    (info,) = b.list_runs()
    assert (info.created_at, info.ended_at) == (T0 - 3600.0, T0 - 60.0)
    # the source is resumed and ends later: copying again updates the copy's end time
    with track.start_run(a, enabled=True, run_id=run_id) as resumed:
        resumed.track(1.0, "later", step=0)
    assert a.store.runs[run_id].ended_at is not None
    again = copy_run(run_id, a, b)
    assert (again.action, again.dest_id) == (CopyAction.UPDATED, result.dest_id)
    assert copied.created_at == T0 - 3600.0 and copied.ended_at == a.store.runs[run_id].ended_at
    assert run_differences(a.read_run(run_id), b.read_run(result.dest_id)) == []
    assert copy_run(run_id, a, b).action is CopyAction.SKIPPED


def test_run_differences_sees_other_times(tmp_path: Path) -> None:
    a, b = memory(), memory()
    run_id = write_full_run(a, tmp_path, scalars=5, status=Status.FINISHED)
    result = copy_run(run_id, a, b)
    b.store.runs[result.dest_id].ended_at = a.store.runs[run_id].ended_at + 5.0  # type: ignore[operator]
    differences = run_differences(a.read_run(run_id), b.read_run(result.dest_id))
    assert [line.split(":")[0] for line in differences] == ["ended_at"]
    assert run_differences(a.read_run(run_id), b.read_run(result.dest_id), check_times=False) == []


def test_a_destination_that_keeps_its_own_times_says_so(tmp_path: Path) -> None:
    a = memory()
    run_id = write_full_run(a, tmp_path, scalars=5, status=Status.FINISHED)
    result = copy_run(run_id, a, ScalarsOnly(MemoryStore(), "untimed"))
    assert "the start and end times" in {item.what for item in result.not_copied}


def test_copy_runs_by_experiment_and_by_ids(tmp_path: Path) -> None:
    a, b = memory(), memory()
    ids = {}
    for experiment, name in [("x", "one"), ("x", "two"), ("y", "three")]:
        with track.start_run(a, enabled=True, experiment=experiment, name=name) as run:
            run.track(1.0, "loss")
        ids[name] = run.id
    results = copy_runs(a, b, experiment="x")
    assert sorted(r.source_id for r in results) == sorted([ids["one"], ids["two"]])
    assert {info.experiment for info in b.list_runs()} == {"x"}
    results = copy_runs(a, b, run_ids=[ids["three"], ids["one"]])
    assert [(r.source_id, r.action) for r in results] == [
        (ids["three"], CopyAction.CREATED),
        (ids["one"], CopyAction.SKIPPED),
    ]
    assert len(b.list_runs()) == 3


def test_a_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    a, b = memory(), memory()
    with track.start_run(a, enabled=True) as run:
        run.track(1.0, "loss")
    with pytest.raises(KeyError, match="no-such-run"):
        copy_run("no-such-run", a, b)
    with pytest.raises(CopyError, match="1 of 2 run") as caught:
        copy_runs(a, b, run_ids=["no-such-run", run.id])
    assert [r.source_id for r in caught.value.results] == [run.id]
    assert isinstance(caught.value.failures["no-such-run"], KeyError)
    with pytest.raises(TypeError, match="run_ids"):
        copy_runs(a, b, run_ids="abc")
    with pytest.raises(ValueError, match="batch_size"):
        copy_runs(a, b, batch_size=0)
    with pytest.raises(ValueError, match="the same store"):
        copy_runs(a, MemoryBackend(a.store, a.location.split(":", 1)[1]))


def test_backend_strings_work_too(tmp_path: Path) -> None:
    source, dest = f"memory:s-{uuid.uuid4().hex}", f"memory:d-{uuid.uuid4().hex}"
    with track.start_run(source, enabled=True) as run:
        run.track(1.0, "loss")
    result = track.copy_run(run.id, source, dest)
    assert track.open_run(result.dest_id, dest).sequence("loss").values() == [1.0]
    assert [r.action for r in track.copy_runs(source, dest)] == [CopyAction.SKIPPED]


def test_progress_is_shown_on_a_terminal_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = memory(), memory()
    run_id = write_full_run(a, tmp_path, scalars=100)
    copy_runs(a, b)  # stderr is not a terminal under pytest: nothing shown
    assert capsys.readouterr().err == ""
    assert CopyProgress(None, stream=io.StringIO()).enabled is False

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    meter = CopyProgress(None, stream=screen)
    assert meter.enabled
    meter.start(1)
    meter.run(1, "original", 2)
    meter.sequence(2)
    time.sleep(0.11)
    meter.points(1000)
    meter.finish("done")
    text = screen.getvalue()
    assert "copying run 1/1 original: sequence 0/2, 0 points" in text
    assert "sequence 2/2, 1,000 points" in text
    assert text.endswith("\n") and text.rstrip(" \n").endswith("\rdone")
    copy_run(run_id, a, memory(), progress=True)
    assert "copying run 1/1 original" in capsys.readouterr().err
