"""The backend conformance kit: subclass ``BackendConformance`` in one test file.

    from track_core.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            return MyBackend(tmp_path)

        @pytest.fixture
        def storage_reader(self, backend):
            return lambda run_id: MyStorageReader(backend.path, run_id)  # reads the SDK directly

Every test writes through ``track_core.start_run`` (the background writer, as users run it), then
checks what it reads back twice: through the backend's own ``read_run``, and through
``storage_reader``, which must read the backend's storage without the adapter. Tests of optional
capabilities are skipped when the backend does not declare them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import track_core as track
from track_core.backend import Backend, Capability, RunSpec, TrackedPoint, batch_size_of
from track_core.context import Context
from track_core.status import Status
from track_core.testing.base import ConformanceBase, StorageReader
from track_core.testing.copies import CopyConformance
from track_core.testing.delivery import DeliveryConformance
from track_core.testing.logging_calls import LoggingCallsConformance
from track_core.values import Distribution, Image, Text, ValueKind

#: Every kind of param value, nested.
PARAMS: dict[str, Any] = {
    "lr": 0.001,
    "epochs": 10,
    "big": 2**53,
    "negative": -3,
    "tiny": 1e-300,
    "flag": True,
    "off": False,
    "nothing": None,
    "text": "résumé ✓ with spaces/and:colons",
    "empty_text": "",
    "layers": [64, 32, 16],
    "mixed": [1, "two", 3.0, None, True],
    "nested": {
        "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
        "deep": {"a": {"b": {"c": 1}}},
    },
    "list_of_dicts": [{"a": 1}, {"b": [2, 3]}],
    "empty_dict": {},
    "empty_list": [],
}

#: Scalars that must come back exactly: ints as numbers, NaN as NaN, infinities as infinities.
SCALARS: list[float | int] = [
    0,
    1,
    -1,
    0.5,
    -2.25,
    1e-300,
    1e300,
    2**53,
    -(2**53),
    123456789,
    3.141592653589793,
    float("nan"),
    float("inf"),
    float("-inf"),
    7,
]


@dataclasses.dataclass
class _DataclassConfig:
    lr: float = 0.1
    sizes: tuple[int, ...] = (1, 2)


def _same_scalar(got: object, expected: float | int) -> bool:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(got)
    return got == expected


class StorageConformance(ConformanceBase):
    """What is tracked is stored, exactly: params, every value kind, attributes, status,
    resume, archive, artifacts, bad input."""

    # -- the backend object ----------------------------------------------------------------
    def test_backend_describes_itself(self, backend: Backend) -> None:
        assert isinstance(backend.name, str) and backend.name
        assert isinstance(backend.location, str) and backend.location
        assert isinstance(backend.capabilities, frozenset)
        assert all(isinstance(item, Capability) for item in backend.capabilities)

    def test_reading_a_missing_run_raises_key_error(self, backend: Backend) -> None:
        with pytest.raises(KeyError):
            backend.read_run("no-such-run-0123456789abcdef")

    # -- params ----------------------------------------------------------------------------
    def test_params_round_trip(self, backend: Backend, storage_reader: StorageReader) -> None:
        with self.start(backend) as run:
            run["hparams"] = PARAMS
            run["scalar"] = 42
            run["dataclass"] = _DataclassConfig()
            run["namespace"] = argparse.Namespace(batch=32, name="x")
            assert run["hparams"] == PARAMS
        for origin, reader in self.readers(backend, storage_reader, run.id):
            params = dict(reader.params)
            assert params["hparams"] == PARAMS, origin
            assert params["scalar"] == 42, origin
            assert params["dataclass"] == {"lr": 0.1, "sizes": [1, 2]}, origin
            assert params["namespace"] == {"batch": 32, "name": "x"}, origin
            assert type(params["hparams"]["epochs"]) is int, origin
            assert type(params["hparams"]["flag"]) is bool, origin

    def test_setting_a_param_again_keeps_the_latest(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        with self.start(backend) as run:
            run["hparams"] = {"lr": 0.1, "layers": [1]}
            run["hparams"] = {"lr": 0.2, "layers": [1, 2]}
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert reader.params["hparams"] == {"lr": 0.2, "layers": [1, 2]}, origin

    # -- scalar sequences ------------------------------------------------------------------
    def test_scalars_round_trip_exactly(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        steps = [0, 1, 2, 5, 9, 10, 11, 20, 50, 99, 100, 101, 500, 1000, 10_000]
        windows = []
        with self.start(backend) as run:
            for index, (step, value) in enumerate(zip(steps, SCALARS, strict=True)):
                before = time.time()
                run.track(value, "metric", step=step, epoch=index // 4)
                windows.append((before, time.time()))
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert self.sequence_map(reader) == {("metric", Context()): ValueKind.SCALAR}, origin
            points = list(reader.points("metric", Context()))
            assert [p.step for p in points] == steps, origin
            assert [p.epoch for p in points] == [i // 4 for i in range(len(steps))], origin
            for point, expected in zip(points, SCALARS, strict=True):
                assert _same_scalar(point.value, expected), (origin, point, expected)
            for point, (before, after) in zip(points, windows, strict=True):
                tolerance = self.timestamp_tolerance
                assert before - tolerance <= point.timestamp <= after + tolerance, (origin, point)

    def test_many_points_keep_order_and_count(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        count = 3000
        with self.start(backend) as run:
            for step in range(count):
                run.track(step * 0.5, "loss", step=step)
        for origin, reader in self.readers(backend, storage_reader, run.id):
            points = list(reader.points("loss", Context()))
            assert [p.step for p in points] == list(range(count)), origin
            assert [p.value for p in points] == [s * 0.5 for s in range(count)], origin
            stamps = [p.timestamp for p in points]
            assert stamps == sorted(stamps), origin

    def test_a_batch_of_the_declared_size_is_stored_whole(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        """One ``write_points`` call of ``batch_size_of(backend)`` points (the declared
        ``batch_size``, else the default): what the background writer hands a backend when the
        training loop tracks faster than it stores. Every point lands, in order per sequence."""
        size = batch_size_of(backend)
        sequences = [("loss", Context({"subset": "train"})), ("loss", Context({"subset": "val"}))]
        sequences.append(("lr", Context()))
        now = time.time()
        points = [
            TrackedPoint(*sequences[index % 3], ValueKind.SCALAR, index // 3, None, now, index)
            for index in range(size)
        ]
        for name, context in sequences:  # as start_run checks a sequence before its first point
            backend.check_sequence(name, context, ValueKind.SCALAR)
        writer = backend.create_run(RunSpec(experiment="conformance", name="one-full-batch"))
        writer.write_points(points)
        writer.close(Status.FINISHED, None)
        for origin, reader in self.readers(backend, storage_reader, writer.id):
            for offset, (name, context) in enumerate(sequences):
                stored = list(reader.points(name, context))
                expected = range(offset, size, 3)
                assert [p.step for p in stored] == [i // 3 for i in expected], (origin, name)
                assert [p.value for p in stored] == list(expected), (origin, name, context)

    def test_step_none_counts_per_sequence(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        with self.start(backend) as run:
            for value in range(3):
                run.track(value, "a")
                run.track(value * 10, "b")
            run.track(100, "a", step=10)
            run.track(101, "a")
            run.track(5, "a", context={"subset": "val"})
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert [p.step for p in reader.points("a", Context())] == [0, 1, 2, 10, 11], origin
            assert [p.value for p in reader.points("a", Context())] == [0, 1, 2, 100, 101], origin
            assert [p.step for p in reader.points("b", Context())] == [0, 1, 2], origin
            assert [p.step for p in reader.points("a", Context(subset="val"))] == [0], origin

    def test_contexts_keep_sequences_apart(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        contexts: list[Mapping[str, Any]] = [
            {},
            {"subset": "train"},
            {"subset": "val"},
            {"subset": "val", "fold": 1},
            {"subset": "val", "fold": 2, "ema": True, "scale": 0.5, "tag": None},
        ]
        with self.start(backend) as run:
            for index, context in enumerate(contexts):
                for step in range(3):
                    run.track(index * 100 + step, "loss", step=step, context=context)
            run.track(7, "loss", step=3, context=Context(subset="train"))  # a Context or a dict
        expected = {("loss", Context(c)): ValueKind.SCALAR for c in contexts}
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert self.sequence_map(reader) == expected, origin
            for index, context in enumerate(contexts):
                values = [p.value for p in reader.points("loss", Context(context))]
                tail = [7] if context == {"subset": "train"} else []
                assert values == [index * 100 + s for s in range(3)] + tail, (origin, context)

    def test_eight_threads_lose_and_duplicate_nothing(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        threads, per_thread = 8, 400
        with self.start(backend) as run:

            def work(index: int) -> None:
                for step in range(per_thread):
                    run.track(step, "own", context={"thread": index})
                    run.track(index, "shared")

            workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        for origin, reader in self.readers(backend, storage_reader, run.id):
            for index in range(threads):
                points = list(reader.points("own", Context(thread=index)))
                assert [p.value for p in points] == list(range(per_thread)), (origin, index)
            shared = list(reader.points("shared", Context()))
            assert [p.step for p in shared] == list(range(threads * per_thread)), origin
            counts = {index: 0 for index in range(threads)}
            for point in shared:
                counts[int(point.value)] += 1  # type: ignore[arg-type]
            assert counts == {index: per_thread for index in range(threads)}, origin

    # -- other value kinds -----------------------------------------------------------------
    def test_images_round_trip(self, backend: Backend, storage_reader: StorageReader) -> None:
        self.require(backend, Capability.IMAGES)
        numpy = pytest.importorskip("numpy")
        pytest.importorskip("PIL")
        rgb = numpy.zeros((8, 12, 3), dtype=numpy.uint8)
        rgb[2:5, 3:9] = (255, 128, 0)
        gray = numpy.linspace(0.0, 1.0, 48).reshape(6, 8)
        images = [
            Image(rgb, caption="a box"),
            Image(gray),
            Image(rgb.transpose(2, 0, 1), caption="chw"),
        ]
        with self.start(backend) as run:
            for step, image in enumerate(images):
                run.track(image, "samples", step=step, context={"subset": "val"})
        for origin, reader in self.readers(backend, storage_reader, run.id):
            key = ("samples", Context(subset="val"))
            assert self.sequence_map(reader) == {key: ValueKind.IMAGE}, origin
            points = list(reader.points(*key))
            assert [p.step for p in points] == [0, 1, 2], origin
            for point, image in zip(points, images, strict=True):
                assert isinstance(point.value, Image), origin
                assert (point.value.width, point.value.height) == (image.width, image.height), (
                    origin
                )
                assert point.value.caption == image.caption, origin
                got = point.value.to_pil().convert(image.mode).tobytes()
                assert got == image.pixels(), origin

    def test_texts_round_trip(self, backend: Backend, storage_reader: StorageReader) -> None:
        self.require(backend, Capability.TEXTS)
        texts = [
            "plain",
            "",
            "ünïcödé ✓\nsecond line",
            "<svg><text>markup</text></svg>",
            "x" * 10_000,
        ]
        with self.start(backend) as run:
            for step, text in enumerate(texts):
                run.track(Text(text), "notes", step=step)
        for origin, reader in self.readers(backend, storage_reader, run.id):
            points = list(reader.points("notes", Context()))
            assert [p.value for p in points] == [Text(t) for t in texts], origin

    def test_distributions_round_trip(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        self.require(backend, Capability.DISTRIBUTIONS)
        precomputed = Distribution(bin_edges=[0.0, 0.5, 1.0, 1.5, 2.0], counts=[1, 0, 7, 2])
        from_samples = Distribution([0.1, 0.2, 0.2, 0.9, 1.5, -1.0], bins=4)
        with self.start(backend) as run:
            run.track(precomputed, "weights", step=0)
            run.track(from_samples, "weights", step=1)
        for origin, reader in self.readers(backend, storage_reader, run.id):
            points = list(reader.points("weights", Context()))
            assert [p.step for p in points] == [0, 1], origin
            for point, expected in zip(points, [precomputed, from_samples], strict=True):
                got = point.value
                assert isinstance(got, Distribution), origin
                assert list(got.counts) == list(expected.counts), origin
                assert len(got.bin_edges) == len(expected.bin_edges), origin
                for a, b in zip(got.bin_edges, expected.bin_edges, strict=True):
                    assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), origin

    def test_a_sequence_holds_one_kind(self, backend: Backend) -> None:
        self.require(backend, Capability.TEXTS)
        with self.start(backend) as run:
            run.track(1.0, "mixed")
            with pytest.raises(track.SequenceKindError, match="mixed"):
                run.track(Text("no"), "mixed")
            run.track(2.0, "mixed")
        points = backend.read_run(run.id).points("mixed", Context())
        assert [p.value for p in points] == [1.0, 2.0]

    # -- artifacts -------------------------------------------------------------------------
    def test_artifacts_round_trip(
        self, backend: Backend, storage_reader: StorageReader, tmp_path: Path
    ) -> None:
        self.require(backend, Capability.ARTIFACTS)
        weights = tmp_path / "weights.bin"
        weights.write_bytes(bytes(range(256)) * 8)
        config = tmp_path / "config.yaml"
        config.write_text("lr: 0.1\n")
        with self.start(backend) as run:
            run.log_artifact(weights, "model/weights.bin")
            run.log_artifact(config)
            with pytest.raises(FileNotFoundError, match="missing\\.txt"):
                run.log_artifact(tmp_path / "missing.txt")
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert sorted(reader.artifacts()) == ["config.yaml", "model/weights.bin"], origin
            assert reader.artifact_bytes("model/weights.bin") == weights.read_bytes(), origin
            assert reader.artifact_bytes("config.yaml") == b"lr: 0.1\n", origin

    # -- run attributes and status ---------------------------------------------------------
    def test_name_experiment_description_tags(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        with self.start(
            backend,
            experiment="conformance",
            name="first name",
            description="about it",
            tags=["a", "b"],
        ) as run:
            run.set_name("second name")
            run.set_description("what it is about")
            run.add_tag("c")
            run.remove_tag("a")
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert reader.experiment == "conformance", origin
            assert reader.name == "second name", origin
            assert reader.description == "what it is about", origin
            assert reader.tags == frozenset({"b", "c"}), origin

    def test_writer_process(
        self, backend: Backend, storage_reader: StorageReader, backend_string: str | None
    ) -> None:
        self.require(backend, Capability.WRITER_PROCESS)
        assert backend_string is not None, (
            "a backend that declares WRITER_PROCESS needs a 'backend_string' fixture"
        )
        run = track.start_run(
            backend_string, enabled=True, writer=track.WriterOptions(process="on")
        )
        assert isinstance(run, track.TrackedRun)
        with run:
            assert run.writer_pid != os.getpid()
            run["params"] = PARAMS
            for step in range(300):
                run.track(step * 0.5, "loss", step=step, context={"subset": "train"})
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert reader.status is Status.FINISHED, origin
            assert reader.params == {"params": PARAMS}, origin
            points = reader.points("loss", Context.of({"subset": "train"}))
            assert [p.step for p in points] == list(range(300)), origin
            assert [p.value for p in points] == [step * 0.5 for step in range(300)], origin

    def test_archive_and_unarchive(self, backend: Backend, storage_reader: StorageReader) -> None:
        if Capability.ARCHIVE not in backend.capabilities:
            with self.start(backend) as run:
                with pytest.raises(TypeError, match="cannot archive"):
                    run.set_archived(True)
                assert run.archived is False
            return
        with self.start(backend) as kept, self.start(backend) as archived:
            archived.set_archived(True)
            assert archived.archived is True
            with pytest.raises(TypeError):
                archived.set_archived("yes")  # type: ignore[arg-type]
        for origin, reader in self.readers(backend, storage_reader, archived.id):
            assert reader.archived is True, origin
        for origin, reader in self.readers(backend, storage_reader, kept.id):
            assert reader.archived is False, origin
        if Capability.RESUME in backend.capabilities:
            resumed = self.start(backend, run_id=archived.id)
            assert resumed.archived is True  # resuming keeps the stored state
            resumed.set_archived(False)
            resumed.close()
            for origin, reader in self.readers(backend, storage_reader, archived.id):
                assert reader.archived is False, origin

    def test_status_finished_failed_killed(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        with self.start(backend) as finished:
            finished.track(1, "x")
        with pytest.raises(ZeroDivisionError):
            with self.start(backend) as failed:
                failed.track(1, "x")
                1 / 0  # noqa: B018
        killed = self.start(backend)
        killed.close(Status.KILLED)
        assert (finished.status, failed.status, killed.status) == (
            Status.FINISHED,
            Status.FAILED,
            Status.KILLED,
        )
        for run, status in (
            (finished, Status.FINISHED),
            (failed, Status.FAILED),
            (killed, Status.KILLED),
        ):
            for origin, reader in self.readers(backend, storage_reader, run.id):
                assert reader.status is status, (origin, run.id)
        for origin, reader in self.readers(backend, storage_reader, failed.id):
            assert reader.error is not None and "ZeroDivisionError" in reader.error, origin

    def test_list_runs_by_experiment(self, backend: Backend) -> None:
        first = self.start(backend, experiment="list-a", name="one")
        first.close()
        second = self.start(backend, experiment="list-b", name="two")
        second.close()
        listed_a = {info.id: info for info in backend.list_runs("list-a")}
        assert first.id in listed_a and second.id not in listed_a
        assert listed_a[first.id].name == "one"
        assert listed_a[first.id].experiment == "list-a"
        assert listed_a[first.id].status is Status.FINISHED
        everything = {info.id for info in backend.list_runs()}
        assert {first.id, second.id} <= everything

    def test_resume_by_id_appends(self, backend: Backend, storage_reader: StorageReader) -> None:
        self.require(backend, Capability.RESUME)
        with self.start(backend, experiment="resume", name="resumable") as run:
            run["hparams"] = {"lr": 0.1}
            for step in range(5):
                run.track(step, "loss", context={"subset": "train"})
        with self.start(backend, run_id=run.id) as resumed:
            assert resumed.id == run.id
            assert resumed["hparams"] == {"lr": 0.1}
            for value in range(5, 8):
                resumed.track(value, "loss", context={"subset": "train"})
            resumed["extra"] = "added"
        for origin, reader in self.readers(backend, storage_reader, run.id):
            points = list(reader.points("loss", Context(subset="train")))
            assert [p.step for p in points] == list(range(8)), origin
            assert [p.value for p in points] == list(range(8)), origin
            assert reader.params["hparams"] == {"lr": 0.1}, origin
            assert reader.params["extra"] == "added", origin
            assert reader.name == "resumable" and reader.experiment == "resume", origin
            assert reader.status is Status.FINISHED, origin

    def test_resuming_a_missing_run_raises_key_error(self, backend: Backend) -> None:
        self.require(backend, Capability.RESUME)
        with pytest.raises(KeyError):
            self.start(backend, run_id="no-such-run-0123456789abcdef")

    # -- bad input -------------------------------------------------------------------------
    def test_bad_input_raises_and_leaves_the_run_usable(
        self, backend: Backend, storage_reader: StorageReader
    ) -> None:
        bad_calls: Sequence[tuple[type[BaseException], Callable[[track.TrackedRun], None]]] = [
            (TypeError, lambda r: r.track(1.0, 123)),  # type: ignore[arg-type]
            (ValueError, lambda r: r.track(1.0, "")),
            (ValueError, lambda r: r.track(1.0, "bad\nname")),
            (TypeError, lambda r: r.track("a string", "x")),
            (TypeError, lambda r: r.track(object(), "x")),
            (TypeError, lambda r: r.track([1.0, 2.0], "x")),
            (TypeError, lambda r: r.track(1.0, "x", context={1: "a"})),  # type: ignore[dict-item]
            (TypeError, lambda r: r.track(1.0, "x", context={"a": [1]})),  # type: ignore[dict-item]
            (ValueError, lambda r: r.track(1.0, "x", context={"a": float("nan")})),
            (TypeError, lambda r: r.track(1.0, "x", context="train")),  # type: ignore[arg-type]
            (ValueError, lambda r: r.track(1.0, "x", step=-1)),
            (TypeError, lambda r: r.track(1.0, "x", step="3")),  # type: ignore[arg-type]
            (TypeError, lambda r: r.track(1.0, "x", step=1.5)),  # type: ignore[arg-type]
            (ValueError, lambda r: r.track(1.0, "x", epoch=-2)),
            (TypeError, lambda r: r.__setitem__("hparams", {"model": object()})),
            (TypeError, lambda r: r.__setitem__(3, 1)),  # type: ignore[index]
            (ValueError, lambda r: r.add_tag("")),
        ]
        with self.start(backend) as run:
            run.track(1.0, "x", step=0)
            for error_type, call in bad_calls:
                with pytest.raises(error_type) as caught:
                    call(run)
                assert str(caught.value), f"{error_type.__name__} without a message"
            with pytest.raises(TypeError, match=r"hparams\.model"):
                run["hparams"] = {"model": object()}
            run.track(2.0, "x", step=1)
            run["ok"] = {"still": "usable"}
        for origin, reader in self.readers(backend, storage_reader, run.id):
            assert [p.value for p in reader.points("x", Context())] == [1.0, 2.0], origin
            assert reader.params["ok"] == {"still": "usable"}, origin
            assert "hparams" not in reader.params, origin
            assert list(self.sequence_map(reader)) == [("x", Context())], origin

    def test_a_closed_run_refuses_writes(self, backend: Backend) -> None:
        run = self.start(backend)
        run.close()
        run.close()  # idempotent
        with pytest.raises(track.RunClosedError):
            run.track(1.0, "x")
        with pytest.raises(track.RunClosedError):
            run["late"] = 1


class BackendConformance(
    StorageConformance, DeliveryConformance, LoggingCallsConformance, CopyConformance
):
    """The whole kit: every topic. A backend still growing can subclass single topics
    (``StorageConformance``, ``DeliveryConformance``, ``LoggingCallsConformance``,
    ``CopyConformance``) instead."""
