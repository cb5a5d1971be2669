"""Params: turn the config objects users have into plain, JSON-like data."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import math
import os
from collections.abc import Mapping
from typing import Any, Union

import attrs

Param = Union[None, bool, int, float, str, list["Param"], dict[str, "Param"]]


def to_params(value: object, path: str = "params") -> Param:
    """Convert ``value`` into nested dicts, lists and JSON scalars.

    Accepted: dicts and any Mapping (yacs / Detectron2 ``CfgNode``), OmegaConf configs (resolved),
    dataclasses, attrs classes, pydantic models, ``argparse.Namespace``, lists and tuples, sets
    (as sorted lists), enums (their value), paths (as str), numpy / torch scalars and small arrays.
    Mapping keys must be str (int, float and bool keys become str). Anything else raises a
    TypeError naming its key path, e.g. ``params.model.optimizer``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    module = type(value).__module__ or ""
    if module.startswith(("numpy", "torch")):
        if hasattr(value, "tolist"):
            return to_params(value.tolist(), path)
        if hasattr(value, "item"):
            return to_params(value.item(), path)
    if module.startswith("omegaconf"):
        omegaconf: Any = importlib.import_module("omegaconf")
        container = omegaconf.OmegaConf.to_container(value, resolve=True, throw_on_missing=False)
        return to_params(container, path)
    if isinstance(value, enum.Enum):
        return to_params(value.value, path)
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    if isinstance(value, Mapping):
        return _mapping(value, path)
    if isinstance(value, (list, tuple)):
        return [to_params(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [to_params(item, f"{path}{{}}") for item in value]
        return sorted(items, key=repr)
    if isinstance(value, argparse.Namespace):
        return _mapping(vars(value), path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _mapping({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, path)
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))  # type: ignore[arg-type]
        return _mapping({a.name: getattr(value, a.name) for a in fields}, path)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and hasattr(type(value), "model_fields"):  # pydantic v2
        return _mapping(model_dump(), path)
    raise TypeError(
        f"unsupported param value at {path}: {type(value).__name__} ({value!r:.80}); "
        "params take dicts, lists, numbers, bools, strings, None and config objects "
        "(dataclass, attrs, pydantic, OmegaConf, yacs CfgNode, argparse.Namespace)"
    )


def _mapping(value: Mapping[Any, Any], path: str) -> dict[str, Param]:
    result: dict[str, Param] = {}
    for key, item in value.items():
        if isinstance(key, (bool, int)) or (isinstance(key, float) and math.isfinite(key)):
            key = str(key)
        if not isinstance(key, str):
            raise TypeError(f"param keys must be str, got {key!r} ({type(key).__name__}) at {path}")
        if key in result:
            raise ValueError(f"param key {key!r} appears twice at {path} once keys are made str")
        result[key] = to_params(item, f"{path}.{key}")
    return result


def check_param_key(key: object) -> str:
    """A top-level param key, as in ``run["hparams"] = ...``."""
    if not isinstance(key, str):
        raise TypeError(f"param keys must be str, got {type(key).__name__}: {key!r}")
    if not key or not key.strip():
        raise ValueError("param keys must be non-empty strings")
    return key
