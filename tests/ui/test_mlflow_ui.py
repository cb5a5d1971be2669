"""Track's run and the same run made with MLflow's client, side by side in the MLflow UI
(``mlflow server`` on 127.0.0.1, headless Chromium). Each test reads what a person sees.

Both runs are written through the server; track's with ``key_style=slash`` (``train/loss``
keys, so MLflow's UI makes a ``train`` and a ``val`` chart section, as for the client's run).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import runs
from ui_browser import mlflow_server, page_text, shown_images, wait_until

pytest.importorskip("mlflow")
pytest.importorskip("track_mlflow")

WHO = ("track", "mlflow")
#: How each run's keys read: track's run uses key_style=slash, keys as MLflow's docs write them.
LOSS_KEYS = {
    "track": ("train/loss", "val/loss"),
    "mlflow": ("train/loss", "val/loss"),
}
PARAM_PREFIX = {"track": "hparams.", "mlflow": ""}


@pytest.fixture(scope="module")
def mlflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import mlflow

    base = tmp_path_factory.mktemp("mlflow-ui")
    with mlflow_server(base, base / "mlflow-server.log") as health:
        root = health.rsplit("/health", 1)[0]
        ids = {
            "mlflow": runs.by_mlflow(root),
            "track": runs.by_track(f"mlflow:{root}?key_style=slash"),
        }
        experiment = mlflow.MlflowClient(root).get_experiment_by_name(runs.EXPERIMENT)
        assert experiment is not None
        yield {"url": root, "ids": ids, "experiment": experiment.experiment_id}


def _page(browser: Any, ui: dict[str, Any], who: str, tab: str, until: Any) -> str:
    url = f"{ui['url']}/#/experiments/{ui['experiment']}/runs/{ui['ids'][who]}{tab}"
    return page_text(browser, url, until, timeout=120, settle=1.5)


@pytest.mark.parametrize("who", WHO)
def test_overview_shows_name_status_description_and_duration(
    browser: Any, mlflow_ui: dict[str, Any], who: str
) -> None:
    text = _page(browser, mlflow_ui, who, "", "About this run")
    assert f"by-{who}\nOverview" in text
    assert "Status\nFinished" in text
    assert re.search(rf"Description\n+{runs.DESCRIPTION}", text)
    assert re.search(r"Duration\n[\d.]+(ms|s|min)", text)
    assert "Created by\nroot" in text or re.search(r"Created by\n\S+", text)


@pytest.mark.parametrize("who", WHO)
def test_params_are_readable(browser: Any, mlflow_ui: dict[str, Any], who: str) -> None:
    text = _page(browser, mlflow_ui, who, "", "Parameters (4)")
    prefix = PARAM_PREFIX[who]
    for key, value in (
        ("lr", "0.01"),
        ("optimizer.name", "adam"),
        ("optimizer.betas", "[0.9, 0.999]"),
        ("layers", "[64, 64]"),
    ):
        assert f"{prefix}{key}\n{value}" in text


@pytest.mark.parametrize("who", WHO)
def test_train_and_val_loss_are_both_shown_and_charted(
    browser: Any, mlflow_ui: dict[str, Any], who: str
) -> None:
    train, val = LOSS_KEYS[who]
    overview = _page(browser, mlflow_ui, who, "", "Model metrics (3)")
    assert f"{train}\n0.08333333333333333" in overview
    assert f"{val}\n0.18333333333333335" in overview
    charts = _page(browser, mlflow_ui, who, "/model-metrics", f"by-{who} ({val})")
    assert f"by-{who} ({train})" in charts


def test_track_metrics_are_sectioned_like_mlflows(browser: Any, mlflow_ui: dict[str, Any]) -> None:
    charts = _page(browser, mlflow_ui, "track", "/model-metrics", "Add section")
    assert re.search(r"^train\n\(\d+\)\nAdd chart", charts, re.MULTILINE)
    assert re.search(r"^val\n\(\d+\)\nAdd chart", charts, re.MULTILINE)


@pytest.mark.parametrize("who", WHO)
def test_the_image_shows_in_the_image_card(
    browser: Any, mlflow_ui: dict[str, Any], who: str
) -> None:
    text = _page(browser, mlflow_ui, who, "/model-metrics", "inputs")
    assert "inputs" in text
    wait_until(lambda: shown_images(browser), "the image card shows the image")


@pytest.mark.parametrize("who", WHO)
def test_the_tag_is_listed(browser: Any, mlflow_ui: dict[str, Any], who: str) -> None:
    text = _page(browser, mlflow_ui, who, "", "About this run")
    tags = text.split("\nTags\n", 1)[1].split("\nRegistered models", 1)[0]
    assert runs.TAG in tags.split("\n")


def test_track_lists_only_the_users_tags(browser: Any, mlflow_ui: dict[str, Any]) -> None:
    text = _page(browser, mlflow_ui, "track", "", "About this run")
    tags = text.split("\nTags\n", 1)[1].split("\nRegistered models", 1)[0]
    assert [line for line in tags.split("\n") if line.strip()] == [runs.TAG]


def test_mlflows_own_system_metrics(browser: Any, mlflow_ui: dict[str, Any]) -> None:
    text = _page(browser, mlflow_ui, "mlflow", "/system-metrics", "cpu_utilization_percentage")
    assert "by-mlflow (system/system_memory_usage_percentage)" in text


def test_tracks_system_metrics_land_in_the_system_metrics_tab(
    browser: Any, mlflow_ui: dict[str, Any]
) -> None:
    overview = _page(browser, mlflow_ui, "track", "", "About this run")
    system = overview.split("System metrics (", 1)[1].split("Model metrics (", 1)[0]
    assert "loss" not in system  # the model's metrics are not mixed in
    assert "system/" in system
    charts = _page(browser, mlflow_ui, "track", "/system-metrics", "by-track (system/")
    assert "Model metrics" not in charts.split("System metrics\n(", 1)[1]


def test_tracks_system_metrics_have_mlflows_keys(browser: Any, mlflow_ui: dict[str, Any]) -> None:
    charts = _page(browser, mlflow_ui, "track", "/system-metrics", "by-track (system/")
    assert "by-track (system/cpu_utilization_percentage)" in charts
    assert "by-track (system/system_memory_usage_percentage)" in charts
