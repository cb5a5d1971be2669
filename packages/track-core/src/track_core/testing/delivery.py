"""The kit's delivery topic: what the background writer promises, checked on the backend.

Writes fail at chosen moments through ``FaultyBackend``: before the store took them, after, and
part way through a batch, as when several of its requests are in flight and one fails (the
backend must be idempotent: a retried batch stores nothing twice), for a while and for good
(one refused value must not cost the run its other values, nor its status). ``close()`` must
have stored everything when it returns.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import pytest

import track_core as track
from track_core.backend import Backend, Capability, PermanentWriteError
from track_core.context import Context
from track_core.errors import RejectedItemWarning
from track_core.status import Status
from track_core.testing.base import ConformanceBase, StorageReader
from track_core.testing.faults import Fault, FaultyBackend

#: Retries come fast in these tests; the rules are the same as with the defaults.
# Fast retries, and a close() that waits as long as the faults take to play out: refusing one
# point of 3,000 on a server takes a dozen bisecting requests, which on a loaded machine (tests
# run in parallel) outlast the default 15 s bound, and the tests are about what is stored, not
# about how long close() waits.
FAST_RETRIES = {
    "flush_interval": 0.02,
    "retry_initial": 0.02,
    "retry_max": 0.2,
    "close_timeout": 300.0,
}


class DeliveryConformance(ConformanceBase):
    """Nothing lost, nothing duplicated, whatever the writes go through."""

    def start_faulty(
        self, backend: Backend, faults: list[Fault], **run_options: object
    ) -> tuple[track.TrackedRun, FaultyBackend]:
        faulty = FaultyBackend(backend, faults)
        writer = track.WriterOptions(**FAST_RETRIES)  # type: ignore[arg-type]
        run = track.start_run(faulty, enabled=True, writer=writer, **run_options)  # type: ignore[arg-type]
        assert isinstance(run, track.TrackedRun)
        return run, faulty

    def _track_steps(self, run: track.TrackedRun, count: int) -> None:
        for step in range(count):
            run.track(step * 0.25, "loss", step=step, context={"subset": "train"})

    def _assert_steps(
        self,
        backend: Backend,
        storage_reader: StorageReader,
        run_id: str,
        expected: list[int],
    ) -> None:
        for origin, reader in self.readers(backend, storage_reader, run_id):
            points = list(reader.points("loss", Context(subset="train")))
            steps = [point.step for point in points]
            assert steps == expected, (origin, "lost or duplicated points", steps)
            assert [point.value for point in points] == [s * 0.25 for s in expected], origin

    def test_close_has_stored_everything_when_it_returns(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        run = self.start(backend)
        run["hparams"] = {"lr": 0.5}
        self._track_steps(run, 1500)
        run.close()  # no flush: close() itself must wait until the backend holds everything
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert reader.status is Status.FINISHED, origin
            assert reader.params["hparams"] == {"lr": 0.5}, origin
            assert len(reader.points("loss", Context(subset="train"))) == 1500, origin

    @pytest.mark.parametrize("when", ["before", "after"])
    def test_a_batch_failing_for_a_while_is_stored_once(
        self, backend: Backend, storage_reader: StorageReader, when: str
    ) -> None:
        faults = [Fault("write_points", when=when, times=3, skip=1)]  # type: ignore[arg-type]
        run, faulty = self.start_faulty(backend, faults)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", track.BackendUnavailableWarning)
            self._track_steps(run, 2500)
            run.close()
        assert faulty.faults[0].raised == 3, "the injected failures did not happen"
        self._assert_steps(backend, storage_reader, run.id, list(range(2500)))
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert reader.status is Status.FINISHED, origin

    def test_a_batch_failing_part_way_is_stored_once_and_in_order(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        """The store took part of a batch (some sequences whole, others half way) before the
        write failed, as when one of several requests in flight fails: the retried batch must
        leave every sequence complete, each point once, in step order."""
        contexts = [{"subset": "train"}, {"subset": "val"}]
        faults = [Fault("write_points", when="partway", times=3, skip=1)]
        run, faulty = self.start_faulty(backend, faults)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", track.BackendUnavailableWarning)
            for step in range(1200):
                for context in contexts:
                    run.track(step * 0.25, "loss", step=step, context=context)
                run.track(1.0 / (step + 1), "lr", step=step)
            run.close()
        assert faulty.faults[0].raised == 3, "the injected failures did not happen"
        expected = list(range(1200))
        for origin, reader in self.readers(backend, storage_reader, run.id):
            for context in contexts:
                points = list(reader.points("loss", Context(context)))
                assert [p.step for p in points] == expected, (origin, context)
                assert [p.value for p in points] == [s * 0.25 for s in expected], origin
            lr = list(reader.points("lr", Context()))
            assert [p.step for p in lr] == expected, (origin, "lr")
            assert [p.value for p in lr] == [1.0 / (s + 1) for s in expected], origin
            assert reader.status is Status.FINISHED, origin

    def test_a_close_failing_after_the_store_took_it_is_retried(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        run, faulty = self.start_faulty(backend, [Fault("close", when="after", times=2)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", track.BackendUnavailableWarning)
            self._track_steps(run, 10)
            run.close(Status.KILLED)
        assert faulty.faults[0].raised == 2
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert reader.status is Status.KILLED, origin

    @pytest.mark.parametrize("error", ["permanent", "unknown"])
    def test_one_refused_point_costs_nothing_else(
        self, backend: Backend, storage_reader: StorageReader, error: str, tmp_path: Path
    ) -> None:
        def refusal() -> BaseException:
            if error == "permanent":
                return PermanentWriteError("injected: this value cannot be stored")
            return ValueError("injected: an error the core does not know")

        fault = Fault("write_points", error=refusal, times=None, step=7)
        run, _ = self.start_faulty(backend, [fault])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._track_steps(run, 3000)
            run.close()
        refused = [w.message for w in caught if isinstance(w.message, RejectedItemWarning)]
        assert len(refused) == 1, [str(w.message) for w in caught]
        warning = refused[0]
        assert (warning.sequence, warning.step) == ("loss", 7)
        assert warning.context == Context(subset="train")
        assert "injected" in warning.reason
        expected = [step for step in range(3000) if step != 7]
        self._assert_steps(backend, storage_reader, run.id, expected)
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert reader.status is Status.FINISHED, origin
        # after the cause is gone, the dead letter is replayed into the same run
        dead_letter = Path(str(warning.dead_letter))
        assert dead_letter.is_file()
        assert track.replay(dead_letter, backend) == 1
        self._assert_steps(backend, storage_reader, run.id, list(range(3000)))

    def test_a_refused_operation_costs_nothing_else(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        fault = Fault(
            "set_params",
            error=lambda: PermanentWriteError("injected refusal"),
            times=None,
            accepts=lambda params: "refused" in params,
        )
        run, _ = self.start_faulty(backend, [fault])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run["refused"] = {"a": 1}
            run["kept"] = {"b": 2}
            self._track_steps(run, 20)
            run.close(Status.FAILED, "diverged")
        refused = [w.message for w in caught if isinstance(w.message, RejectedItemWarning)]
        assert [w.operation for w in refused] == ["set_params"]
        self._assert_steps(backend, storage_reader, run.id, list(range(20)))
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert "refused" not in reader.params, origin
            assert reader.params["kept"] == {"b": 2}, origin
            assert reader.status is Status.FAILED, origin
            assert reader.error is not None and "diverged" in reader.error, origin

    def test_an_artifact_deleted_after_logging_is_stored(
        self, backend: Backend, storage_reader: StorageReader, tmp_path: Path
    ) -> None:
        self.require(backend, Capability.ARTIFACTS)
        model = tmp_path / "model.bin"
        model.write_bytes(b"weights v1")
        with self.start(backend) as run:
            run.log_artifact(model, "models/model.bin")
            model.write_bytes(b"weights v2, written after log_artifact")
            model.unlink()
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert reader.artifact_bytes("models/model.bin") == b"weights v1", origin

    def test_a_backend_down_at_start_gets_the_whole_run_once_it_is_back(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        experiment = f"offline-{uuid.uuid4().hex[:12]}"
        with pytest.warns(track.BackendUnavailableWarning, match="starts anyway"):
            run, faulty = self.start_faulty(
                backend, [Fault("create_run", times=3)], experiment=experiment, name="late"
            )
        assert run.id.startswith("track-") and run.backend_id is None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", track.BackendUnavailableWarning)
            run["hparams"] = {"lr": 0.125}
            self._track_steps(run, 600)
            run.close()
        assert faulty.faults[0].raised == 3, "the backend was not down at start"
        run_id = run.backend_id
        assert run_id is not None, "the run was never created on the backend"
        assert [info.id for info in backend.list_runs(experiment)] == [run_id]
        self._assert_steps(backend, storage_reader, run_id, list(range(600)))
        for origin, reader in self.readers(backend, storage_reader, run_id):
            assert reader.name == "late", origin
            assert reader.params["hparams"] == {"lr": 0.125}, origin
            assert reader.status is Status.FINISHED, origin
