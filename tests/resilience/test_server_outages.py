"""A training loop tracks while its server is killed and restarted: every value arrives once.

Also: a process killed (SIGKILL) while its server is down leaves its values in the spool, and
``python -m track_core replay`` writes them once the server is back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import track_core as track
from track_aim.testing import aim_server
from track_mlflow.testing import mlflow_server

COUNT = 3000


@pytest.fixture(params=["aim", "mlflow"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "aim":
        with aim_server(folder / "repo") as running:
            yield running
    else:
        with mlflow_server(folder) as running:
            yield running


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
    return folder


def backend_string(server: Any) -> str:
    url = str(server.url)
    return url if url.startswith("aim://") else f"mlflow:{url}"


@pytest.mark.parametrize("process", ["off", "on"], ids=["writer-thread", "writer-process"])
def test_server_killed_and_restarted_mid_run_loses_and_duplicates_nothing(
    server: Any, spool_dir: Path, process: str
) -> None:
    backend = backend_string(server)
    options = track.WriterOptions(
        flush_interval=0.05, retry_initial=0.2, retry_max=1.0, close_timeout=120, process=process
    )
    run = track.start_run(backend, experiment="outage", writer=options)
    assert (run.writer_pid != os.getpid()) is (process == "on")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(COUNT):
            if step == COUNT // 3:
                server.stop()
            if step == 2 * COUNT // 3:
                assert list(spool_dir.glob("*.spool")), (
                    "nothing was spooled while the server was down"
                )
                server.restart()
            run.track(float(step), "loss", context={"subset": "train"})
            if step % 50 == 0:
                time.sleep(0.01)
        run.close()
    assert any(issubclass(w.category, track.BackendUnavailableWarning) for w in caught)
    points = track.open_run(run.id, backend).sequence("loss", {"subset": "train"}).points()
    assert [p.step for p in points] == list(range(COUNT))
    assert [p.value for p in points] == [float(s) for s in range(COUNT)]
    assert track.open_run(run.id, backend).status is track.Status.FINISHED
    assert not list(spool_dir.glob("*.spool"))
    if backend.startswith("mlflow:"):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=server.url)
        [key] = [k for k in client.get_run(run.id).data.metrics if k.startswith("loss")]
        history = client.get_metric_history(run.id, key)
        assert len(history) == COUNT  # exactly once: no duplicate rows from retries
        assert sorted(m.step for m in history) == list(range(COUNT))


CHILD = textwrap.dedent(
    """
    import sys, time
    import track_core as track

    backend, ready = sys.argv[1], sys.argv[2]
    run = track.start_run(backend, writer=track.WriterOptions(flush_interval=0.05, retry_initial=5))
    with open(ready + ".id", "w") as marker:
        marker.write(run.id)
    while True:
        try:
            open(ready + ".down").close()
            break
        except OSError:
            time.sleep(0.02)
    for step in range(500):
        run.track(float(step), "loss")
    open(ready, "w").close()
    time.sleep(60)
    """
)


def test_sigkill_while_the_server_is_down_then_replay(
    server: Any, tmp_path: Path, spool_dir: Path
) -> None:
    backend = backend_string(server)
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend, str(ready)],
        env=dict(os.environ, TRACK_SPOOL_DIR=str(spool_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not Path(f"{ready}.id").exists():
        assert child.poll() is None, child.stdout.read() if child.stdout else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run_id = Path(f"{ready}.id").read_text()
    server.stop()
    Path(f"{ready}.down").touch()
    while not ready.exists():
        assert child.poll() is None, child.stdout.read() if child.stdout else ""
        time.sleep(0.05)
    time.sleep(1.0)  # several flush intervals: the values reach the spool on disk
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    spools = track.pending_spools(spool_dir)
    assert len(spools) == 1
    server.restart()
    replayed = subprocess.run(
        [sys.executable, "-m", "track_core", "replay", str(spools[0])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "500 item(s) written" in replayed.stdout
    points = track.open_run(run_id, backend).sequence("loss").points()
    assert [p.value for p in points] == [float(s) for s in range(500)]
    assert not spools[0].exists()
