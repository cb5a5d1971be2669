"""Credentials in the backend string, against MLflow's real basic-auth server
(``mlflow server --app-name basic-auth``): they authenticate every request of the backend
(metrics, params, artifacts served by the server), and stay out of the process environment, so
other MLflow clients in the process are unaffected."""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow_storage import MlflowStorageReader

import track_core as track
from track_core.context import Context
from track_core.values import Image, Text
from track_mlflow import create_backend
from track_mlflow.testing import MlflowServer, mlflow_server

ADMIN = ("admin", "admin-pw-2718")
USER = "alice"
PASSWORD = "s3cr3t:p@ss/w0rd"  # characters a URL must quote


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-auth"), admin=ADMIN) as running:
        # A user of the server, made by its admin through the auth API.
        request = urllib.request.Request(
            f"{running.url}/api/2.0/mlflow/users/create",
            data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": "Basic " + base64.b64encode(":".join(ADMIN).encode()).decode(),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        yield running


def _backend_string(server: MlflowServer, password: str = PASSWORD) -> str:
    host = server.url.removeprefix("http://")
    return f"mlflow:http://{USER}:{urllib.parse.quote(password, safe='')}@{host}"


def _mlflow_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No MLflow credentials in the environment; the settings track sets when unset are set.
    Returns the ``MLFLOW_*`` variables."""
    for variable in (
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return _mlflow_environment()


@pytest.mark.parametrize("process", ["off", "on"])
def test_credentials_authenticate_and_stay_out_of_the_environment(
    server: MlflowServer,
    clean_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    process: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # a spool file, if the core writes one
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    numpy = pytest.importorskip("numpy")
    image = Image(numpy.array([[0, 255], [255, 0]], dtype=numpy.uint8))
    with track.start_run(
        _backend_string(server),
        experiment=f"auth-{process}",
        name="authenticated",
        tags=["secret-test"],
        writer=track.WriterOptions(process=process, close_timeout=600),
    ) as run:
        run["hparams"] = {"lr": 0.1}
        for step in range(5):
            run.track(step * 0.5, "loss", epoch=step // 2, context={"subset": "train"})
        run.track(image, "sample")
        run.track(Text("some text"), "note")
        run.log_artifact(source, "files/notes.txt")
    assert _mlflow_environment() == clean_environment  # nothing set, nothing removed

    # What the backend wrote, read back through the backend (with the same credentials).
    reader = create_backend(_backend_string(server).removeprefix("mlflow:")).read_run(run.id)
    assert reader.name == "authenticated" and reader.tags == frozenset({"secret-test"})
    assert reader.params == {"hparams": {"lr": 0.1}}
    loss = reader.points("loss", Context(subset="train"))
    assert [(p.step, p.epoch, p.value) for p in loss] == [(s, s // 2, s * 0.5) for s in range(5)]
    assert reader.points("sample", Context())[0].value.pixels() == image.pixels()  # type: ignore[union-attr]
    assert reader.points("note", Context())[0].value == Text("some text")
    assert reader.artifacts() == ["files/notes.txt"]
    assert reader.artifact_bytes("files/notes.txt") == b"hello"
    assert _mlflow_environment() == clean_environment

    # Another MLflow client in this process does not get the backend's credentials.
    with pytest.raises(MlflowException, match=r"401|Unauthorized|credentials"):
        MlflowClient(server.url).get_run(run.id)

    # MLflow's own client, given the credentials the way MLflow reads them, reads the same run.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    stored = MlflowStorageReader(server.url, run.id)
    assert stored.params == reader.params
    assert stored.points("loss", Context(subset="train")) == loss
    assert stored.artifact_bytes("files/notes.txt") == b"hello"


def test_a_wrong_password_is_refused_without_showing_it(
    server: MlflowServer, clean_environment: dict[str, str]
) -> None:
    backend = create_backend(_backend_string(server, "wrong-pw-31415").removeprefix("mlflow:"))
    with pytest.raises(MlflowException) as caught:
        backend.list_runs()
    assert "401" in str(caught.value) or "Unauthorized" in str(caught.value)
    assert "wrong-pw-31415" not in str(caught.value)
    assert "wrong-pw-31415" not in backend.location
    assert _mlflow_environment() == clean_environment
