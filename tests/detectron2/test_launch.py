"""Two processes training together on CPU (gloo): exactly one run, from rank 0."""

from __future__ import annotations

import json
from pathlib import Path

import d2_helpers


def test_two_process_training_makes_one_run(tmp_path: Path) -> None:
    # Detectron2 v0.6's launch() asserts CUDA and uses NCCL; cpu_launch uses the real launch()
    # when it supports CPU (later Detectron2), else the same worker setup with gloo.
    log_dir = tmp_path / "records"
    log_dir.mkdir()
    output_dir = tmp_path / "output"
    output_dir.mkdir()
    d2_helpers.cpu_launch(d2_helpers.ddp_train_worker, 2, args=(str(output_dir), str(log_dir), 6))
    records = {p.name: json.loads(p.read_text()) for p in log_dir.glob("*.json")}
    runs = [r for name, r in records.items() if name.startswith("run-")]
    closes = [r for name, r in records.items() if name.startswith("close-")]
    done = sorted(
        (r["rank"], r["hook_run"]) for name, r in records.items() if name.startswith("done-")
    )
    assert done == [(0, "TrackedRun"), (1, None)]  # both ranks ran the hook; only rank 0 tracked
    assert len(runs) == 1 and runs[0]["rank"] == 0 and runs[0]["name"] == "ddp"
    assert len(closes) == 1 and closes[0]["status"] == "finished" and closes[0]["points"] > 0
