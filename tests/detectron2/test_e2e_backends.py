"""End to end: a real DefaultTrainer (Faster R-CNN, CPU) tracked to Aim, to MLflow, and to both
at once through one backend string, read back through Aim's and MLflow's own SDKs. Run in an environment that has the backend installed."""

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


def _train(make_cfg: Any, trainer_cls: type, backend: str) -> tuple[Any, TrackHook, set[int]]:
    """Train with ``cfg.TRACK.BACKEND = backend``; the cfg, the hook and the writer PIDs seen."""
    cfg = make_cfg()
    cfg.TRACK.BACKEND = backend
    cfg.TRACK.EXPERIMENT = "d2-e2e"
    cfg.TRACK.RUN_NAME = "faster-rcnn-e2e"
    cfg.TRACK.TAGS = ["e2e"]
    torch.manual_seed(0)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=False)
    track_hook = TrackHook(cfg)
    writer_pids: set[int] = set()

    class WriterPids(HookBase):  # type: ignore[misc]
        def after_step(self) -> None:
            run = track_hook.run
            writer_pids.update(each.writer_pid for each in getattr(run, "runs", (run,)))

    trainer.register_hooks([track_hook, WriterPids()])
    trainer.train()
    # by default (WRITER_PROCESS "auto") the backend's SDK calls ran in a writer process
    assert writer_pids and os.getpid() not in writer_pids
    return cfg, track_hook, writer_pids


def _metrics_json(cfg: Any) -> list[dict[str, Any]]:
    lines = (Path(cfg.OUTPUT_DIR) / "metrics.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _eval_lines(cfg: Any, key: str) -> dict[int, float]:
    """``{iteration: value}`` of an evaluation result as Detectron2 wrote it to metrics.json."""
    found = {line["iteration"]: line[key] for line in _metrics_json(cfg) if key in line}
    assert found, f"no {key} in metrics.json"
    return found


def test_mlflow_end_to_end(make_cfg: Any, trainer_cls: type, tmp_path: Path) -> None:
    pytest.importorskip("track_mlflow")
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg, _hook, _pids = _train(make_cfg, trainer_cls, f"mlflow:{uri}")

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("d2-e2e")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "faster-rcnn-e2e"
    assert run.data.params["config.SOLVER.MAX_ITER"] == "4"
    assert run.data.params["config.MODEL.DEVICE"] == "cpu"
    # readable keys: the name, then the context
    loss = client.get_metric_history(run.info.run_id, "total_loss :: subset: train")
    assert sorted(m.step for m in loss) == [0, 1, 2, 3]
    val = cfg.DATASETS.TEST[0]
    ap = client.get_metric_history(
        run.info.run_id, f"AP :: dataset: {val} :: subset: eval :: task: bbox"
    )
    assert sorted(m.step for m in ap) == [1, 4]
    # NaN when the untrained model finds nothing, 0.0 when it finds only wrong boxes
    by_step = {m.step: m.value for m in ap}
    for iteration, value in _eval_lines(cfg, "bbox/AP").items():
        assert same_value(by_step[iteration], value), (iteration, by_step[iteration], value)
    # the last metrics.json training line, value for value
    last = [line for line in _metrics_json(cfg) if "total_loss" in line][-1]
    by_step = {m.step: m.value for m in loss}
    assert by_step[last["iteration"]] == pytest.approx(last["total_loss"], rel=1e-6)
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "log.txt"} <= artifacts


def test_aim_end_to_end(make_cfg: Any, trainer_cls: type, tmp_path: Path) -> None:
    pytest.importorskip("track_aim")
    aim = pytest.importorskip("aim")
    repo_path = tmp_path / "aim"
    cfg, _hook, _pids = _train(make_cfg, trainer_cls, f"aim:{repo_path}")

    repo = aim.Repo(str(repo_path))
    runs = list(repo.iter_runs())
    assert len(runs) == 1
    run = runs[0]
    assert run.experiment == "d2-e2e"
    assert run.name == "faster-rcnn-e2e"
    assert "e2e" in [tag.name if hasattr(tag, "name") else tag for tag in run.props.tags]
    assert run["config"]["SOLVER"]["MAX_ITER"] == 4
    assert run["__system_params", "track", "status"] == "finished"
    metrics = {(m.name, tuple(sorted(m.context.to_dict().items()))): m for m in run.metrics()}
    loss = metrics[("total_loss", (("subset", "train"),))]
    steps, columns = loss.data.numpy()
    values = columns[0]  # the "val" column
    assert steps.tolist() == [0, 1, 2, 3]
    last = [line for line in _metrics_json(cfg) if "total_loss" in line][-1]
    assert values[steps.tolist().index(last["iteration"])] == pytest.approx(
        last["total_loss"], rel=1e-6
    )
    val = cfg.DATASETS.TEST[0]
    ap = metrics[("AP", (("dataset", val), ("subset", "eval"), ("task", "bbox")))]
    ap_steps, ap_columns = ap.data.numpy()
    ap_values = ap_columns[0]
    assert ap_steps.tolist() == [1, 4]
    for iteration, value in _eval_lines(cfg, "bbox/AP").items():
        stored = float(ap_values[ap_steps.tolist().index(iteration)])
        assert same_value(stored, value), (iteration, stored, value)
    assert {"config.yaml", "metrics.json", "log.txt"} <= set(run.artifacts)


