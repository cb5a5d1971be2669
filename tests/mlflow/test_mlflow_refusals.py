"""What MLflow's store refuses for good is a PermanentWriteError (issue 20), so the core isolates
the point instead of retrying the batch forever."""

from __future__ import annotations

from pathlib import Path

import pytest

from track_core.backend import PermanentWriteError, RunSpec, TrackedPoint
from track_core.context import Context
from track_core.values import ValueKind
from track_mlflow import create_backend


def point(step: int, value: float = 1.0) -> TrackedPoint:
    return TrackedPoint("x", Context(), ValueKind.SCALAR, step, None, 1_700_000_000.0, value)


def test_a_step_sqlite_cannot_hold_is_refused_for_good(tmp_path: Path) -> None:
    backend = create_backend(f"sqlite:///{tmp_path / 'mlflow.db'}")
    writer = backend.create_run(RunSpec(experiment="refusals"))
    writer.write_points([point(1)])
    with pytest.raises(PermanentWriteError, match="MLflow") as refused:
        writer.write_points([point(2**63)])  # past what the core lets through, on purpose
    assert refused.value.__cause__ is not None
    writer.write_points([point(3)])
    assert [p.step for p in backend.read_run(writer.id).points("x", Context())] == [1, 3]
