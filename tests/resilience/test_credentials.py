"""Credentials given to track reach nothing it stores or prints (issue 21).

Against a real ``mlflow server --app-name basic-auth`` (MLflow's own basic-auth app; anonymous
requests get 401, so every run that arrives authenticated) and a real ``aim server``. After each
run, everything is read back with the backends' own SDKs (params, tags, description, experiment,
artifacts) and every file of the server's store, of the spool directory and of the warnings is
searched for the secret.
"""

from __future__ import annotations

import base64
import importlib.util
import logging
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import track_core as track
from track_core._spool import read_spool
from track_mlflow.testing import MlflowServer, mlflow_server

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("flask_wtf") is None,
    reason="MLflow's basic-auth app needs Flask-WTF (pip install 'mlflow[auth]')",
)

USER = "alice"
#: A busy machine (and the auth app's password hashing) can make requests slower than the default
#: 10 s of track-mlflow.
SLOW = "http_timeout=60"


@pytest.fixture(scope="module")
def password() -> str:
    return f"s3cret-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, password: str) -> Iterator[MlflowServer]:
    """MLflow's basic-auth app, with alice as its admin user."""
    with mlflow_server(
        tmp_path_factory.mktemp("mlflow-auth"), 1, admin=(USER, password)
    ) as running:
        # The auth app's first requests are slow (imports, password hashing): warm it up.
        assert status_of(running, (USER, password)) == 200
        yield running


def url_with(server: MlflowServer, password: str) -> str:
    return server.url.replace("http://", f"http://{USER}:{password}@")


def status_of(server: MlflowServer, auth: tuple[str, str] | None) -> int:
    """The status of a REST call made as ``auth`` (None: anonymous)."""
    request = urllib.request.Request(
        f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    )
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spool directory per test, and no MLflow credentials in the environment at the start."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
    return folder


def files_holding(secret: str, *folders: Path) -> list[str]:
    """Every file under ``folders`` whose bytes hold ``secret`` (plain or URL-encoded)."""
    needles = {secret.encode(), secret.replace("-", "%2D").encode()}
    found = []
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else ():
            # The server's own user store and the config that made its admin user.
            if path.is_file() and path.name not in ("basic_auth.db", "basic_auth.ini"):
                data = path.read_bytes()
                if any(needle in data for needle in needles):
                    found.append(str(path))
    return found


def stored_by_mlflow(server: MlflowServer, run_id: str, tmp_path: Path) -> str:
    """Everything MLflow holds for a run, read back as the admin through MLflow's client."""
    from mlflow.tracking import MlflowClient

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    assert server.admin is not None
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = server.admin
    try:
        client = MlflowClient(tracking_uri=server.url)
        run = client.get_run(run_id)
        experiment = client.get_experiment(run.info.experiment_id)
        parts: list[Any] = [
            run.info,
            run.data.params,
            run.data.tags,
            sorted(run.data.metrics),
            experiment.name,
            experiment.tags,
        ]
        folder = Path(client.download_artifacts(run_id, "", str(tmp_path / "downloaded")))
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                parts += [path.relative_to(folder).as_posix(), path.read_bytes()]
        assert run.data.params, "the run reached the server"
        return "\n".join(str(part) for part in parts)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_the_server_refuses_anonymous_requests(server: MlflowServer, password: str) -> None:
    assert status_of(server, None) == 401
    assert status_of(server, (USER, "wrong-password")) == 401
    assert status_of(server, (USER, password)) == 200


