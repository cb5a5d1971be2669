"""The training config as params, minus the keys a user leaves out."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def remove_keys(
    config: Mapping[str, Any], patterns: Iterable[str]
) -> tuple[dict[str, Any], set[str]]:
    """A plain nested copy of ``config`` without the keys that match ``patterns``.

    A pattern is a dotted key path (``paths.train``, ``training.logger.api_key``) or a shell-style
    pattern over dotted paths (``paths.*``, ``*.api_key``). A key that matches is left out with
    everything under it. Returns the copy and the patterns that matched nothing.
    """
    wanted = [pattern.strip() for pattern in patterns if pattern and pattern.strip()]
    unused = set(wanted)

    def keep(path: str) -> bool:
        matched = [pattern for pattern in wanted if fnmatch.fnmatchcase(path, pattern)]
        unused.difference_update(matched)
        return not matched

    def walk(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if not keep(path):
                continue
            result[str(key)] = walk(value, path) if isinstance(value, Mapping) else _plain(value)
        return result

    return walk(config, ""), unused
