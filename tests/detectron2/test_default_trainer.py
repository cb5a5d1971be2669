"""A real DefaultTrainer (Faster R-CNN R50-FPN, random weights, CPU) tracked to the memory backend."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from d2_helpers import same_value

import track_core as track
from track_detectron2 import TrackHook, log_evaluation
from track_detectron2.names import NameMapper
from track_detectron2.settings import DEFAULT_EVAL_TASKS


def _metrics_json(output_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, squares: tuple[str, str], trainer_cls: type
) -> dict[str, Any]:
    """One 4-iteration training (eval at iterations 1 and 4), shared by the checks below."""
    import logging

    import d2_helpers

    from track_detectron2 import add_track_config

    output_dir = tmp_path_factory.mktemp("trained") / "output"
    output_dir.mkdir()
    handler = logging.FileHandler(output_dir / "log.txt")
    logging.getLogger("detectron2").addHandler(handler)
    logging.getLogger("detectron2").setLevel(logging.INFO)
    cfg = d2_helpers.faster_rcnn_cfg(output_dir, squares)
    add_track_config(cfg)
    cfg.TRACK.EXPERIMENT = "detectron2-tests"
    cfg.TRACK.RUN_NAME = "faster-rcnn"
    cfg.TRACK.TAGS = ["cpu", "synthetic"]
    cfg.TRACK.WRITE_PERIOD = 3  # reads do not line up with PeriodicWriter's: nothing may be lost
    backend = d2_helpers.RecordingBackend("trained")
    torch.manual_seed(0)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=False)
    hook = TrackHook(cfg, backend=backend)
    trainer.register_hooks([hook])
    try:
        trainer.train()
    finally:
        logging.getLogger("detectron2").removeHandler(handler)
        handler.close()
    runs = backend.list_runs()
    return {
        "cfg": cfg,
        "backend": backend,
        "hook": hook,
        "runs": runs,
        "run": track.open_run(runs[0].id, backend) if runs else None,
        "output_dir": output_dir,
        "trainer": trainer,
    }


def test_one_run_finished(trained: dict[str, Any]) -> None:
    assert len(trained["runs"]) == 1
    run = trained["run"]
    assert run.status is track.Status.FINISHED
    assert run.error is None
    assert run.experiment == "detectron2-tests"
    assert run.name == "faster-rcnn"
    assert run.tags == frozenset({"cpu", "synthetic"})


def test_every_metrics_json_scalar_once_at_its_iteration(trained: dict[str, Any]) -> None:
    run = trained["run"]
    mapper = NameMapper.create(DEFAULT_EVAL_TASKS, default_dataset=trained["cfg"].DATASETS.TEST[0])
    lines = _metrics_json(trained["output_dir"])
    assert lines, "metrics.json is empty"
    checked = 0
    for line in lines:
        iteration = line.pop("iteration")
        for key, value in line.items():
            target = mapper(key)
            points = {p.step: p.value for p in run.sequence(target.name, target.context).points()}
            assert iteration in points, f"{key} missing at iteration {iteration}"
            assert same_value(points[iteration], value), (key, iteration, points[iteration], value)
            checked += 1
    assert checked >= 20
    # Exactly once: no (name, context, step) ever reached the backend twice.
    counts = trained["backend"].counts
    assert counts and max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]


def test_each_recorded_value_logged_once_and_no_stale_values(trained: dict[str, Any]) -> None:
    """Every sequence has one point per iteration its scalar was put at, no more."""
    run = trained["run"]
    storage = trained["trainer"].storage
    mapper = NameMapper.create(DEFAULT_EVAL_TASKS, default_dataset=trained["cfg"].DATASETS.TEST[0])
    per_sequence = Counter((name, ctx) for name, ctx, _ in trained["backend"].counts)
    for key, history in storage.histories().items():
        target = mapper(key)
        iterations = sorted({int(i) for _, i in history.values()})
        seq = run.sequence(target.name, target.context)
        assert [p.step for p in seq.points()] == iterations, key
        assert per_sequence[(target.name, target.context)] == len(iterations)
    # eta_seconds is put by CommonMetricPrinter only when it prints: it must not fill every step
    eta = run.sequence("eta_seconds", {"subset": "train"})
    assert len(eta.points()) < trained["cfg"].SOLVER.MAX_ITER


def test_training_scalars_and_eval_results_have_contexts(trained: dict[str, Any]) -> None:
    run = trained["run"]
    val = trained["cfg"].DATASETS.TEST[0]
    by_context: dict[str, set[str]] = {}
    for seq in run.sequences():
        by_context.setdefault(seq.context.get("subset"), set()).add(seq.name)
    assert {
        "total_loss",
        "loss_cls",
        "loss_box_reg",
        "loss_rpn_cls",
        "loss_rpn_loc",
        "lr",
        "time",
        "data_time",
        "fast_rcnn/cls_accuracy",
    } <= by_context["train"]
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl"} <= by_context["eval"]
    ap = run.sequence("AP", {"subset": "eval", "task": "bbox", "dataset": val})
    # EVAL_PERIOD=2 evaluates after iteration 1; the final evaluation runs in after_train with
    # storage.iter == max_iter.
    assert [p.step for p in ap.points()] == [1, 4]
    assert not any(
        "/" in name and name.split("/")[0] in DEFAULT_EVAL_TASKS for name in by_context["train"]
    )


def test_params_equal_the_config(trained: dict[str, Any]) -> None:
    cfg = trained["cfg"]
    params = trained["run"]["config"]
    dumped = yaml.safe_load(cfg.dump())
    assert "TRACK" not in dumped  # cfg.dump() leaves it out: config.yaml loads with get_cfg()
    assert {key: value for key, value in params.items() if key != "TRACK"} == dumped
    assert params["SOLVER"]["MAX_ITER"] == 4
    assert params["TRACK"]["RUN_NAME"] == "faster-rcnn"
    assert params["MODEL"]["ROI_HEADS"]["NUM_CLASSES"] == 1


def test_artifacts(trained: dict[str, Any]) -> None:
    run = trained["run"]
    output_dir = trained["output_dir"]
    assert set(run.artifacts()) >= {"config.yaml", "metrics.json", "log.txt"}
    assert "model_final.pth" not in run.artifacts()  # opt-in
    assert run.artifact_bytes("metrics.json") == (output_dir / "metrics.json").read_bytes()
    assert yaml.safe_load(run.artifact_bytes("config.yaml")) == yaml.safe_load(
        trained["cfg"].dump()
    )
    assert b"Starting training" in run.artifact_bytes("log.txt")
    # the uploaded config loads into a plain Detectron2 config, without add_track_config
    from detectron2.config import get_cfg

    path = output_dir / "downloaded-config.yaml"
    path.write_bytes(run.artifact_bytes("config.yaml"))
    loaded = get_cfg()
    loaded.merge_from_file(str(path))
    assert loaded.SOLVER.MAX_ITER == trained["cfg"].SOLVER.MAX_ITER


def test_log_evaluation_after_training(trained: dict[str, Any], trainer_cls: type) -> None:
    """The test-set evaluation users do after train(): logged into the same (closed) run."""
    from detectron2.data import build_detection_test_loader
    from detectron2.evaluation import inference_on_dataset

    cfg = trained["cfg"]
    trainer = trained["trainer"]
    val = cfg.DATASETS.TEST[0]
    evaluator = trainer_cls.build_evaluator(cfg, val, str(trained["output_dir"] / "test"))
    results = inference_on_dataset(trainer.model, build_detection_test_loader(cfg, val), evaluator)
    assert "bbox" in results
    count = log_evaluation(results, trained["hook"], dataset=val)
    assert count == len(results["bbox"])
    run = track.open_run(trained["runs"][0].id, trained["backend"])
    ap = run.sequence("AP", {"subset": "test", "task": "bbox", "dataset": val})
    # the default step: the last training iteration
    last = cfg.SOLVER.MAX_ITER - 1
    assert [p.step for p in ap.points()] == [last]
    assert run.sequence("total_loss", {"subset": "train"}).points()[-1].step == last
    assert run.status is track.Status.FINISHED  # resumed, then closed with the status it had

    # without dataset=: the one DATASETS.TEST, as EvalHook results are named
    assert log_evaluation(results, trained["hook"], subset="test2") == count
    run = track.open_run(trained["runs"][0].id, trained["backend"])
    ap2 = run.sequence("AP", {"subset": "test2", "task": "bbox", "dataset": val})
    assert [p.step for p in ap2.points()] == [last]
    assert not [
        s
        for s in run.sequences()
        if s.context.get("subset") == "test2" and "dataset" not in s.context
    ]
