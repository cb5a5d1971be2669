"""TensorBoard tags to track names and contexts.

The default rule (``split_tag``) reads a subset word (train, val, test, ...) at the start or the
end of a tag as the context ``{"subset": ...}``: ``train/loss`` and ``loss/train`` are both the
name ``loss`` in ``{"subset": "train"}``, so Aim draws every subset of a metric on one chart.
See the README's table. A rule is any ``(tag) -> (name, context dict)`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

NameRule = Callable[[str], tuple[str, Mapping[str, Any]]]
#: What ``names=`` takes: a rule, ``True`` (the default rule) or ``False`` / ``None`` (tags as
#: they are, with no context).
NamesOption = Union[NameRule, bool, None]

#: Subset words (any case) and the subset they mean.
SUBSETS: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "eval": "val",
    "evaluation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}

SUBSET_KEY = "subset"
SERIES_KEY = "series"


def subset_of(word: str) -> str | None:
    """The subset a path part names (``"Validation"`` -> ``"val"``), or None."""
    return SUBSETS.get(word.strip().lower())


def split_tag(tag: str) -> tuple[str, dict[str, Any]]:
    """The default rule: ``(name, context)`` of a TensorBoard tag.

    - ``train/loss``, ``loss/train``, ``Loss/Train`` -> ``("loss", {"subset": "train"})``
    - ``train/loss/total`` -> ``("loss/total", {"subset": "train"})`` (the first or last part only)
    - ``loss``, ``batch/loss``, ``model/train/loss`` -> the tag unchanged, no context

    With a subset the name is lower-cased, so ``Loss/train`` and ``loss/val`` line up; a tag without
    one keeps its case.
    """
    parts = [part for part in tag.split("/") if part]
    if len(parts) >= 2:
        first = subset_of(parts[0])
        if first is not None:
            return "/".join(parts[1:]).lower(), {SUBSET_KEY: first}
        last = subset_of(parts[-1])
        if last is not None:
            return "/".join(parts[:-1]).lower(), {SUBSET_KEY: last}
    return tag, {}


def raw_tag(tag: str) -> tuple[str, dict[str, Any]]:
    """Names switched off: the tag is the name, with no context."""
    return tag, {}


def resolve_rule(names: NamesOption) -> NameRule:
    if names is True:
        return split_tag
    if names is False or names is None:
        return raw_tag
    if callable(names):
        return names
    raise TypeError(
        f"names= takes a function (tag) -> (name, context), True (the default rule) or False "
        f"(tags unchanged), got {type(names).__name__}"
    )


class Namer:
    """A rule with a cache (tags repeat on every step) and the defaults of one writer.

    ``default_subset`` comes from a writer's log dir (``runs/exp/val``) and applies to tags that
    name none themselves.
    """

    __slots__ = ("_cache", "default_subset", "rule")

    def __init__(self, names: NamesOption = True, default_subset: str | None = None) -> None:
        self.rule = resolve_rule(names)
        self.default_subset = default_subset if self.rule is not raw_tag else None
        self._cache: dict[str, tuple[str, dict[str, Any]]] = {}

    def __call__(self, tag: str) -> tuple[str, dict[str, Any]]:
        try:
            return self._cache[tag]
        except (KeyError, TypeError):
            pass
        name, own = self.own(tag)
        context = dict(own)
        if self.default_subset is not None:
            context.setdefault(SUBSET_KEY, self.default_subset)
        result = (name, context)
        if len(self._cache) < 100_000:
            self._cache[tag] = result
        return result

    def own(self, tag: str) -> tuple[str, dict[str, Any]]:
        """What the rule makes of ``tag``, without the writer's default subset."""
        if not isinstance(tag, str):
            raise TypeError(f"a TensorBoard tag must be a str, got {type(tag).__name__}: {tag!r}")
        found = self.rule(tag)
        try:
            name, context = found
        except (TypeError, ValueError):
            raise TypeError(
                f"the names rule must return (name, context), got {found!r} for tag {tag!r}"
            ) from None
        if not isinstance(name, str):
            raise TypeError(f"the names rule returned a name that is not a str for tag {tag!r}")
        return name, dict(context or {})

    def series(self, main_tag: str, sub_tag: str) -> tuple[str, dict[str, Any]]:
        """``add_scalars(main_tag, {sub_tag: v})``: the name of ``main_tag``, and the sub tag as
        the subset where it is a subset word and the main tag names none (``{"train": ..,
        "val": ..}``), else as ``{"series": sub_tag}``."""
        if self.rule is raw_tag:
            return f"{main_tag}/{sub_tag}", {}
        name, context = self.own(main_tag)
        subset = subset_of(sub_tag)
        if subset is not None and SUBSET_KEY not in context:
            context[SUBSET_KEY] = subset
        else:
            context[SERIES_KEY] = sub_tag
        if self.default_subset is not None:
            context.setdefault(SUBSET_KEY, self.default_subset)
        return name, context
