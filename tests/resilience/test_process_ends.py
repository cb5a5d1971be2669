"""Real processes end in every way a training process ends; nothing tracked is lost.

The child tracks to an on-disk backend (Aim's local repository, MLflow on sqlite), then exits
normally, raises, gets SIGTERM or gets SIGKILL. The parent reads the run back through the backend.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import track_core as track

BACKENDS = ["aim", "mlflow"]

CHILD = textwrap.dedent(
    """
    import os, sys, time
    import track_core as track

    backend, mode, count, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    run = track.start_run(backend, experiment="ends", name=mode,
                          writer=track.WriterOptions(flush_interval=0.05))
    run["hparams"] = {"mode": mode}
    for step in range(count):
        run.track(step * 0.5, "loss", step=step, context={"subset": "train"})
    with open(ready, "w") as marker:
        marker.write(run.id)
    if mode == "exit":
        sys.exit(0)
    if mode == "raise":
        raise RuntimeError("the training diverged")
    if mode == "wait":  # the parent sends a signal
        time.sleep(60)
    """
)


def backend_string(name: str, folder: Path) -> str:
    if name == "aim":
        return f"aim:{folder / 'aim-repo'}"
    return f"mlflow:sqlite:///{folder / 'mlflow.db'}"


def start_child(
    backend: str, mode: str, count: int, folder: Path
) -> tuple[subprocess.Popen[str], Path]:
    ready = folder / f"ready-{mode}"
    env = dict(os.environ, TRACK_SPOOL_DIR=str(folder / "spool"), PYTHONUNBUFFERED="1")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend, mode, str(count), str(ready)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return child, ready


def wait_for(path: Path, child: subprocess.Popen[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if child.poll() is not None and not path.exists():
            raise AssertionError(
                f"child ended early:\n{child.stdout.read() if child.stdout else ''}"
            )
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("child did not get ready")
        time.sleep(0.05)
    return path.read_text()


def read_back(backend: str, run_id: str) -> track.RunView:
    return track.open_run(run_id, backend)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("exit", track.Status.FINISHED),
        ("raise", track.Status.FAILED),
        ("wait", track.Status.KILLED),
    ],
)
def test_exit_exception_and_sigterm_lose_nothing_and_record_the_status(
    name: str, mode: str, status: track.Status, tmp_path: Path
) -> None:
    backend = backend_string(name, tmp_path)
    count = 2000
    child, ready = start_child(backend, mode, count, tmp_path)
    run_id = wait_for(ready, child)
    if mode == "wait":
        child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=120)
    expected_code = {"exit": 0, "raise": 1, "wait": -signal.SIGTERM}[mode]
    assert child.returncode == expected_code, output
    stored = read_back(backend, run_id)
    points = stored.sequence("loss", {"subset": "train"}).points()
    assert [p.step for p in points] == list(range(count))
    assert [p.value for p in points] == [s * 0.5 for s in range(count)]
    assert stored.status is status
    assert stored["hparams"] == {"mode": mode}
    if mode == "raise":
        assert stored.error is not None and "the training diverged" in stored.error
    assert not list((tmp_path / "spool").glob("*.spool"))


@pytest.mark.parametrize("name", BACKENDS)
def test_sigkill_keeps_everything_before_the_last_flush_interval(name: str, tmp_path: Path) -> None:
    backend = backend_string(name, tmp_path)
    child, ready = start_child(backend, "wait", 1500, tmp_path)
    run_id = wait_for(ready, child)
    time.sleep(1.0)  # many flush intervals (0.05 s) after the last track()
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    stored = read_back(backend, run_id)
    points = stored.sequence("loss", {"subset": "train"}).points()
    assert [p.step for p in points] == list(range(1500))
    assert stored["hparams"] == {"mode": "wait"}