# -- histograms (storage.put_histogram, 1000 bins by default) -----------------------------------


class PutHistograms(HookBase):  # type: ignore[misc]
    """Puts the first layer's weights as a histogram every step (Detectron2's default 1000 bins),
    keeping each tensor to compare with what the backend stored."""

    def __init__(self) -> None:
        self.tensors: dict[int, torch.Tensor] = {}

    def after_step(self) -> None:
        weights = self.trainer.model.body[0].weight.detach().flatten().clone()
        self.tensors[self.trainer.iter] = weights
        self.trainer.storage.put_histogram("weights/body0", weights)


def _train_with_histograms(backend: str, output_dir: Path) -> PutHistograms:
    import d2_helpers
    from detectron2.engine import SimpleTrainer

    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.05)
    )
    put = PutHistograms()
    trainer.register_hooks(
        [put, TrackHook(backend=backend, output_dir=str(output_dir), run_name="hist")]
    )
    trainer.train(0, 4)
    return put


def test_histograms_reach_aim(tmp_path: Path) -> None:
    pytest.importorskip("track_aim")
    aim = pytest.importorskip("aim")
    from aim.storage.context import Context as AimContext

    put = _train_with_histograms(f"aim:{tmp_path / 'aim'}", tmp_path)
    (run,) = list(aim.Repo(str(tmp_path / "aim")).iter_runs())
    sequence = run.get_distribution_sequence("weights/body0", AimContext({"subset": "train"}))
    assert sequence is not None, "no histogram reached Aim"
    steps, (values, _epochs, _stamps) = sequence.data.numpy()
    assert steps.tolist() == [0, 1, 2, 3]
    for step, stored in zip(steps.tolist(), values, strict=True):
        tensor = put.tensors[step]
        full = torch.histc(tensor, bins=1000).tolist()
        counts, edges = stored.to_np_histogram()
        # Aim holds 512 bins at most: every two adjacent bins merged, counts exact
        assert counts.tolist() == [full[i] + full[i + 1] for i in range(0, 1000, 2)]
        assert float(edges[0]) == pytest.approx(float(tensor.min()), rel=1e-12)
        assert float(edges[-1]) == pytest.approx(float(tensor.max()), rel=1e-12)
        assert len(edges) == 501


def test_histograms_reach_mlflow(tmp_path: Path) -> None:
    pytest.importorskip("track_mlflow")
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    put = _train_with_histograms(f"mlflow:{uri}", tmp_path)

    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    folders = [
        info.path
        for info in client.list_artifacts(run.info.run_id, "track/distribution")
        if info.is_dir
    ]
    assert len(folders) == 1 and folders[0].endswith("weights~body0 :: subset: train")
    records = []
    for info in client.list_artifacts(run.info.run_id, folders[0]):
        local = client.download_artifacts(run.info.run_id, info.path, str(tmp_path / "dl"))
        records.append(json.loads(Path(local).read_text()))
    records.sort(key=lambda record: record["step"])
    assert [record["step"] for record in records] == [0, 1, 2, 3]
    for record in records:
        tensor = put.tensors[record["step"]]
        # MLflow keeps any bins: all 1000, with exact equal-width edges
        assert record["counts"] == torch.histc(tensor, bins=1000).tolist()
        low, high = float(tensor.min()), float(tensor.max())
        assert record["bin_edges"] == [low + (high - low) * i / 1000 for i in range(1000)] + [high]


def test_one_training_reaches_aim_and_mlflow_through_one_cfg_string(
    make_cfg: Any, trainer_cls: type, tmp_path: Path
) -> None:
    pytest.importorskip("track_aim")
    pytest.importorskip("track_mlflow")
    aim = pytest.importorskip("aim")
    mlflow = pytest.importorskip("mlflow")
    repo_path = tmp_path / "aim"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # the location of the second backend holds ':' and '/': only ' | ' separates backends
    cfg, hook, writer_pids = _train(make_cfg, trainer_cls, f"aim:{repo_path} | mlflow:{uri}")
    ids = dict(hook.run.ids)
    assert [origin.split(":", 1)[0] for origin in ids] == ["aim", "mlflow"], ids
    aim_id, mlflow_id = ids.values()
    assert len(writer_pids) == 2, writer_pids  # a writer process for each backend

    last = [line for line in _metrics_json(cfg) if "total_loss" in line][-1]
    evaluated = _eval_lines(cfg, "bbox/AP")
    val = cfg.DATASETS.TEST[0]

    # Aim, through its own SDK
    (aim_run,) = list(aim.Repo(str(repo_path)).iter_runs())
    assert aim_run.hash == aim_id
    assert (aim_run.experiment, aim_run.name) == ("d2-e2e", "faster-rcnn-e2e")
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
    (ml_run,) = client.search_runs([client.get_experiment_by_name("d2-e2e").experiment_id])
    assert ml_run.info.run_id == mlflow_id
    assert (ml_run.info.status, ml_run.info.run_name) == ("FINISHED", "faster-rcnn-e2e")
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
