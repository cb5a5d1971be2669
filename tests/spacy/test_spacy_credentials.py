"""A ``[training.logger]`` block with a credentialed backend string stores no credential (issue 21).

Real ``spacy train`` on the tiny corpus (conftest.py), against a real ``mlflow server --app-name
basic-auth`` that refuses anonymous requests: the run arrives (so it authenticated), and its
params, tags, artifacts (``model-best/config.cfg`` included), the server's store, the spool
directory and the warnings hold the password nowhere.
"""

from __future__ import annotations

import importlib.util
import urllib.error
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

spacy = pytest.importorskip("spacy")
pytest.importorskip("track_mlflow")
mlflow = pytest.importorskip("mlflow")

from spacy.cli.train import train  # noqa: E402

from track_mlflow.testing import mlflow_server  # noqa: E402

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("flask_wtf") is None,
        reason="MLflow's basic-auth app needs Flask-WTF (pip install 'mlflow[auth]')",
    ),
]


def _files_holding(secret: str, folder: Path) -> list[str]:
    return [
        str(path)
        for path in folder.rglob("*")
        if path.is_file()
        and path.name not in ("basic_auth.db", "basic_auth.ini")  # the server's own user store
        and secret.encode() in path.read_bytes()
    ]


def test_credentialed_backend_string_reaches_no_param_artifact_or_warning(
    write_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "TRACK_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    spool = tmp_path / "spool"
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(spool))
    password = f"s3cret-{uuid.uuid4().hex[:10]}"
    experiment = f"spacy-cred-{uuid.uuid4().hex[:8]}"
    with mlflow_server(tmp_path / "server", 1, admin=("alice", password)) as server:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/api/2.0/mlflow/experiments/search", timeout=60)
        assert refused.value.code == 401  # the server takes authenticated requests only
        credentialed = server.url.replace("http://", f"http://alice:{password}@")
        backend = f"mlflow:{credentialed}?http_timeout=60"
        config_path = write_config(
            {"backend": backend, "experiment_name": experiment, "log_best_dir": True},
            max_steps=8,
        )
        assert password in config_path.read_text()  # the user's own file holds it, as written
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(config_path, tmp_path / "output")
        printed = [str(w.message) for w in caught]
        assert not [text for text in printed if password in text], printed

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        client = mlflow.tracking.MlflowClient(tracking_uri=server.url)
        found = client.get_experiment_by_name(experiment)
        assert found is not None
        [run] = client.search_runs([found.experiment_id])
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["config.training.logger.backend"] == f"mlflow:{server.url}?http_timeout=60"
        assert params["config.training.max_steps"] == "8"
        stored = [str(params), str(run.data.tags), str(found.tags)]
        downloaded = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
        logged_config = downloaded / "model-best" / "config.cfg"
        assert f'backend = "mlflow:{server.url}?http_timeout=60"' in logged_config.read_text()
        assert spacy.util.load_config(logged_config)["training"]["max_steps"] == 8
        for path in downloaded.rglob("*"):
            if path.is_file():
                stored.append(path.read_bytes().decode("utf-8", errors="replace"))
        assert not [text for text in stored if password in text or "alice:" in text]
        assert not _files_holding(password, server.directory)
    assert not list(spool.glob("*.spool"))  # everything arrived
