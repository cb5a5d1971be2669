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

    __slots__ = ("_data", "_hash", "_key", "_numeric")

    _data: dict[str, ContextValue]
    _key: tuple[tuple[str, str, ContextValue], ...]
    _hash: int
    _numeric: bool

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
        numeric = any(isinstance(v, (int, float)) for v in ordered.values())
        object.__setattr__(self, "_numeric", numeric)

    @classmethod
    def of(cls, value: ContextLike) -> Context:
        """Return ``value`` as a Context (``None`` is the empty context). Cached for dicts."""
        if value is None:
            return EMPTY_CONTEXT
        if type(value) is Context:
            return value
        if type(value) is dict:  # the common case, before the slower ABC check below
            try:
                return _CONTEXT_BY_TEXT_ITEMS[tuple(value.items())]
            except (KeyError, TypeError):
                pass
        if not isinstance(value, Mapping):
            raise TypeError(
                f"a context must be a dict of str to JSON scalars (or None), got {type(value).__name__}"
            )
        try:
            items = tuple(value.items())
            cached = _CONTEXT_BY_TEXT_ITEMS.get(items)
            if cached is not None:
                return cached  # string and None values: equal items, same context
            typed_key = (items, tuple(map(type, value.values())))
            cached = _BY_TYPED.get(typed_key)
        except TypeError:  # an unhashable value: let validation explain it
            return cls(value)
        if cached is not None:
            return cached
        # 1, 1.0 and True are equal in Python but are different contexts: numbers go by type too
        context = cls(value)
        if len(_BY_TYPED) >= _CACHE_LIMIT:
            _CONTEXT_BY_TEXT_ITEMS.clear()
            _BY_TYPED.clear()
        _BY_TYPED[typed_key] = context
        if not context._numeric:
            _CONTEXT_BY_TEXT_ITEMS[items] = context
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
#: Contexts whose values are all str or None, by the items of a dict given for them (for
#: these, equal items are the same context; numbers also go by type: 1, 1.0 and True differ).
_CONTEXT_BY_TEXT_ITEMS: dict[tuple[tuple[str, ContextValue], ...], Context] = {}
_BY_TYPED: dict[tuple[tuple[tuple[str, ContextValue], ...], tuple[type, ...]], Context] = {}
