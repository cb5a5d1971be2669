"""The background writer: order, back-pressure, outages survived through the spool, bounded close.

These use the memory backend's store switched unavailable (every write raises ConnectionError),
the same failure a dead server gives; the real-server versions are in tests/resilience.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest

import track_core as track
from track_core._spool import read_spool
from track_core._writer import PointBatch
from track_core.backend import Capability, TrackedPoint
from track_core.context import Context
from track_core.memory import MemoryBackend, MemoryStore
from track_core.values import ValueKind


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
    return folder


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend(MemoryStore(), f"writer-{uuid.uuid4().hex}")


def fast(**overrides: object) -> track.WriterOptions:
    options: dict[str, object] = {"flush_interval": 0.02, "retry_initial": 0.02, "retry_max": 0.1}
    options.update(overrides)
    return track.WriterOptions(**options)  # type: ignore[arg-type]


def values_of(backend: MemoryBackend, run_id: str, name: str = "loss") -> list[object]:
    return [p.value for p in backend.read_run(run_id).points(name, Context())]


def test_writes_happen_off_the_callers_thread_in_batches(backend: MemoryBackend) -> None:
    run = track.start_run(backend, writer=fast())
    for step in range(5000):
        run.track(step, "loss")
    assert run.flush(timeout=30)
    stored = backend.store.runs[run.id]
    assert values_of(backend, run.id) == list(range(5000))
    assert stored.write_calls < 5000 / 10  # batches, not one call per value
    run.close()


def test_flush_waits_until_everything_is_stored(backend: MemoryBackend) -> None:
    run = track.start_run(backend, writer=fast(flush_interval=10.0))
    run.track(1.0, "loss")
    assert run.flush(timeout=30)
    assert values_of(backend, run.id) == [1.0]
    run.close()


def test_synchronous_mode_writes_at_once_and_raises_backend_errors(backend: MemoryBackend) -> None:
    run = track.start_run(backend, writer=fast(synchronous=True))
    run.track(1.0, "loss")
    assert values_of(backend, run.id) == [1.0]
    backend.store.unavailable = True
    with pytest.raises(ConnectionError):
        run.track(2.0, "loss")
    backend.store.unavailable = False
    run.close()


def test_an_outage_loses_and_duplicates_nothing(backend: MemoryBackend, spool_dir: Path) -> None:
    run = track.start_run(backend, writer=fast())
    with pytest.warns(track.BackendUnavailableWarning):
        for step in range(3000):
            if step == 1000:
                backend.store.unavailable = True
            if step == 2000:
                deadline = time.monotonic() + 10
                while not list(spool_dir.glob("*.spool")) and time.monotonic() < deadline:
                    time.sleep(0.01)
                spooled = list(spool_dir.glob("*.spool"))
                assert spooled, "values were not spooled to disk while the backend was down"
                backend.store.unavailable = False
            run.track(step, "loss")
            if step % 100 == 0:
                time.sleep(0.005)  # a training step takes time
        run.close()
    assert values_of(backend, run.id) == list(range(3000))
    assert backend.read_run(run.id).status is track.Status.FINISHED
    assert not list(spool_dir.glob("*.spool"))


def test_memory_stays_bounded_while_the_backend_is_down(backend: MemoryBackend) -> None:
    run = track.start_run(backend, writer=fast(max_buffered=500))
    backend.store.unavailable = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", track.BackendUnavailableWarning)
        for step in range(20_000):
            run.track(step, "loss")
            if step % 1000 == 0:
                time.sleep(0.03)
        assert run.pending == 20_000
        time.sleep(0.2)
        assert isinstance(run, track.TrackedRun)
        queued = len(run._writer._queue)
        assert queued < 500
        backend.store.unavailable = False
        run.close()
    assert values_of(backend, run.id) == list(range(20_000))


def test_back_pressure_makes_track_wait_instead_of_dropping(backend: MemoryBackend) -> None:
    run = track.start_run(backend, writer=fast(max_buffered=50))
    held = threading.Event()

    def slow_backend() -> None:  # the backend's writes block for half a second
        with backend.store.lock:
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=slow_backend)
    holder.start()
    held.wait()
    with pytest.warns(track.BackPressureWarning, match="waits"):
        for step in range(2000):
            run.track(step, "loss")
    holder.join()
    run.close()
    assert values_of(backend, run.id) == list(range(2000))


def test_close_is_bounded_and_leaves_the_rest_in_a_spool_to_replay(
    backend: MemoryBackend, spool_dir: Path
) -> None:
    run = track.start_run(backend, writer=fast(close_timeout=0.5))
    run["hparams"] = {"lr": 0.1}
    for step in range(10):
        run.track(step, "loss")
    assert run.flush(timeout=10)
    backend.store.unavailable = True
    for step in range(10, 25):
        run.track(step, "loss")
    with pytest.warns(track.DataNotWrittenWarning, match="replay"):
        started = time.monotonic()
        run.close(track.Status.FINISHED)
        assert time.monotonic() - started < 5
    spools = track.pending_spools(spool_dir)
    assert len(spools) == 1
    header, frames = read_spool(spools[0])
    assert header.run_id == run.id
    assert sum(len(frame) for frame in frames) >= 16  # 15 points and the close
    assert values_of(backend, run.id) == list(range(10))
    # the writer thread is still retrying in this process; stop it, then replay as a later process would
    backend.store.unavailable = False
    deadline = time.monotonic() + 10
    while track.pending_spools(spool_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert values_of(backend, run.id) == list(range(25))
    assert backend.read_run(run.id).status is track.Status.FINISHED


def test_replay_writes_a_spool_file_in_order(backend: MemoryBackend, spool_dir: Path) -> None:
    run = track.start_run(backend, writer=fast(close_timeout=0.2))
    backend.store.unavailable = True
    for step in range(50):
        run.track(step, "loss")
    run.add_tag("spooled")
    with pytest.warns(track.DataNotWrittenWarning):
        run.close(track.Status.KILLED)
    [path] = track.pending_spools(spool_dir)
    copy = spool_dir / "copy.spool"
    copy.write_bytes(path.read_bytes())
    backend.store.unavailable = False
    assert track.replay(copy, backend) == 52
    assert not copy.exists()
    assert values_of(backend, run.id) == list(range(50))
    assert backend.read_run(run.id).tags == {"spooled"}
    assert backend.read_run(run.id).status is track.Status.KILLED


class SizedBackend(MemoryBackend):
    """The memory backend with a declared ``batch_size`` (or none), with or without
    BATCH_WRITES."""

    def __init__(self, declared: object = None, batches: bool = True) -> None:
        super().__init__(MemoryStore(), f"sized-{uuid.uuid4().hex}")
        self.declared = declared
        self.batches = batches

    def __getattribute__(self, name: str) -> object:
        if name == "batch_size" and object.__getattribute__(self, "declared") is not None:
            return object.__getattribute__(self, "declared")
        return super().__getattribute__(name)

    @property
    def capabilities(self) -> frozenset[Capability]:
        every = super().capabilities
        return every if self.batches else every - {Capability.BATCH_WRITES}


@pytest.mark.parametrize(
    ("declared", "batches", "expected"),
    [(2500, True, 2500), (None, True, 1000), (None, False, 100), (7, False, 7)],
)
def test_the_writer_hands_the_backend_batches_of_its_declared_size(
    declared: int | None, batches: bool, expected: int
) -> None:
    backend = SizedBackend(declared, batches)
    assert track.backend.batch_size_of(backend) == expected
    # the writer sleeps until four batches are queued (or a minute), so the queue holds whole
    # batches when it takes them
    run = track.start_run(backend, writer=fast(flush_interval=60.0))
    for step in range(4 * expected):
        run.track(step, "loss")
    run.close()
    assert values_of(backend, run.id) == list(range(4 * expected))
    assert backend.store.runs[run.id].batch_sizes == [expected] * 4


@pytest.mark.parametrize("declared", [0, -5, "1000", 2.5, True])
def test_a_bad_declared_batch_size_is_refused_before_a_run_exists(declared: object) -> None:
    backend = SizedBackend(declared)
    with pytest.raises(TypeError, match=r"declares batch_size=.*positive int"):
        track.start_run(backend)
    assert backend.store.runs == {}


def test_an_exception_in_the_with_block_records_failed_with_the_error(
    backend: MemoryBackend,
) -> None:
    with pytest.raises(FloatingPointError):
        with track.start_run(backend, writer=fast()) as run:
            run.track(1.0, "loss")
            raise FloatingPointError("Loss became infinite or NaN at iteration=3!")
    stored = backend.read_run(run.id)
    assert stored.status is track.Status.FAILED
    assert stored.error is not None and "Loss became infinite" in stored.error


def test_keyboard_interrupt_records_killed(backend: MemoryBackend) -> None:
    with pytest.raises(KeyboardInterrupt):
        with track.start_run(backend, writer=fast()) as run:
            raise KeyboardInterrupt
    assert backend.read_run(run.id).status is track.Status.KILLED


def test_nan_is_stored_and_warned_once_per_sequence(backend: MemoryBackend) -> None:
    run = track.start_run(backend, writer=fast())
    with pytest.warns(track.NonFiniteValueWarning) as caught:
        run.track(1.0, "loss")
        run.track(float("nan"), "loss")
        run.track(float("inf"), "loss")
    assert len(caught) == 1
    run.close()
    assert [str(v) for v in values_of(backend, run.id)] == ["1.0", "nan", "inf"]


def test_writer_process_words() -> None:
    assert track.WriterOptions(process=True).process == "on"
    assert track.WriterOptions(process=False).process == "off"
    assert track.WriterOptions(process=" AUTO ").process == "auto"
    with pytest.raises(ValueError, match="'off', 'on' or 'auto'"):
        track.WriterOptions(process="sometimes")


def test_writer_process_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACK_WRITER_PROCESS", "auto")
    assert track.WriterOptions().process == "auto"
    monkeypatch.delenv("TRACK_WRITER_PROCESS")
    assert track.WriterOptions().process == "off"


def test_a_writer_process_where_none_can_be_made_warns_and_writes_from_a_thread() -> None:
    location = f"memory:writer-{uuid.uuid4().hex}"
    with pytest.warns(track.TrackWarning, match="does not declare Capability.WRITER_PROCESS"):
        run = track.start_run(location, writer=track.WriterOptions(process="on"))
    assert isinstance(run, track.TrackedRun)
    with run:
        run.track(1.5, "loss", step=0)
    assert run.writer_pid == os.getpid()
    assert [p.value for p in track.open_run(run.id, location).sequence("loss").points()] == [1.5]


def test_auto_writer_process_is_silent_where_none_can_be_made(backend: MemoryBackend) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = track.start_run(backend, writer=track.WriterOptions(process="auto"))
        run.close()
    assert run.writer_pid == os.getpid()


def test_a_writer_process_needs_a_backend_string(backend: MemoryBackend) -> None:
    with pytest.warns(track.TrackWarning, match="pass a backend string"):
        run = track.start_run(backend, writer=track.WriterOptions(process="on"))
    run.close()


def test_dict_contexts_name_their_sequences_by_value_and_type(backend: MemoryBackend) -> None:
    """track() looks dict contexts up by their items: numbers must still go by type (1, 1.0
    and True are equal dict items), and a dict changed between calls names its new sequence."""
    run = track.start_run(backend, writer=fast())
    for _ in range(2):  # the second time through the fast path
        run.track(1.0, "loss", context={"fold": 1})
        run.track(2.0, "loss", context={"fold": 1.0})
        run.track(3.0, "loss", context={"fold": True})
    context = {"subset": "train"}
    run.track(4.0, "loss", context=context)
    context["subset"] = "val"
    run.track(5.0, "loss", context=context)
    run.track(6.0, "loss", context={"subset": "val"})
    run.close()
    stored = backend.read_run(run.id)

    def values(context: dict[str, object]) -> list[object]:
        return [p.value for p in stored.points("loss", Context.of(context))]  # type: ignore[arg-type]

    assert values({"fold": 1}) == [1.0, 1.0]
    assert values({"fold": 1.0}) == [2.0, 2.0]
    assert values({"fold": True}) == [3.0, 3.0]
    assert values({"subset": "train"}) == [4.0]
    assert values({"subset": "val"}) == [5.0, 6.0]
    assert [p.step for p in stored.points("loss", Context(subset="val"))] == [0, 1]


def test_queued_scalars_are_not_left_for_the_garbage_collector(backend: MemoryBackend) -> None:
    """Queued points hold no Context or other collectable object, so a collection stops
    tracking them, and full collections (slow in a process that imported an SDK) skip them."""
    run = track.start_run(backend, writer=fast(flush_interval=60.0))
    context = {"subset": "train"}
    for step in range(100):  # fewer than wake the writer: they stay queued
        run.track(step * 0.5, "loss", context=context)
        run.track(step, "count", epoch=step // 10)
    queued = list(run._writer._queue)
    assert len(queued) == 200
    gc.collect()
    assert not [item for item in queued if gc.is_tracked(item)]
    assert run.flush(timeout=30)
    points = backend.read_run(run.id).points("loss", Context(context))
    assert [(p.step, p.value) for p in points] == [(s, s * 0.5) for s in range(100)]
    counted = backend.read_run(run.id).points("count", Context())
    assert [(p.step, p.epoch, p.value) for p in counted] == [(s, s // 10, s) for s in range(100)]
    run.close()


def test_a_point_batch_reads_as_the_tracked_points() -> None:
    train, val = Context(subset="train"), Context(subset="val")
    sequences = [("loss", train, ValueKind.SCALAR), ("loss", val, ValueKind.SCALAR)]
    items = [(0, 0, None, 10.0, 0.5), (1, 0, 2, 11.0, 0.25), (0, 1, None, 12.0, float("nan"))]
    batch = PointBatch(items, sequences)
    expected = [
        TrackedPoint("loss", train, ValueKind.SCALAR, 0, None, 10.0, 0.5),
        TrackedPoint("loss", val, ValueKind.SCALAR, 0, 2, 11.0, 0.25),
    ]
    assert len(batch) == 3
    assert list(batch)[:2] == expected
    assert batch[1] == expected[1] and batch[-3] == expected[0]
    assert list(batch[1:]) == list(batch)[1:] and isinstance(batch[1:], PointBatch)
    assert batch[2].context is train and batch[2].value != batch[2].value  # NaN kept
    assert batch[1].epoch == 2 and batch[1]._fields == TrackedPoint._fields
    with pytest.raises(IndexError):
        batch[3]


def test_a_spool_file_holds_whole_points(backend: MemoryBackend, spool_dir: Path) -> None:
    """A spool must be replayable by a process that never saw the run: each point in it carries
    its sequence's name, context and kind, not the writer's index for it."""
    run = track.start_run(backend, writer=fast(close_timeout=0.2))
    backend.store.unavailable = True
    for step in range(5):
        run.track(step * 1.0, "loss", context={"subset": "val"}, epoch=1)
    with pytest.warns(track.DataNotWrittenWarning):
        run.close(track.Status.FINISHED)
    [path] = track.pending_spools(spool_dir)
    _, frames = read_spool(path)
    points = [item for frame in frames for item in frame if type(item) is tuple]
    assert points and all(len(point) == len(TrackedPoint._fields) for point in points)
    assert [TrackedPoint(*point)[:5] for point in points] == [
        ("loss", Context(subset="val"), ValueKind.SCALAR, step, 1) for step in range(5)
    ]
