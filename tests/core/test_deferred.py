"""A backend that is unreachable when the run starts (issue 17): the run starts anyway and is
created there, with everything in order, when the backend is back."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import pytest

import track_core as track
from track_core.context import Context
from track_core.memory import MemoryBackend, MemoryStore
from track_core.testing.faults import Fault, FaultyBackend


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
    return folder


FAST = track.WriterOptions(flush_interval=0.02, retry_initial=0.02, retry_max=0.1)


def down_backend() -> MemoryBackend:
    backend = MemoryBackend(MemoryStore(), f"deferred-{uuid.uuid4().hex}")
    backend.store.unavailable = True
    return backend


def test_a_run_starts_offline_and_is_created_when_the_backend_is_back(spool_dir: Path) -> None:
    backend = down_backend()
    with pytest.warns(track.BackendUnavailableWarning, match="starts anyway") as caught:
        run = track.start_run(
            backend, experiment="exp", name="offline", tags=["t"], description="d", writer=FAST
        )
    assert "TRACK_START_OFFLINE=0" in str(caught[0].message)
    assert isinstance(run, track.TrackedRun)
    assert run.id.startswith("track-") and run.backend_id is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", track.BackendUnavailableWarning)
        run["hparams"] = {"lr": 0.1}
        for step in range(2000):
            run.track(step * 0.5, "loss", step=step, context={"subset": "train"})
        assert not backend.store.runs
        backend.store.unavailable = False
        run.close()
    assert run.backend_id is not None and run.backend_id != run.id
    [info] = backend.list_runs("exp")
    assert info.id == run.backend_id and info.name == "offline"
    stored = backend.read_run(run.backend_id)
    assert stored.status is track.Status.FINISHED
    assert stored.tags == {"t"} and stored.description == "d"
    assert stored.params == {"hparams": {"lr": 0.1}}
    points = stored.points("loss", Context(subset="train"))
    assert [p.step for p in points] == list(range(2000))
    assert not list(spool_dir.glob("*")), "the spool and its marker are gone"


def test_failing_fast_is_a_choice() -> None:
    backend = down_backend()
    with pytest.raises(ConnectionError, match="unavailable"):
        track.start_run(backend, writer=track.WriterOptions(start_offline=False))
    assert not backend.store.runs


def test_what_is_left_at_exit_is_replayed_into_one_created_run(spool_dir: Path) -> None:
    backend = down_backend()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the writer of this run retries for as long as it lives: a failing one stands for a
        # process that ended while its backend was away
        dead = FaultyBackend(backend, [])
        run = track.start_run(dead, experiment="later", writer=FAST)
        for step in range(100):
            run.track(float(step), "loss", step=step)
        run.close(timeout=0.2)
        dead.faults.append(Fault("write_points", times=None))  # never again from here
        dead.faults.append(Fault("close", times=None))
    [spool] = list(spool_dir.glob("*.spool"))
    backend.store.unavailable = False
    assert track.replay(spool, backend) == 101
    [info] = backend.list_runs("later")
    points = backend.read_run(info.id).points("loss", Context())
    assert [p.step for p in points] == list(range(100))
    assert backend.read_run(info.id).status is track.Status.FINISHED
    assert not list(spool_dir.glob("*"))


def test_a_replay_stopped_after_the_run_was_created_does_not_create_another(
    spool_dir: Path,
) -> None:
    backend = down_backend()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dead = FaultyBackend(backend, [])
        run = track.start_run(dead, experiment="twice", writer=FAST)
        for step in range(10):
            run.track(float(step), "loss", step=step)
        run.close(timeout=0.2)
        dead.faults.append(Fault("write_points", times=None))
        dead.faults.append(Fault("close", times=None))
    [spool] = list(spool_dir.glob("*.spool"))
    backend.store.unavailable = False
    interrupted = FaultyBackend(backend, [Fault("write_points", times=None)])
    with pytest.raises(ConnectionError):
        track.replay(spool, interrupted)  # created the run, then failed: stands for a kill
    assert len(backend.list_runs("twice")) == 1
    assert spool.exists()
    assert track.replay(spool, backend) == 11
    [info] = backend.list_runs("twice")
    assert [p.step for p in backend.read_run(info.id).points("loss", Context())] == list(range(10))
