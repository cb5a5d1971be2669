"""End to end: one real DefaultTrainer (Faster R-CNN, CPU, 4 iterations) tracked to Aim and
MLflow at once through the multi-backend string in ``cfg.TRACK.BACKEND``, read back through
Aim's and MLflow's own SDKs: one run on each, every value on both."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from d2_helpers import same_value
from detectron2.engine import HookBase

from track_detectron2 import TrackHook

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::track_core.NonFiniteValueWarning"),
]


def test_one_training_reaches_aim_and_mlflow_through_one_cfg_string(
    make_cfg: Any, trainer_cls: type, tmp_path: Path
) -> None:
    pytest.importorskip("track_aim")
    pytest.importorskip("track_mlflow")
    aim = pytest.importorskip("aim")
    mlflow = pytest.importorskip("mlflow")
    repo_path = tmp_path / "aim"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = make_cfg()
    # the location of the second backend holds ':' and '/': only ' | ' separates backends
    cfg.TRACK.BACKEND = f"aim:{repo_path} | mlflow:{uri}"
    cfg.TRACK.EXPERIMENT = "d2-both"
    cfg.TRACK.RUN_NAME = "faster-rcnn-both"
    cfg.TRACK.TAGS = ["e2e"]
    torch.manual_seed(0)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=False)
    hook = TrackHook(cfg)
    writer_pids: set[int] = set()

    class WriterPids(HookBase):  # type: ignore[misc]
        def after_step(self) -> None:
            writer_pids.update(run.writer_pid for run in hook.run.runs)

    trainer.register_hooks([hook, WriterPids()])
    trainer.train()
    ids = dict(hook.run.ids)
    assert [origin.split(":", 1)[0] for origin in ids] == ["aim", "mlflow"], ids
    aim_id, mlflow_id = ids.values()
    # each backend had a writer process of its own (WRITER_PROCESS "auto")
    assert len(writer_pids) == 2 and os.getpid() not in writer_pids, writer_pids

    lines = [json.loads(line) for line in (Path(cfg.OUTPUT_DIR) / "metrics.json").open()]
    last = [line for line in lines if "total_loss" in line][-1]
    evaluated = {line["iteration"]: line["bbox/AP"] for line in lines if "bbox/AP" in line}
    assert evaluated, "no evaluation in metrics.json"
    val = cfg.DATASETS.TEST[0]

    # Aim, through its own SDK
    (aim_run,) = list(aim.Repo(str(repo_path)).iter_runs())
    assert aim_run.hash == aim_id
    assert (aim_run.experiment, aim_run.name) == ("d2-both", "faster-rcnn-both")
    assert aim_run["config"]["SOLVER"]["MAX_ITER"] == 4
    assert aim_run["__system_params", "track", "status"] == "finished"
    metrics = {(m.name, tuple(sorted(m.context.to_dict().items()))): m for m in aim_run.metrics()}
    steps, (values, _epochs, _stamps) = metrics[("total_loss", (("subset", "train"),))].data.numpy()
    aim_loss = dict(zip(steps.tolist(), values.tolist(), strict=True))
    assert sorted(aim_loss) == [0, 1, 2, 3]
    assert aim_loss[last["iteration"]] == pytest.approx(last["total_loss"], rel=1e-6)
    ap = metrics[("AP", (("dataset", val), ("subset", "eval"), ("task", "bbox")))]
    ap_steps, (ap_values, _e, _t) = ap.data.numpy()
    aim_ap = dict(zip(ap_steps.tolist(), ap_values.tolist(), strict=True))
    assert sorted(aim_ap) == sorted(evaluated)
    assert {"config.yaml", "metrics.json", "log.txt"} <= set(aim_run.artifacts)

    # MLflow, through MlflowClient
    client = mlflow.MlflowClient(tracking_uri=uri)
    (ml_run,) = client.search_runs([client.get_experiment_by_name("d2-both").experiment_id])
    assert ml_run.info.run_id == mlflow_id
    assert (ml_run.info.status, ml_run.info.run_name) == ("FINISHED", "faster-rcnn-both")
    assert ml_run.data.params["config.SOLVER.MAX_ITER"] == "4"
    history = client.get_metric_history(mlflow_id, "total_loss :: subset: train")
    ml_loss = {m.step: m.value for m in history}
    ml_ap = {
        m.step: m.value
        for m in client.get_metric_history(
            mlflow_id, f"AP :: dataset: {val} :: subset: eval :: task: bbox"
        )
    }
    artifacts = {f.path for f in client.list_artifacts(mlflow_id)}
    assert {"config.yaml", "metrics.json", "log.txt"} <= artifacts

    # the same values on both, as Detectron2 wrote them
    assert ml_loss == aim_loss
    assert sorted(ml_ap) == sorted(aim_ap)
    for iteration, value in evaluated.items():
        assert same_value(aim_ap[iteration], value), (iteration, aim_ap[iteration], value)
        assert same_value(ml_ap[iteration], value), (iteration, ml_ap[iteration], value)
