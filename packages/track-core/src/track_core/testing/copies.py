"""The kit's copy topic: a run copied out of the backend and back reads back equal (issue 14)."""

from __future__ import annotations

import uuid
from pathlib import Path

import track_core as track
from track_core.backend import Backend, Capability
from track_core.copying import CopyAction, copy_run, run_differences
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
        elsewhere = MemoryBackend(MemoryStore(), f"copies-{uuid.uuid4().hex}")
        out = copy_run(run.id, backend, elsewhere)
        assert out.action is CopyAction.CREATED and out.complete, out
        original = backend.read_run(run.id)
        tolerance = self.timestamp_tolerance
        assert run_differences(original, elsewhere.read_run(out.dest_id)) == []
        back = copy_run(out.dest_id, elsewhere, backend)
        assert back.action is CopyAction.CREATED and back.complete, back
        for origin, reader in self.readers(backend, storage_reader, back.dest_id):
            differences = run_differences(original, reader, timestamp_tolerance=tolerance)
            assert differences == [], (origin, differences)
        if Capability.ARTIFACTS in capabilities:
            assert backend.read_run(back.dest_id).artifact_bytes("model/model.txt") == b"weights"
        again = copy_run(run.id, backend, elsewhere)
        assert (again.action, again.dest_id) == (CopyAction.SKIPPED, out.dest_id)
        assert len(elsewhere.list_runs()) == 1
