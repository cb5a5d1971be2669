"""Damaged and interrupted spool replays against a real MLflow store (sqlite), read back with
MLflow's own client: every intact point exactly once, every lost one reported.

- a spool of 200,000 items cut to 60% (what a full disk or a crash mid-write leaves), replayed
  with ``python -m track_core replay``: exit code 2, the loss printed, the file kept;
- a replay killed with SIGKILL halfway, then run again: nothing duplicated, nothing lost.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

import track_core as track
from track_core._spool import FRAME_MARKER, MAX_FRAME_ITEMS, Spool, SpoolHeader
from track_core._writer import Operation
from track_core.backend import RunSpec
from track_core.context import Context
from track_core.discovery import get_backend
from track_core.values import ValueKind

CONTEXTS = ({"subset": "train"}, {"subset": "val"})
KEYS = ("loss :: subset: train", "loss :: subset: val")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, str, MlflowClient]]:
    """A backend string for a sqlite store, a run created in it, and MLflow's client for it."""
    database = tmp_path / "mlflow.db"
    backend_string = f"mlflow:sqlite:///{database}"
    backend = get_backend(backend_string)
    writer = backend.create_run(RunSpec("spool-damage", "replayed"))
    run_id = writer.id
    backend.close()
    yield backend_string, run_id, MlflowClient(f"sqlite:///{database}")


def point(index: int) -> tuple[Any, ...]:
    """Item ``index`` of a spool: two sequences, interleaved, steps ``index // 2``."""
    step = index // 2
    return (
        "loss",
        Context.of(CONTEXTS[index % 2]),
        ValueKind.SCALAR,
        step,
        None,
        1_700_000_000.0 + step / 16,
        step * 0.25 + (index % 2),
    )


def write_spool(path: Path, backend_string: str, run_id: str, count: int) -> None:
    spool = Spool(path, SpoolHeader(backend_string, run_id))
    for start in range(0, count, 5000):  # the writer appends what one drain took
        spool.append([point(index) for index in range(start, min(start + 5000, count))])
    spool.append([Operation("set_tags", (frozenset({"replayed"}),))])


def frame_starts(data: bytes) -> list[int]:
    starts, position = [], data.find(FRAME_MARKER)
    while position >= 0:
        starts.append(position)
        position = data.find(FRAME_MARKER, position + 1)
    return starts


def replay_command(path: Path) -> list[str]:
    return [sys.executable, "-m", "track_core", "replay", str(path)]


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(metric.step, metric.value) for metric in client.get_metric_history(run_id, key)]


def expected(count: int, sequence: int) -> list[tuple[int, float]]:
    return [(index // 2, (index // 2) * 0.25 + sequence) for index in range(sequence, count, 2)]


def test_a_spool_of_200000_items_cut_short_is_replayed_into_mlflow(
    tmp_path: Path, store: tuple[str, str, MlflowClient]
) -> None:
    backend_string, run_id, client = store
    path = tmp_path / "spool" / "run.spool"
    write_spool(path, backend_string, run_id, 200_000)
    data = path.read_bytes()
    starts = frame_starts(data)
    assert len(starts) == 201  # 200 frames of 1000 points, then the tag operation
    cut = int(len(data) * 0.6)
    path.write_bytes(data[:cut])
    whole = sum(1 for start in starts[1:] if start <= cut)
    written = whole * MAX_FRAME_ITEMS
    done = subprocess.run(replay_command(path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    lost = 200_001 - written
    assert f"{written} item(s) written; DAMAGED: {lost} item(s) lost" in done.stdout
    assert f"loss {{'subset': 'train'}}: steps {written // 2}-" in done.stderr
    assert "set_tags" not in done.stderr  # its frame was cut off whole: counted, not readable
    for sequence, key in enumerate(KEYS):
        assert history(client, run_id, key) == expected(written, sequence)
    assert not path.exists() and path.with_name("run.spool.damaged").exists()
    assert track.open_run(run_id, backend_string).tags == frozenset()  # its frame was lost


def stored_count(gate: sqlite3.Connection, run_id: str, key: str) -> int:
    """Rows MLflow's store holds for one metric, read inside ``gate``'s transaction."""
    query = "SELECT COUNT(*) FROM metrics WHERE run_uuid = ? AND key = ?"
    return int(gate.execute(query, (run_id, key)).fetchone()[0])


def test_a_replay_killed_halfway_and_run_again_stores_every_point_once(
    tmp_path: Path, store: tuple[str, str, MlflowClient]
) -> None:
    backend_string, run_id, client = store
    count = 100_000  # 100 frames, one transaction each
    path = tmp_path / "spool" / "run.spool"
    write_spool(path, backend_string, run_id, count)
    original = path.read_bytes()
    replaying = subprocess.Popen(
        replay_command(path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # The kill is decided and sent while this connection holds the database's write lock, so
    # the replay cannot commit anything between the count and the kill: it lands where counted.
    gate = sqlite3.connect(tmp_path / "mlflow.db", timeout=60, isolation_level=None)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert replaying.poll() is None, "the replay ended before it could be killed"
            assert time.monotonic() < deadline, "the replay wrote nothing"
            gate.execute("BEGIN IMMEDIATE")
            try:
                counted = stored_count(gate, run_id, KEYS[0])
                if counted >= count // 8:
                    os.kill(replaying.pid, signal.SIGKILL)
                    replaying.wait(30)
                    break
            finally:
                gate.execute("ROLLBACK")
            time.sleep(0.01)
    finally:
        gate.close()
        replaying.kill()
        replaying.wait(30)
    assert replaying.returncode == -signal.SIGKILL
    stored = len(client.get_metric_history(run_id, KEYS[0]))
    assert stored == counted < count // 2, "the kill did not land halfway"
    assert path.read_bytes() == original  # not deleted, not changed: replay reads only
    done = subprocess.run(replay_command(path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{count + 1} item(s) written" in done.stdout
    for sequence, key in enumerate(KEYS):
        assert history(client, run_id, key) == expected(count, sequence)
    assert track.open_run(run_id, backend_string).tags == {"replayed"}
    assert not path.exists()
