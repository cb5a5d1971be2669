"""Values between track_core and Aim's own objects (aim.Image, aim.Text, aim.Distribution)."""

from __future__ import annotations

import math
from typing import Any, Final

import aim
import numpy as np
from aim.storage.object import CustomObject
from aim.storage.types import BLOB
from track_core.values import Distribution, Image, Text, Value, ValueKind

#: Aim's limit on the bins of an aim.Distribution.
MAX_BINS: Final = 512

#: Aim's dtype of a stored sequence -> the kind of its values.
KIND_OF_DTYPE: Final[dict[str, ValueKind]] = {
    "float": ValueKind.SCALAR,
    "int": ValueKind.SCALAR,
    "aim.image": ValueKind.IMAGE,
    "aim.text": ValueKind.TEXT,
    "aim.distribution": ValueKind.DISTRIBUTION,
}

#: The Aim sequence type (for Run._get_sequence) of each kind.
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
    cls = type(value)
    if cls is int or cls is float:
        return value
    if cls is Image:
        return _aim_image(value)  # type: ignore[arg-type]
    if cls is Text:
        return aim.Text(value.text)  # type: ignore[union-attr]
    if cls is Distribution:
        low, high = value.range  # type: ignore[union-attr]
        counts = np.asarray(value.counts, dtype=np.float64)  # type: ignore[union-attr]
        return aim.Distribution(hist=counts, bin_range=(low, high))
    raise TypeError(f"the aim backend cannot store a {cls.__name__}")


def _aim_image(value: Image) -> aim.Image:
    # The PNG is stored as it is: aim.Image(PIL image) would decode and encode it again.
    image = aim.Image.__new__(aim.Image)
    CustomObject.__init__(image)
    image.storage["data"] = BLOB(data=value.png)
    image.storage["source"] = "PIL.Image"
    image.storage["mode"] = value.mode
    image.storage["format"] = "png"
    image.storage["width"] = value.width
    image.storage["height"] = value.height
    image.storage["caption"] = value.caption
    return image


def from_aim(stored: Any, kind: ValueKind, dtype: str) -> Value:
    """A stored Aim value as a track_core value."""
    if kind is ValueKind.SCALAR:
        number = stored.item() if isinstance(stored, np.generic) else stored
        if dtype == "int" and isinstance(number, float) and number.is_integer():
            return int(number)
        return float(number) if dtype != "int" else number  # type: ignore[no-any-return]
    if kind is ValueKind.IMAGE:
        data = stored.storage["data"]
        png = bytes(data.load() if hasattr(data, "load") else data)
        return Image.from_png(png, caption=stored.caption or None)
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
