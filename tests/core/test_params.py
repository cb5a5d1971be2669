"""Params: the config objects users have become plain nested data, or a TypeError with a path."""

from __future__ import annotations

import argparse
import dataclasses
import enum
from collections import OrderedDict
from pathlib import Path

import attrs
import numpy as np
import pytest

from track_core import to_params


class Color(enum.Enum):
    RED = "red"


class CfgNodeLike(dict):  # type: ignore[type-arg]
    """yacs' CfgNode is a dict subclass with attribute access."""

    def __getattr__(self, name: str) -> object:
        return self[name]


@dataclasses.dataclass
class Optimizer:
    name: str = "sgd"
    momentum: float = 0.9


@dataclasses.dataclass
class TrainConfig:
    lr: float = 0.1
    optimizer: Optimizer = dataclasses.field(default_factory=Optimizer)
    sizes: tuple[int, ...] = (1, 2)


@attrs.define
class AttrsConfig:
    depth: int = 50
    out: Path = Path("/tmp/out")


def test_plain_data_passes_through() -> None:
    data = {"a": [1, 2.5, None, True, "x", {"b": []}], "c": {}}
    assert to_params(data) == data


def test_config_objects_become_nested_dicts() -> None:
    assert to_params(TrainConfig()) == {
        "lr": 0.1,
        "optimizer": {"name": "sgd", "momentum": 0.9},
        "sizes": [1, 2],
    }
    assert to_params(AttrsConfig()) == {"depth": 50, "out": "/tmp/out"}
    assert to_params(argparse.Namespace(lr=1e-3, color=Color.RED)) == {"lr": 1e-3, "color": "red"}
    node = CfgNodeLike(MODEL=CfgNodeLike(WEIGHTS="", PIXEL_MEAN=[103.5, 116.2]))
    assert to_params(node) == {"MODEL": {"WEIGHTS": "", "PIXEL_MEAN": [103.5, 116.2]}}
    assert to_params(OrderedDict(b=1, a=2)) == {"b": 1, "a": 2}


def test_numpy_values_and_arrays() -> None:
    assert to_params({"x": np.float32(0.5), "m": np.arange(3)}) == {"x": 0.5, "m": [0, 1, 2]}


def test_sets_become_sorted_lists_and_int_keys_become_str() -> None:
    assert to_params({"s": {3, 1, 2}}) == {"s": [1, 2, 3]}
    assert to_params({"classes": {0: "cat", 1: "dog"}}) == {"classes": {"0": "cat", "1": "dog"}}


def test_omegaconf_is_resolved() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"lr": 0.1, "model": {"lr": "${lr}", "layers": [1, 2]}})
    assert to_params(cfg) == {"lr": 0.1, "model": {"lr": 0.1, "layers": [1, 2]}}


def test_pydantic_models() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):  # type: ignore[misc,name-defined]
        lr: float = 0.1
        tags: list[str] = pydantic.Field(default_factory=lambda: ["a"])

    assert to_params(Model()) == {"lr": 0.1, "tags": ["a"]}


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"model": {"head": object()}}, r"params\.model\.head"),
        ({"layers": [1, b"bytes"]}, r"params\.layers\[1\]"),
        ({(1, 2): "tuple key"}, r"keys must be str"),
    ],
)
def test_unsupported_leaves_name_their_key_path(value: object, path: str) -> None:
    with pytest.raises(TypeError, match=path):
        to_params(value)


def test_keys_that_collide_once_made_str_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        to_params({1: "a", "1": "b"})
