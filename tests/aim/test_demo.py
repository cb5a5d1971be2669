"""The README's demo: a real training run tracked to a local Aim repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aim.sdk.repo import Repo
from aim_storage import AimStorageReader, open_aim_run

DEMO = Path(__file__).resolve().parents[2] / "demo" / "train.py"


def test_the_demo_tracks_a_training_run_and_says_how_to_open_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(DEMO), "--steps", "120"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert f"aim up --repo {tmp_path}" in result.stdout
    [run_hash] = Repo.from_path(str(tmp_path)).list_all_runs()
    reader = AimStorageReader(open_aim_run(tmp_path, run_hash))
    sequences = {
        (s.name, tuple(sorted(s.context.items())), s.kind.value) for s in reader.sequences()
    }
    assert sequences == {
        ("loss", (("subset", "train"),), "scalar"),
        ("loss", (("subset", "val"),), "scalar"),
        ("accuracy", (("subset", "train"),), "scalar"),
        ("accuracy", (("subset", "val"),), "scalar"),
        ("weights", (("layer", "hidden"),), "distribution"),
        ("decision_regions", (), "image"),
        ("summary", (), "text"),
    }
    from track_core import Context

    assert len(reader.points("loss", Context(subset="train"))) == 120
    assert reader.params["hparams"]["steps"] == 120
    assert reader.status.value == "finished"
