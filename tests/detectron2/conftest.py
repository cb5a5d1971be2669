"""Fixtures for the Detectron2 tests: real Detectron2, a tiny synthetic dataset, CPU only."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "detectron2",
    reason="Detectron2 is not installed: run "
    "packages/track-detectron2/scripts/install_detectron2.py",
)

import d2_helpers


@pytest.fixture(scope="session")
def squares(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The names of the registered synthetic train / val datasets (white squares, 96x96)."""
    return d2_helpers.register_squares(tmp_path_factory.mktemp("squares"))


@pytest.fixture
def output_dir(tmp_path: Path) -> Iterator[Path]:
    """A training output directory whose ``log.txt`` gets Detectron2's log, like
    ``setup_logger(output=...)`` does."""
    out = tmp_path / "output"
    out.mkdir()
    handler = logging.FileHandler(out / "log.txt")
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    d2_logger = logging.getLogger("detectron2")
    d2_logger.addHandler(handler)
    previous = d2_logger.level
    d2_logger.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        d2_logger.removeHandler(handler)
        d2_logger.setLevel(previous)
        handler.close()


@pytest.fixture
def make_cfg(squares: tuple[str, str], output_dir: Path) -> Callable[..., Any]:
    """``make_cfg(**kw)``: Faster R-CNN R50-FPN, random weights, CPU, with a ``TRACK`` node."""
    from track_detectron2 import add_track_config

    def make(**kwargs: Any) -> Any:
        cfg = d2_helpers.faster_rcnn_cfg(output_dir, squares, **kwargs)
        add_track_config(cfg)
        return cfg

    return make


@pytest.fixture(scope="session")
def trainer_cls() -> type:
    """``DefaultTrainer`` evaluating with ``COCOEvaluator(use_fast_impl=False)``."""
    return d2_helpers.trainer_class()


@pytest.fixture
def recording_backend() -> d2_helpers.RecordingBackend:
    """The memory backend, in a store of its own, counting every point that reaches it."""
    return d2_helpers.RecordingBackend(f"test-{uuid.uuid4().hex[:8]}")
