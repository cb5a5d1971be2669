"""Contexts: immutable, hashable, equal to the dicts they were made from."""

from __future__ import annotations

import pickle

import pytest

from track_core import EMPTY_CONTEXT, Context


def test_a_context_equals_its_dict_and_hashes_the_same_whatever_the_order() -> None:
    a = Context({"subset": "train", "fold": 1})
    b = Context.of({"fold": 1, "subset": "train"})
    assert a == b and hash(a) == hash(b)
    assert a == {"subset": "train", "fold": 1}
    assert a != {"subset": "val", "fold": 1}
    assert len({a, b}) == 1
    assert dict(a) == {"fold": 1, "subset": "train"}


def test_empty_and_none_are_the_same_context() -> None:
    assert Context.of(None) is EMPTY_CONTEXT
    assert Context() == {} and len(EMPTY_CONTEXT) == 0


def test_values_of_different_types_are_different_contexts() -> None:
    assert Context(a=1) != Context(a=True)
    assert Context(a=1) != Context(a=1.0)
    assert Context.of({"a": 1}) is not Context.of({"a": True})


def test_contexts_are_immutable_and_pickle() -> None:
    context = Context(subset="val")
    with pytest.raises(AttributeError):
        context.x = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        context["subset"] = "train"  # type: ignore[index]
    assert pickle.loads(pickle.dumps(context)) == context


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({1: "a"}, TypeError, "keys must be str"),
        ({"": "a"}, ValueError, "non-empty"),
        ({"a": [1]}, TypeError, "for 'a' must be"),
        ({"a": {"b": 1}}, TypeError, "for 'a' must be"),
        ({"a": float("inf")}, ValueError, "finite"),
        ("train", TypeError, "must be a dict"),
        ([("a", 1)], TypeError, "must be a dict"),
    ],
)
def test_bad_contexts_are_refused(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Context.of(value)  # type: ignore[arg-type]
