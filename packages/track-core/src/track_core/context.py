"""Context: the small immutable mapping that, with a name, identifies a sequence."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Final, Union

ContextValue = Union[str, int, float, bool, None]
ContextLike = Union["Context", Mapping[str, ContextValue], None]

_CACHE_LIMIT: Final = 4096


def _type_tag(value: ContextValue) -> str:
    # bool is an int and 1 == 1.0 == True in Python; a context keeps them apart.
    return type(value).__name__


class Context(Mapping[str, ContextValue]):
    """An immutable, hashable mapping of string keys to JSON scalars.

    ``Context({"subset": "train"})`` and the plain dict ``{"subset": "train"}`` name the same
    sequence: every API that takes a context accepts either.
    """

    __slots__ = ("_data", "_hash", "_key")

    _data: dict[str, ContextValue]
    _key: tuple[tuple[str, str, ContextValue], ...]
    _hash: int

    def __init__(
        self, items: Mapping[str, ContextValue] | None = None, /, **kwargs: ContextValue
    ) -> None:
        data: dict[str, ContextValue] = {}
        if items is not None:
            if not isinstance(items, Mapping):
                raise TypeError(
                    f"a context must be a mapping of str to JSON scalars, got {type(items).__name__}"
                )
            data.update(items)
        data.update(kwargs)
        for key, value in data.items():
            _check_entry(key, value)
        ordered = dict(sorted(data.items()))
        object.__setattr__(self, "_data", ordered)
        key_tuple = tuple((k, _type_tag(v), v) for k, v in ordered.items())
        object.__setattr__(self, "_key", key_tuple)
        object.__setattr__(self, "_hash", hash(key_tuple))

    @classmethod
    def of(cls, value: ContextLike) -> Context:
        """Return ``value`` as a Context (``None`` is the empty context). Cached for dicts."""
        if value is None:
            return EMPTY_CONTEXT
        if type(value) is Context:
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                f"a context must be a dict of str to JSON scalars (or None), got {type(value).__name__}"
            )
        try:
            cache_key = tuple((k, type(v), v) for k, v in value.items())
            cached = _CONTEXT_CACHE.get(cache_key)
        except TypeError:  # an unhashable value: let validation explain it
            cache_key = None
            cached = None
        if cached is not None:
            return cached
        context = cls(value)
        if cache_key is not None:
            if len(_CONTEXT_CACHE) >= _CACHE_LIMIT:
                _CONTEXT_CACHE.clear()
            _CONTEXT_CACHE[cache_key] = context
        return context

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Context is immutable")

    def __getitem__(self, key: str) -> ContextValue:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if type(other) is Context:
            return self._key == other._key
        if isinstance(other, Mapping):
            try:
                return self._key == Context.of(other)._key
            except (TypeError, ValueError):
                return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __repr__(self) -> str:
        return f"Context({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Context, (dict(self._data),))

    def to_dict(self) -> dict[str, ContextValue]:
        """A plain, sorted dict copy."""
        return dict(self._data)


def _check_entry(key: object, value: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"context keys must be str, got {key!r} ({type(key).__name__})")
    if not key:
        raise ValueError("context keys must be non-empty strings")
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"context value for {key!r} must be finite, got {value!r}")
        return
    raise TypeError(
        f"context value for {key!r} must be a str, int, float, bool or None, "
        f"got {type(value).__name__}: {value!r}"
    )


EMPTY_CONTEXT: Final = Context()
_CONTEXT_CACHE: dict[tuple[tuple[Any, ...], ...], Context] = {}
