"""The config.yaml that ``default_setup`` writes loads again with a plain ``get_cfg()``
(``--eval-only``, ``demo.py``): ``add_track_config`` keeps ``TRACK`` out of ``cfg.dump()``."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from detectron2.config import CfgNode, LazyConfig, get_cfg
from omegaconf import OmegaConf

from track_detectron2 import TrackSettings, add_track_config


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    """``default_setup`` adds handlers to Detectron2's loggers and stops their propagation."""
    loggers = [logging.getLogger(name) for name in ("detectron2", "fvcore")]
    saved = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    yield
    for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        for handler in lg.handlers[:]:
            if handler not in handlers:
                lg.removeHandler(handler)
                handler.close()
        lg.propagate, lg.level = propagate, level


def test_default_setup_config_yaml_loads_without_add_track_config(
    make_cfg: Any, output_dir: Path, restore_loggers: None
) -> None:
    from detectron2.engine import default_argument_parser, default_setup

    cfg = make_cfg()
    args = default_argument_parser().parse_args(
        ["TRACK.BACKEND", "memory:files", "TRACK.RUN_NAME", "from-cli"]
    )
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    written = output_dir / "config.yaml"
    assert "TRACK" not in yaml.safe_load(written.read_text())
    loaded = get_cfg()
    loaded.merge_from_file(str(written))  # KeyError "Non-existent config key: TRACK" before
    assert loaded.SOLVER.MAX_ITER == cfg.SOLVER.MAX_ITER
    assert loaded.DATASETS.TEST == cfg.DATASETS.TEST
    # the node is still there for everything else
    assert TrackSettings.from_config(cfg).run_name == "from-cli"
    assert TrackSettings.from_config(cfg.clone()).backend == "memory:files"
    assert isinstance(cfg, CfgNode)


def test_tracked_config_behaves_as_a_cfgnode() -> None:
    cfg = get_cfg()
    add_track_config(cfg)
    cfg.TRACK.EXPERIMENT = "x"
    clone = cfg.clone()
    assert "TRACK" not in yaml.safe_load(clone.dump())
    assert clone.TRACK.EXPERIMENT == "x"
    again = pickle.loads(pickle.dumps(cfg))
    assert again.TRACK.EXPERIMENT == "x" and "TRACK" not in again.dump()
    # a plain config dumps as before, and a config without TRACK dumps all of itself
    assert yaml.safe_load(get_cfg().dump()) == yaml.safe_load(cfg.dump())
    del cfg["TRACK"]
    assert yaml.safe_load(cfg.dump()) == yaml.safe_load(get_cfg().dump())


def test_lazyconfig_with_track_node_loads_again(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"train": {"output_dir": str(tmp_path), "max_iter": 3}})
    add_track_config(cfg)
    cfg.track.run_name = "lazy"
    path = tmp_path / "config.yaml"
    LazyConfig.save(cfg, str(path))
    loaded = LazyConfig.load(str(path))  # no schema: an extra node loads
    assert loaded.track.run_name == "lazy" and loaded.train.max_iter == 3
