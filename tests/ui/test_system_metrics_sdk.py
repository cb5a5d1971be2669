"""The system metrics sampler on the real backends, read back through Aim's and MLflow's own SDKs
(no browser). GPUs: none on this machine, so these runs hold the psutil metrics only."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import track_core as track
from track_core import system_metrics
from track_core.system_metrics import METRICS

PSUTIL_METRICS = sorted(name for name, metric in METRICS.items() if not metric.gpu)


def _sample(backend: str, names: str | None = None, **options: Any) -> tuple[str, int]:
    """A run with the sampler at 0.1 s for a moment; (run id, samples taken)."""
    with track.start_run(backend, experiment="system-metrics", **options) as run:
        sampler = system_metrics.start_sampler(run, interval=0.1, names=names)
        deadline = time.monotonic() + 30
        while sampler.samples < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        sampler.stop()
        return run.id, sampler.samples


# -- MLflow -----------------------------------------------------------------------------------


@pytest.mark.parametrize("process", ["off", "on"])
def test_mlflow_keys_mlflows_style_through_the_writer(tmp_path: Path, process: str) -> None:
    """MLflow's own keys, through the background writer in a thread or a writer process."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, samples = _sample(
        f"mlflow:{uri}", names="mlflow", writer=track.WriterOptions(process=process)
    )
    assert samples >= 3
    client = MlflowClient(uri)
    stored = client.get_run(run_id).data.metrics
    expected = {system_metrics.mlflow_names(metric, None, None)[0] for metric in PSUTIL_METRICS}
    assert set(stored) == expected
    history = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert [m.step for m in history] == list(range(samples))
    assert all(0.0 <= m.value <= 100.0 for m in history)


def test_mlflow_default_style_lands_under_system(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, _ = _sample(f"mlflow:{uri}")
    keys = set(MlflowClient(uri).get_run(run_id).data.metrics)
    assert len(keys) == len(PSUTIL_METRICS)
    assert all(key.startswith("system/") for key in keys)  # MLflow's System metrics section


def test_mlflow_backend_asks_for_mlflows_keys(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, _ = _sample(f"mlflow:{uri}")
    assert "system/cpu_utilization_percentage" in MlflowClient(uri).get_run(run_id).data.metrics


# -- Aim --------------------------------------------------------------------------------------


def _aim_metrics(repo: Path, run_id: str) -> dict[tuple[str, tuple[tuple[str, Any], ...]], int]:
    from aim import Repo

    aim_run = Repo(str(repo)).get_run(run_id)
    assert aim_run is not None
    return {
        (metric.name, tuple(sorted(metric.context.to_dict().items()))): len(
            metric.values.values_list()
        )
        for metric in aim_run.metrics()
    }


def test_aim_neutral_style_lands_as_plain_metrics(tmp_path: Path) -> None:
    run_id, samples = _sample(f"aim:{tmp_path}", names="neutral")
    stored = _aim_metrics(tmp_path, run_id)
    assert {name for name, _ in stored} == {f"system/{metric}" for metric in PSUTIL_METRICS}
    assert all(count == samples for count in stored.values())


def test_aim_style_reaches_aims_system_metrics(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_id, samples = _sample(f"aim:{tmp_path}", names="aim")
    stored = _aim_metrics(tmp_path, run_id)
    for native in ("cpu", "memory_percent", "p_memory_percent", "disk_percent"):
        assert stored.get((f"__system__{native}", ())) == samples
