"""Fixtures for the TensorBoard tests.

The tests marked ``torch`` run in the ``tensorboard-torch`` environment (torch, tensorboard,
tensorboardX, Lightning, Aim, MLflow); the others in ``tensorboard`` (no torch, no backend but
``memory``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import track_core as track
import track_tensorboard


@pytest.fixture
def memory() -> str:
    """A backend string for a memory store of this test's own."""
    return f"memory:tb-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Every test starts and ends without a patch, a session or a current run."""
    yield
    track_tensorboard.stop_logging()
    track_tensorboard.unpatch()
    track.clear_current_run()
