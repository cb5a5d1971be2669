"""Values between track_core and Aim's own objects (aim.Image, aim.Text, aim.Distribution)."""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
from aim.sdk.objects.distribution import Distribution as AimDistribution
from aim.sdk.objects.text import Text as AimText

from track_aim import _aim_private as private
from track_core.values import Distribution, Image, Text, Value, ValueKind

#: Aim's limit on the bins of an aim.Distribution.
MAX_BINS: Final = 512

#: Aim's dtype of a stored sequence -> the kind of its values.
KIND_OF_DTYPE: Final[dict[str, ValueKind]] = {
    "float": ValueKind.SCALAR,
    "int": ValueKind.SCALAR,
    "number": ValueKind.SCALAR,  # ints and floats in one sequence
    "float64": ValueKind.SCALAR,  # repos written by aim < 3.0.7
    "aim.image": ValueKind.IMAGE,
    "aim.text": ValueKind.TEXT,
    "aim.distribution": ValueKind.DISTRIBUTION,
}

#: The Aim sequence type (``Sequence.registry``) of each kind.
SEQUENCE_TYPE: Final[dict[ValueKind, str]] = {
    ValueKind.SCALAR: "metric",
    ValueKind.IMAGE: "images",
    ValueKind.TEXT: "texts",
    ValueKind.DISTRIBUTION: "distributions",
}


def check_distribution(value: Distribution) -> None:
    if not value.is_uniform:
        raise ValueError(
            "Aim stores a distribution as equal-width bins over a range (aim.Distribution(hist, "
            "bin_range)); this one has bins of different widths. Track Distribution(samples) "
            "or re-bin it to equal widths, or use a backend that keeps any bin edges"
        )
    if len(value.counts) > MAX_BINS:
        raise ValueError(
            f"Aim stores at most {MAX_BINS} bins per distribution, got {len(value.counts)}: "
            f"pass bins=<= {MAX_BINS}"
        )


def to_aim(value: Value) -> Any:
    """The object Aim tracks for ``value`` (scalars are passed as they are)."""
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        # Aim stores integers in 64 bits: a bigger one is stored as the nearest float.
        return value if -(2**63) <= value < 2**63 else float(value)
    if isinstance(value, Image):
        return _aim_image(value)
    if isinstance(value, Text):
        make_text: Any = AimText
        return make_text(value.text)
    if isinstance(value, Distribution):
        low, high = value.range
        counts = np.asarray(value.counts, dtype=np.float64)
        make_distribution: Any = AimDistribution
        return make_distribution(hist=counts, bin_range=(low, high))
    raise TypeError(f"the aim backend cannot store a {type(value).__name__}")


def _aim_image(value: Image) -> Any:
    # The PNG is stored as it is: aim.Image(PIL image) would decode and encode it again.
    return private.aim_image(value.png, value.mode, value.width, value.height, value.caption)


def from_aim(stored: Any, kind: ValueKind, dtype: str) -> Value:
    """A stored Aim value as a track_core value."""
    if kind is ValueKind.SCALAR:
        number = float(stored)
        if dtype == "int" and number.is_integer():
            return int(number)  # a sequence of ints only: Aim's numpy view gives float64
        return number
    if kind is ValueKind.IMAGE:
        return Image.from_png(private.image_png(stored), caption=stored.caption or None)
    if kind is ValueKind.TEXT:
        return Text(stored.data)
    if kind is ValueKind.DISTRIBUTION:
        weights, edges = stored.to_np_histogram()
        return Distribution(bin_edges=edges.tolist(), counts=weights.tolist())
    raise TypeError(f"unknown kind {kind}")


def epoch_of(stored: Any) -> int | None:
    if stored is None:
        return None
    number = float(stored)
    if math.isnan(number):
        return None
    return int(number)
