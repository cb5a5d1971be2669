"""``start_run(..., system_metrics=...)``, the backend-string option and $TRACK_SYSTEM_METRICS
start the core's sampler (issue 16), which stops when the run closes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

import track_core as track

pytest.importorskip("psutil")


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("TRACK_SYSTEM_METRICS", raising=False)
    return tmp_path / "spool"


def wait_for_samples(run: track.TrackedRun, count: int = 2) -> None:
    deadline = time.monotonic() + 30
    while getattr(run.system_metrics, "samples", 0) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def system_sequences(run_id: str, where: str) -> set[str]:
    return {s.name for s in track.open_run(run_id, where).sequences() if "cpu" in s.name}


@pytest.mark.parametrize("how", ["argument", "backend string", "environment"])
def test_each_way_of_asking_samples_into_the_run(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    where = f"memory:sysm-{uuid.uuid4().hex}"
    if how == "argument":
        run = track.start_run(where, system_metrics=0.1)
    elif how == "backend string":
        run = track.start_run(f"{where}?system_metrics=0.1")
    else:
        monkeypatch.setenv("TRACK_SYSTEM_METRICS", "0.1")
        run = track.start_run(where)
    assert isinstance(run, track.TrackedRun)
    wait_for_samples(run)
    run.close()
    samples = run.system_metrics.samples  # type: ignore[attr-defined]
    assert samples >= 2
    assert system_sequences(run.id, where), "no CPU metric was stored"
    time.sleep(0.3)
    assert run.system_metrics.samples == samples, "the sampler went on after close()"  # type: ignore[attr-defined]


def test_off_by_default_and_when_asked_off(monkeypatch: pytest.MonkeyPatch) -> None:
    where = f"memory:sysm-{uuid.uuid4().hex}"
    run = track.start_run(where)
    assert run.system_metrics is None  # type: ignore[attr-defined]
    run.close()
    monkeypatch.setenv("TRACK_SYSTEM_METRICS", "1")
    run = track.start_run(where, system_metrics=False)
    assert run.system_metrics is None  # type: ignore[attr-defined]
    run.close()


def test_a_bad_setting_says_what_it_takes() -> None:
    with pytest.raises(ValueError, match="number of seconds"):
        track.start_run(f"memory:sysm-{uuid.uuid4().hex}?system_metrics=often")


def test_several_backends_each_get_a_sampler() -> None:
    first, second = f"memory:a-{uuid.uuid4().hex}", f"memory:b-{uuid.uuid4().hex}"
    run = track.start_run([first, second], system_metrics=0.1)
    assert isinstance(run, track.MultiRun)
    for single in run.runs:
        wait_for_samples(single)
    run.close()
    for single, where in zip(run.runs, (first, second), strict=True):
        assert system_sequences(single.id, where)
