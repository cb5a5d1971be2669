"""One run to a local Aim repository and an MLflow server at once while the server is killed and
restarted (issue 14 §1): Aim keeps getting every value in time, MLflow gets them all once back."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import track_core as track
from track_mlflow.testing import mlflow_server

COUNT = 3000


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
    return folder


def test_a_server_down_mid_run_slows_nothing_else_and_loses_nothing(
    tmp_path: Path, spool_dir: Path
) -> None:
    aim_where = f"aim:{tmp_path / 'aim-repo'}"
    with mlflow_server(tmp_path / "mlflow") as server:
        mlflow_where = f"mlflow:{server.url}?http_timeout=60"
        options = track.WriterOptions(
            flush_interval=0.05, retry_initial=0.2, retry_max=1.0, close_timeout=600
        )
        run = track.start_run(
            f"{aim_where} | {mlflow_where}", experiment="fan-out", name="both", writer=options
        )
        assert isinstance(run, track.MultiRun)
        aim_run, mlflow_run = run.runs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", track.BackendUnavailableWarning)
            for step in range(COUNT):
                if step == COUNT // 3:
                    server.stop()
                run.track(float(step), "loss", step=step, context={"subset": "train"})
            # the server is still down: the Aim run has everything, in time
            assert aim_run.flush(timeout=120), "Aim waited for the MLflow server"
            assert mlflow_run.pending > 0
            deadline = time.monotonic() + 120
            while not list(spool_dir.glob("mlflow-*.spool")) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert list(spool_dir.glob("mlflow-*.spool")), "MLflow's share was not spooled"
            assert not list(spool_dir.glob("aim-*.spool")), "Aim's writer spooled: it was slowed"
            aim_points = track.open_run(aim_run.id, aim_where).sequence("loss", {"subset": "train"})
            assert [p.step for p in aim_points.points()] == list(range(COUNT))
            server.restart()
            run.close()
        client = MlflowClient(tracking_uri=server.url)
        [key] = [k for k in client.get_run(mlflow_run.id).data.metrics if k.startswith("loss")]
        history = client.get_metric_history(mlflow_run.id, key)
        assert sorted(m.step for m in history) == list(range(COUNT))  # once each
        assert client.get_run(mlflow_run.id).info.status == "FINISHED"
    assert track.open_run(aim_run.id, aim_where).status is track.Status.FINISHED
    assert not list(spool_dir.glob("*.spool"))
