"""Checks for the names users give: sequence names, run names, tags."""

from __future__ import annotations

from collections.abc import Iterable

_CONTROL = frozenset(chr(code) for code in range(32)) | {"\x7f"}


def check_sequence_name(name: object) -> str:
    """A sequence name: a non-empty str without control characters."""
    if not isinstance(name, str):
        raise TypeError(f"a sequence name must be a str, got {type(name).__name__}: {name!r}")
    if not name.strip():
        raise ValueError("a sequence name must be a non-empty string")
    if not _CONTROL.isdisjoint(name):
        raise ValueError(f"a sequence name must not contain control characters: {name!r}")
    return name


def check_label(value: object, what: str) -> str:
    """A run name, experiment or tag: a non-empty str without control characters."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r}")
    if not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if not _CONTROL.isdisjoint(value):
        raise ValueError(f"{what} must not contain control characters: {value!r}")
    return value


def check_tags(tags: Iterable[str] | str) -> frozenset[str]:
    if isinstance(tags, str):
        tags = [tags]
    return frozenset(check_label(tag, "a tag") for tag in tags)


def check_description(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a description must be a str, got {type(value).__name__}")
    return value
