"""Nested params as MLflow's flat string params.

``{"hparams": {"model": {"lr": 0.1}}}`` is logged as the MLflow param ``hparams.model.lr = 0.1``.
Dict keys are escaped like context keys (see ``track_mlflow.keys``), with ``.`` escaped too
(``:2e``) so ``{"a.b": 1}`` and ``{"a": {"b": 1}}`` stay apart. Lists are one param holding
their JSON; ``None``, bools and numbers are ``str()``-ed as MLflow's own ``log_params`` does.
The exact nested values (and their types) are kept in the artifact ``track/params.json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Final

from track_core.params import Param
from track_mlflow.keys import MAX_KEY_LENGTH, escape_segment

MAX_PARAM_VALUE_LENGTH: Final = 6000
TRUNCATION_NOTE: Final = " ... [cut by track: the full value is in the artifact track/params.json]"


def _param_key_segment(key: str) -> str:
    if not key:
        return ":"
    escaped = escape_segment(key).replace(".", ":2e")
    return escaped


def _shorten(key: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    head = key[: MAX_KEY_LENGTH - 17].rstrip("/")
    return f"{head}:{digest}"


def _value_text(value: Param) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):  # only an empty dict reaches here
        return "{}"
    return str(value)


def _flatten(prefix: str, value: Param) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{_param_key_segment(key)}", item)
    else:
        yield _shorten(prefix), _value_text(value)


def flatten_params(params: Mapping[str, Param]) -> dict[str, str]:
    """The MLflow params (key -> full value text) of top-level params."""
    result: dict[str, str] = {}
    for key, value in params.items():
        result.update(_flatten(_param_key_segment(key), value))
    return result


def fit_value(text: str) -> tuple[str, bool]:
    """The value to store in MLflow (at most 6000 characters) and whether it was cut."""
    if len(text) <= MAX_PARAM_VALUE_LENGTH:
        return text, False
    return text[: MAX_PARAM_VALUE_LENGTH - len(TRUNCATION_NOTE)] + TRUNCATION_NOTE, True
