"""The kit's logging-calls topic: the forms of ``track()``, ``log_artifacts`` and several
backends at once that users expect."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

import track_core as track
from track_core.backend import Backend, Capability
from track_core.context import Context
from track_core.memory import MemoryBackend, MemoryStore
from track_core.status import Status
from track_core.testing.base import ConformanceBase, StorageReader

#: A wall time well in the past (2021-01-01T00:00:00Z), as TensorBoard logs and copied runs have.
PAST = 1_609_459_200.0


class LoggingCallsConformance(ConformanceBase):
    """Dicts of values, given timestamps, the step range, directories of artifacts."""

    def test_a_dict_of_values_is_one_call(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        with self.start(backend) as run:
            for step in range(5):
                run.track({"loss": 1.0 / (step + 1), "acc": step * 0.1}, step=step, epoch=1)
            run.track({"loss": 0.01}, context={"subset": "val"})
            with pytest.raises(TypeError, match="'acc'"):
                run.track({"loss": 0.5, "acc": "high"}, step=9)  # refused whole
        for origin, reader in self.readers(backend, storage_reader, run.id):
            loss = list(reader.points("loss", Context()))
            acc = list(reader.points("acc", Context()))
            assert [p.step for p in loss] == [0, 1, 2, 3, 4], origin
            assert [p.step for p in acc] == [0, 1, 2, 3, 4], origin
            assert [p.value for p in acc] == [step * 0.1 for step in range(5)], origin
            assert {p.epoch for p in loss} == {1}, origin
            assert [p.timestamp for p in loss] == [p.timestamp for p in acc], origin
            assert [p.value for p in reader.points("loss", Context(subset="val"))] == [0.01]

    def test_given_timestamps_are_stored(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        stamps = [PAST + step * 1.5 for step in range(4)]
        with self.start(backend) as run:
            for step, stamp in enumerate(stamps):
                run.track(float(step), "replayed", step=step, timestamp=stamp)
            for bad in (float("nan"), -1.0, 0.0):
                with pytest.raises(ValueError, match="timestamp"):
                    run.track(1.0, "replayed", timestamp=bad)
            with pytest.raises(TypeError, match="timestamp"):
                run.track(1.0, "replayed", timestamp="yesterday")  # type: ignore[arg-type]
            before = time.time()
            run.track(9.0, "now", step=0)
        tolerance = self.timestamp_tolerance
        for origin, reader in self.readers(backend, storage_reader, run.id):
            got = [p.timestamp for p in reader.points("replayed", Context())]
            assert got == pytest.approx(stamps, abs=tolerance), origin
            (now,) = reader.points("now", Context())
            assert now.timestamp >= before - tolerance, origin

    def test_steps_beyond_what_backends_hold_are_refused_at_the_call(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        largest = 2**63 - 1
        with self.start(backend) as run:
            run.track(1.0, "x", step=1)
            with pytest.raises(ValueError, match="2\\*\\*63-1"):
                run.track(2.0, "x", step=2**63)
            with pytest.raises(ValueError, match="2\\*\\*63-1"):
                run.track(2.0, "x", step=3, epoch=2**64)
            with pytest.raises(ValueError, match="64-bit"):
                run.track(2**70, "x", step=4)
            for step in range(5, 10):
                run.track(float(step), "x", step=step)
            run.track(3.0, "last", step=largest)
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert [p.step for p in reader.points("x", Context())] == [1, 5, 6, 7, 8, 9], origin
            assert [p.step for p in reader.points("last", Context())] == [largest], origin

    def test_a_directory_of_artifacts_keeps_its_tree(
        self, backend: Backend, storage_reader: StorageReader, tmp_path: Path
    ) -> None:
        self.require(backend, Capability.ARTIFACTS)
        output = tmp_path / "output"
        (output / "eval" / "coco").mkdir(parents=True)
        (output / "config.yaml").write_text("lr: 0.1\n")
        (output / "eval" / "coco" / "results.json").write_text('{"AP": 41.0}')
        (output / "eval" / "log.txt").write_bytes(b"\x00binary\xff")
        with self.start(backend) as run:
            run.log_artifacts(output, prefix="out")
            run.log_artifacts(output / "eval")
            with pytest.raises(NotADirectoryError):
                run.log_artifacts(output / "config.yaml")
        expected = {
            "out/config.yaml": b"lr: 0.1\n",
            "out/eval/coco/results.json": b'{"AP": 41.0}',
            "out/eval/log.txt": b"\x00binary\xff",
            "coco/results.json": b'{"AP": 41.0}',
            "log.txt": b"\x00binary\xff",
        }
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert set(expected) <= set(reader.artifacts()), (origin, reader.artifacts())
            for name, data in expected.items():
                assert reader.artifact_bytes(name) == data, (origin, name)

    def test_a_run_on_this_backend_and_another_at_once(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        other = MemoryBackend(MemoryStore(), f"beside-{uuid.uuid4().hex}")
        writer = track.WriterOptions(raise_errors=True)
        run = track.start_run([backend, other], enabled=True, writer=writer, name="both")
        assert isinstance(run, track.MultiRun)
        run["hparams"] = {"lr": 0.5}
        for step in range(300):
            run.track({"loss": 1.0 / (step + 1), "acc": step / 300}, step=step)
        run.add_tag("fan-out")
        run.close(Status.FAILED, "diverged")
        here, there = run.id.split("|")
        assert run.ids == {
            f"{backend.name}:{backend.location}": here,
            f"{other.name}:{other.location}": there,
        }
        for origin, reader in [
            *self.readers(backend, storage_reader, here),
            ("other", other.read_run(there)),
        ]:
            assert reader.name == "both" and "fan-out" in reader.tags, origin
            assert reader.params["hparams"] == {"lr": 0.5}, origin
            assert reader.status is Status.FAILED, origin
            assert [p.step for p in reader.points("acc", Context())] == list(range(300)), origin
        stamps = [p.timestamp for p in other.read_run(there).points("loss", Context())]
        ours = [p.timestamp for p in backend.read_run(here).points("loss", Context())]
        assert ours == pytest.approx(stamps, abs=self.timestamp_tolerance)
