"""A process that forks: the child never ends, writes or spools the parent's run (issue 19).

Real ``os.fork()`` of a process whose run writes to an on-disk backend (MLflow on sqlite, a
local Aim repository); the parent reads the run back through the backend's own reader.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import pytest

import track_core as track
from track_core.context import Context
from track_core.status import Status

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
    return folder


def backend_string(name: str, folder: Path) -> str:
    if name == "aim":
        return f"aim:{folder / 'aim-repo'}"
    return f"mlflow:sqlite:///{folder / 'mlflow.db'}"


def fork_and_wait(child: object) -> int:
    """Fork; the child runs ``child()`` then exits as the interpreter does at ``sys.exit``:
    its exit handlers run (track's among them), then the process ends. Returns the child's
    exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            code = child()  # type: ignore[operator]
        finally:
            atexit._run_exitfuncs()  # what interpreter exit runs
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def loss_steps(where: str, run_id: str) -> list[int]:
    return [p.step for p in track.open_run(run_id, where).sequence("loss").points()]


@pytest.mark.parametrize("name", ["mlflow", "aim"])
def test_a_child_exiting_leaves_the_parents_run_running(
    name: str, tmp_path: Path, spool_dir: Path
) -> None:
    where = backend_string(name, tmp_path)
    run = track.start_run(where, experiment="fork")
    for step in range(10):
        run.track(step * 0.5, "loss", step=step)
    assert run.flush(timeout=30)

    assert fork_and_wait(lambda: 0) == 0

    stored = track.open_run(run.id, where)
    assert stored.status is Status.RUNNING, "the child's exit ended the parent's run"
    assert not list(spool_dir.glob("*")), "the child wrote into the spool"
    for step in range(10, 20):
        run.track(step * 0.5, "loss", step=step)
    run.close()
    assert track.open_run(run.id, where).status is Status.FINISHED
    assert loss_steps(where, run.id) == list(range(20))


def test_a_child_cannot_write_the_inherited_run_and_says_why(tmp_path: Path) -> None:
    where = backend_string("mlflow", tmp_path)
    run = track.start_run(where)
    run.track(1.0, "loss", step=0)
    parent = os.getpid()

    def child() -> int:
        assert run.recording is False
        try:
            run.track(2.0, "loss", step=1)
        except track.RunClosedError as error:
            if f"belongs to process {parent}" not in str(error) or "start_run" not in str(error):
                return 4
        else:
            return 3
        run.close(Status.FAILED, "the child must not end it")  # a no-op in the child
        return 0

    assert fork_and_wait(child) == 0
    assert run.recording is True
    run.track(3.0, "loss", step=2)
    run.close()
    stored = track.open_run(run.id, where)
    assert stored.status is Status.FINISHED
    assert stored.error is None
    assert loss_steps(where, run.id) == [0, 2]


def test_a_child_tracks_into_a_run_of_its_own(tmp_path: Path, spool_dir: Path) -> None:
    where = backend_string("mlflow", tmp_path)
    parent_run = track.start_run(where, experiment="fork", name="parent")
    parent_run.track(1.0, "loss", step=0)
    assert parent_run.flush(timeout=30)
    marker = tmp_path / "child-run-id"

    def child() -> int:
        own = track.start_run(where, experiment="fork", name="child")
        for step in range(50):
            own.track(step * 2.0, "loss", step=step, context={"subset": "worker"})
        marker.write_text(own.id)
        return 0  # sys.exit closes it: it is the child's own run

    assert fork_and_wait(child) == 0
    child_id = marker.read_text()
    assert child_id != parent_run.id
    child_run = track.open_run(child_id, where)
    assert child_run.status is Status.FINISHED
    points = child_run.sequence("loss", {"subset": "worker"}).points()
    assert [p.value for p in points] == [step * 2.0 for step in range(50)]
    assert track.open_run(parent_run.id, where).status is Status.RUNNING
    parent_run.close()
    assert track.open_run(parent_run.id, where).status is Status.FINISHED
    assert [info.name for info in track.get_backend(where).list_runs("fork")].count("child") == 1
    assert not list(spool_dir.glob("*.spool"))
    assert Context(subset="worker") in {s.context for s in child_run.sequences()}
