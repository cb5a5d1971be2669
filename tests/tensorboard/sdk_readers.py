"""Runs read back through Aim's and MLflow's own SDKs (the readers of tests/aim and tests/mlflow,
written on ``aim.Run`` and ``MlflowClient`` alone), for the tests marked ``torch``."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).parents[1] / "aim"), str(Path(__file__).parents[1] / "mlflow")]

import aim  # noqa: E402
import mlflow  # noqa: E402
from aim_storage import AimStorageReader, open_aim_run  # noqa: E402
from mlflow_storage import MlflowStorageReader  # noqa: E402

from track_core import Context  # noqa: E402


class Store:
    """One backend location: the track backend string, and reads through the backend's SDK."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        if kind == "aim":
            self.location = str(tmp_path / "aim")
            self.backend = f"aim:{self.location}"
        else:
            self.location = f"sqlite:///{tmp_path}/mlflow.db"
            self.backend = f"mlflow:{self.location}"

    def run_ids(self, experiment: str) -> list[str]:
        if self.kind == "aim":
            repo = aim.Repo.from_path(self.location)
            return sorted(
                run_hash
                for run_hash in repo.list_all_runs()
                if open_aim_run(self.location, run_hash).experiment == experiment
            )
        client = mlflow.MlflowClient(tracking_uri=self.location)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        return sorted(r.info.run_id for r in client.search_runs([found.experiment_id]))

    def read(self, run_id: str) -> Any:
        if self.kind == "aim":
            return AimStorageReader(open_aim_run(self.location, run_id))
        return MlflowStorageReader(self.location, run_id)

    def scalar_rows(
        self, run_id: str, name: str, context: dict[str, Any]
    ) -> list[tuple[int, float]]:
        """``(step, value)`` of every row the SDK holds for a scalar sequence, duplicates kept."""
        if self.kind == "aim":
            from aim.storage.context import Context as AimContext

            metric = open_aim_run(self.location, run_id).get_metric(name, AimContext(context))
            steps, (values, *_) = metric.data.numpy()
            return [(int(s), float(v)) for s, v in zip(steps, values, strict=True)]
        from track_mlflow.keys import encode_key

        client = mlflow.MlflowClient(tracking_uri=self.location)
        history = client.get_metric_history(run_id, encode_key(name, Context(context)))
        return sorted((m.step, m.value) for m in history)


def once_each(rows: list[tuple[int, float]]) -> bool:
    return all(count == 1 for count in Counter(step for step, _ in rows).values())