@pytest.mark.parametrize("process", ["off", "on"], ids=["writer-thread", "writer-process"])
def test_start_run_with_a_credentialed_url_stores_no_credential(
    server: MlflowServer,
    password: str,
    process: str,
    tmp_path: Path,
    clean_environment: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    experiment = f"cred-{uuid.uuid4().hex[:8]}"
    backend = f"mlflow:{url_with(server, password)}?experiment={experiment}&{SLOW}"
    artifact = tmp_path / "notes.txt"
    artifact.write_text("an artifact\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with track.start_run(
            backend,
            name="credentials",
            description="a run with a password in its backend string",
            tags=["secure"],
            writer=track.WriterOptions(process=process),
        ) as run:
            run["hparams"] = {"lr": 0.1, "backend_kind": "mlflow"}
            for step in range(5):
                run.track(0.5 * step, "loss", step=step, context={"subset": "train"})
            run.log_artifact(str(artifact))
            run_id = run.id
    stored = stored_by_mlflow(server, run_id, tmp_path)
    assert "notes.txt" in stored and "'hparams.lr': '0.1'" in stored  # what is read is the run
    assert password not in stored
    assert f"{USER}:" not in stored
    view = track.open_run(run_id, f"mlflow:{url_with(server, password)}")
    assert view.status is track.Status.FINISHED  # it authenticated all the way
    assert [p.step for p in view.sequence("loss", {"subset": "train"}).points()] == list(range(5))
    assert not files_holding(password, server.directory, clean_environment)
    printed = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [text for text in printed if password in text]


CHILD = textwrap.dedent(
    """
    import pathlib, sys, time, warnings
    import track_core as track

    warnings.simplefilter("always")
    backend, marker = sys.argv[1], pathlib.Path(sys.argv[2])
    options = track.WriterOptions(flush_interval=0.05, retry_initial=0.2, retry_max=0.5)
    run = track.start_run(backend, writer=options)
    run["hparams"] = {"lr": 0.2}
    assert run.flush(timeout=120)
    marker.with_suffix(".id").write_text(run.id)
    while not marker.with_suffix(".down").exists():
        time.sleep(0.02)
    for step in range(50):
        run.track(float(step), "loss", step=step)
    run.flush(timeout=3)  # fails: the values go to the spool, with a warning
    marker.touch()
    time.sleep(120)
    """
)


def wait_for(path: Path, child: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            raise AssertionError(child.communicate()[0])
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_spool_header_warnings_and_replay_hold_no_credential(
    server: MlflowServer,
    password: str,
    clean_environment: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A training process whose server went down is killed; its spool names the server without
    credentials, and ``python -m track_core replay`` authenticates through the environment."""
    backend = f"mlflow:{url_with(server, password)}?experiment=cred-spool&{SLOW}"
    marker = tmp_path / "child"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend, str(marker)],
        env=dict(os.environ, TRACK_SPOOL_DIR=str(clean_environment)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(marker.with_suffix(".id"), child)
        run_id = marker.with_suffix(".id").read_text()
        server.stop()
        marker.with_suffix(".down").touch()
        wait_for(marker, child)
        time.sleep(0.5)
    finally:
        child.kill()
        printed = child.communicate()[0]
        server.start()
    [spool] = list(clean_environment.glob("*.spool"))
    header, frames = read_spool(spool)
    assert header.backend == f"mlflow:{server.url}"  # no user info, no options
    assert sum(len(frame) for frame in frames) >= 50
    assert not files_holding(password, clean_environment)
    assert f"{USER}:".encode() not in spool.read_bytes()
    assert "BackendUnavailableWarning" in printed and server.url.split("//")[1] in printed, printed
    assert password not in printed and f"{USER}:" not in printed, printed
    # Without credentials the server refuses the replay; with them in the environment it takes it.
    replay = [sys.executable, "-m", "track_core", "replay", str(spool)]
    slow = dict(os.environ, MLFLOW_HTTP_REQUEST_TIMEOUT="60")
    refused = subprocess.run(replay, capture_output=True, text=True, timeout=300, env=slow)
    assert refused.returncode != 0 and spool.exists()
    assert "401" in refused.stderr or "authenticat" in refused.stderr.lower(), refused.stderr
    assert password not in refused.stdout + refused.stderr
    credentials = {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": password}
    done = subprocess.run(
        replay, capture_output=True, text=True, timeout=300, env=dict(slow, **credentials)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not spool.exists()
    for name, value in credentials.items():  # reading back as alice, through the environment too
        monkeypatch.setenv(name, value)
    points = track.open_run(run_id, header.backend).sequence("loss", {}).points()
    assert [p.step for p in points] == list(range(50))
    assert password not in stored_by_mlflow(server, run_id, tmp_path)


def test_configs_that_integrations_store_lose_their_credentials(
    server: MlflowServer, password: str, tmp_path: Path
) -> None:
    """The path every integration takes: its config through track.redact_params."""
    token = f"tok-{uuid.uuid4().hex}"
    config = {
        "TRACK": {"BACKEND": f"mlflow:{url_with(server, password)}?token={token}"},
        "DATASETS": {"URL": f"https://{USER}:{password}@data.example/train"},
        "api_key": token,
        "max_tokens": 512,
    }
    backend = f"mlflow:{url_with(server, password)}?experiment=cred-cfg&{SLOW}"
    with track.start_run(backend) as run:
        run["config"] = track.redact_params(config)
        run_id = run.id
    stored = stored_by_mlflow(server, run_id, tmp_path)
    assert f"mlflow:{server.url}?token=***" in stored
    assert "https://data.example/train" in stored and "512" in stored
    assert password not in stored and token not in stored


def test_params_users_set_lose_credentialed_urls(
    server: MlflowServer, password: str, tmp_path: Path
) -> None:
    backend = f"mlflow:{url_with(server, password)}?experiment=cred-user&{SLOW}"
    with track.start_run(backend) as run:
        run["cfg"] = {"backend": f"mlflow:{url_with(server, password)}", "token": "[PAD]"}
        run_id = run.id
    stored = stored_by_mlflow(server, run_id, tmp_path)
    assert password not in stored
    assert "[PAD]" in stored  # user params keep values under token-like keys


def test_aim_run_keeps_integration_configs_free_of_credentials(tmp_path: Path) -> None:
    """Aim 3.29's server has no authentication (its client sends no credentials), so an Aim
    backend string carries none; what can leak is a config holding another service's secret."""
    pytest.importorskip("track_aim")
    from aim import Repo

    from track_aim.testing import aim_server

    secret = f"pw-{uuid.uuid4().hex[:10]}"
    config = {
        "backend": f"mlflow:http://{USER}:{secret}@mlflow.example:5000",
        "db": f"postgresql+psycopg2://u:{secret}@db.example/app",
        "password": secret,
    }
    with aim_server(tmp_path / "repo") as running:
        with track.start_run(running.url, experiment="cred-aim") as run:
            run["config"] = track.redact_params(config)
            run_id = run.id
        stored = Repo(running.url).get_run(run_id)["config"]
        assert stored == {
            "backend": "mlflow:http://mlflow.example:5000",
            "db": "postgresql+psycopg2://db.example/app",
            "password": "***",
        }
    assert not files_holding(secret, tmp_path / "repo")
