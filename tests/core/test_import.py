"""``import track_core`` stays light: no numpy, torch, PIL or backend SDK."""

from __future__ import annotations

import subprocess
import sys


def test_import_pulls_no_heavy_library() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import track_core; track_core.start_run('memory').close()",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if "|" in line
    }
    assert "track_core" in imported
    assert imported.isdisjoint({"numpy", "torch", "PIL", "aim", "mlflow", "spacy", "detectron2"})
