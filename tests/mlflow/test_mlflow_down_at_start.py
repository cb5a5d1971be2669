"""An MLflow server that is down when the run starts (issue 17): the run starts offline and is
created on the server, with everything in order, once the server is up; read back with
MLflow's own client."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import track_core as track
from track_core.testing.ports import free_port
from track_mlflow.errors import MlflowServerUnavailableError
from track_mlflow.testing import MlflowServer


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
    return folder


def test_a_server_down_at_start_gets_the_whole_run_when_it_is_up(
    tmp_path: Path, spool_dir: Path
) -> None:
    server = MlflowServer(tmp_path / "server", free_port())
    where = f"mlflow:{server.url}?experiment=late&http_timeout=60"
    with pytest.raises(MlflowServerUnavailableError, match="mlflow server --host"):
        track.start_run(where, writer=track.WriterOptions(start_offline=False))
    options = track.WriterOptions(retry_initial=0.2, retry_max=1.0, close_timeout=600)
    with pytest.warns(track.BackendUnavailableWarning, match="starts anyway"):
        run = track.start_run(where, name="offline", tags=["t"], writer=options)
    assert isinstance(run, track.TrackedRun) and run.backend_id is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", track.BackendUnavailableWarning)
        run["hparams"] = {"lr": 0.5}
        for step in range(500):
            run.track(step * 0.5, "loss", step=step)
        deadline = time.monotonic() + 120
        while not list(spool_dir.glob("*.spool")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the writer spools at its first attempt
        assert list(spool_dir.glob("*.spool")), "nothing was spooled while the server was down"
        server.directory.mkdir(parents=True)
        server.start()
        try:
            run.close()
            assert run.backend_id is not None
            client = MlflowClient(tracking_uri=server.url)
            stored = client.get_run(run.backend_id)
            assert stored.info.run_name == "offline"
            assert stored.info.status == "FINISHED"
            experiment = client.get_experiment(stored.info.experiment_id)
            assert experiment.name == "late"
            history = client.get_metric_history(run.backend_id, "loss")
            assert sorted(m.step for m in history) == list(range(500))
            assert track.open_run(run.backend_id, where)["hparams"] == {"lr": 0.5}
        finally:
            server.stop()
    assert not list(spool_dir.glob("*"))
