"""The kit's copy topic: a run copied out of the backend and back reads back equal (issue 14),
its start and end times included where the backend keeps them (``Capability.RUN_TIMES``)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import cast

import track_core as track
from track_core.backend import Backend, Capability, RunSpec, TimedRunWriter
from track_core.copying import CopyAction, copy_run, run_differences, run_times
from track_core.memory import MemoryBackend, MemoryStore
from track_core.testing.base import ConformanceBase, StorageReader


class CopyConformance(ConformanceBase):
    """``copy_run`` from the backend to another and back: nothing changes, nothing doubles."""

    def test_a_run_copied_out_and_back_reads_back_equal(
        self, backend: Backend, storage_reader: StorageReader, tmp_path: Path
    ) -> None:
        capabilities = backend.capabilities
        with self.start(
            backend, experiment="copies", name="original", description="d", tags=["t1"]
        ) as run:
            run["hparams"] = {"lr": 0.25, "layers": [4, 2], "nested": {"on": True}}
            for step in range(250):
                run.track(1.0 / (step + 1), "loss", step=step, epoch=step // 100)
                run.track(step * 2, "seen", step=step, context={"subset": "val"})
            if Capability.TEXTS in capabilities:
                run.track(track.Text("notes ✓"), "notes")
            if Capability.IMAGES in capabilities:
                import numpy as np  # the kit's image tests need numpy, as images do

                picture = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
                run.track(track.Image(picture, caption="c"), "samples")
            if Capability.ARTIFACTS in capabilities:
                (tmp_path / "model.txt").write_text("weights")
                run.log_artifact(tmp_path / "model.txt", "model/model.txt")
            time.sleep(0.02)  # the run lasts long enough that a copy's own times would differ
        elsewhere = MemoryBackend(MemoryStore(), f"copies-{uuid.uuid4().hex}")
        out = copy_run(run.id, backend, elsewhere)
        assert out.action is CopyAction.CREATED and out.complete, out
        original = backend.read_run(run.id)
        tolerance = self.timestamp_tolerance
        timed = Capability.RUN_TIMES in capabilities
        there = elsewhere.read_run(out.dest_id)
        assert run_differences(original, there, check_times=timed) == []
        created, ended = run_times(backend, original)
        if timed:
            assert created is not None and ended is not None and created < ended, (created, ended)
            assert (there.created_at, there.ended_at) == (created, ended)
        back = copy_run(out.dest_id, elsewhere, backend)
        assert back.action is CopyAction.CREATED, back
        # where the backend does not keep given times, the copy says it could not copy them
        lost = () if timed else ("the start and end times",)
        assert tuple(item.what for item in back.not_copied) == lost, back
        if created is not None and ended is not None:
            returned = run_times(backend, backend.read_run(back.dest_id))
            assert returned[0] is not None and abs(returned[0] - created) <= 0.001, returned
            assert returned[1] is not None and abs(returned[1] - ended) <= 0.001, returned
        for origin, reader in self.readers(backend, storage_reader, back.dest_id):
            differences = run_differences(
                original, reader, timestamp_tolerance=tolerance, check_times=timed
            )
            assert differences == [], (origin, differences)
        if Capability.ARTIFACTS in capabilities:
            assert backend.read_run(back.dest_id).artifact_bytes("model/model.txt") == b"weights"
        again = copy_run(run.id, backend, elsewhere)
        assert (again.action, again.dest_id) == (CopyAction.SKIPPED, out.dest_id)
        assert len(elsewhere.list_runs()) == 1

    def test_a_run_starts_and_ends_at_the_times_it_is_given(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        """``RunSpec.created_at`` and ``close(..., ended_at=)``: what ``track copy`` uses to
        keep a copied run's times (read back through both readers, to the millisecond)."""
        self.require(backend, Capability.RUN_TIMES)
        started, finished = 1_600_000_000.25, 1_600_003_600.5  # whole milliseconds
        writer = backend.create_run(RunSpec(experiment="copies", name="timed", created_at=started))
        cast(TimedRunWriter, writer).close(track.Status.FINISHED, None, ended_at=finished)
        for origin, reader in self.readers(backend, storage_reader, writer.id):
            assert reader.status is track.Status.FINISHED, origin
            if origin == "storage" and not hasattr(reader, "created_at"):
                continue  # a storage reader that gives the times is held to them too
            times = (getattr(reader, "created_at", None), getattr(reader, "ended_at", None))
            assert times[0] is not None and abs(times[0] - started) <= 0.001, (origin, times)
            assert times[1] is not None and abs(times[1] - finished) <= 0.001, (origin, times)
        (info,) = [info for info in backend.list_runs("copies") if info.id == writer.id]
        assert info.created_at is not None and abs(info.created_at - started) <= 0.001, info
        assert info.ended_at is not None and abs(info.ended_at - finished) <= 0.001, info
