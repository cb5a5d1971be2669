"""The values a sequence can hold: scalars, images, texts and distributions.

numpy, PIL and torch are imported only when a value of theirs is given.
"""

from __future__ import annotations

import enum
import io
import itertools
import math
import numbers
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union, cast

import attrs

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

Scalar = Union[int, float]


class ValueKind(enum.Enum):
    """What a sequence holds. A sequence holds one kind only."""

    SCALAR = "scalar"
    IMAGE = "image"
    TEXT = "text"
    DISTRIBUTION = "distribution"


def _module_of(value: object) -> str:
    return type(value).__module__ or ""


def to_scalar(value: object) -> Scalar:
    """Convert a Python, numpy or torch scalar (or a 0-d array / tensor) to int or float.

    Raises TypeError with what was wrong and what to do instead.
    """
    cls = type(value)
    if cls is float or cls is int:
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return int(value)
    module = _module_of(value)
    if module.startswith(("numpy", "torch", "jax", "tensorflow")):
        shape = getattr(value, "shape", ())
        if tuple(shape) != ():
            raise TypeError(
                f"expected a scalar, got an array of shape {tuple(shape)}; "
                "track one element, or a Distribution of all of them"
            )
        item = value.item()  # type: ignore[attr-defined]
        if isinstance(item, bool):
            return int(item)
        if isinstance(item, (int, float)):
            return item
        raise TypeError(f"expected a real number, got {type(item).__name__} from {cls.__name__}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        raise TypeError("a str is not a scalar: wrap it as track_core.Text(...) to track text")
    raise TypeError(
        f"cannot track a {cls.__name__}: expected a number (int, float, bool, numpy or torch "
        "scalar), track_core.Image, track_core.Text or track_core.Distribution"
    )


def _pil() -> Any:
    try:
        from PIL import Image as pil_image
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("track_core.Image needs Pillow: pip install pillow") from error
    return pil_image


def _array_to_uint8(array: Any) -> Any:
    import numpy as np

    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.transpose(array, (1, 2, 0))  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            f"an image array must be HW, HWC or CHW with 1, 3 or 4 channels, got shape {array.shape}"
        )
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError("a float image contains NaN or infinity")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"a float image must hold values in [0, 1], got [{low}, {high}]; "
                "scale it, or pass uint8"
            )
        return np.round(array * 255.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(f"an integer image must hold values in [0, 255], got [{low}, {high}]")
        return array.astype(np.uint8)
    raise TypeError(f"unsupported image dtype {array.dtype}")


def _to_pil(data: object) -> PILImage:
    pil_image = _pil()
    if isinstance(data, pil_image.Image):
        return data  # type: ignore[no-any-return]
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file not found: {path}")
        with pil_image.open(path) as opened:
            opened.load()
            return opened.copy()  # type: ignore[no-any-return]
    module = _module_of(data)
    if module.startswith("torch"):
        data = data.detach().cpu().numpy()  # type: ignore[attr-defined]
        module = "numpy"
    if module.startswith("numpy"):
        return pil_image.fromarray(_array_to_uint8(data))  # type: ignore[no-any-return]
    raise TypeError(
        f"cannot make an image from {type(data).__name__}: give a numpy array (HW, HWC or CHW; "
        "uint8, or float in [0, 1]), a PIL image, a torch tensor or a file path"
    )


@attrs.frozen(init=False)
class Image:
    """An image, kept as PNG bytes with its size and an optional caption."""

    png: bytes
    width: int
    height: int
    mode: str
    caption: str

    def __init__(self, data: object, caption: str | None = None) -> None:
        if caption is not None and not isinstance(caption, str):
            raise TypeError(f"caption must be a str, got {type(caption).__name__}")
        picture = _to_pil(data)
        if picture.mode not in ("L", "RGB", "RGBA"):
            picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        self.__attrs_init__(
            buffer.getvalue(), picture.width, picture.height, picture.mode, caption or ""
        )

    @classmethod
    def from_png(cls, png: bytes, caption: str | None = None) -> Image:
        """An Image from PNG (or any format Pillow reads) bytes, as backends read them back."""
        return cls(_pil().open(io.BytesIO(png)), caption=caption)

    def to_pil(self) -> PILImage:
        picture = _pil().open(io.BytesIO(self.png))
        picture.load()
        return cast("PILImage", picture)

    def pixels(self) -> bytes:
        """The decoded pixel bytes: equal images have equal pixels, whatever encoder wrote them."""
        return bytes(self.to_pil().tobytes())


def _check_text(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Text needs a str, got {type(value).__name__}")


@attrs.frozen
class Text:
    """A piece of text (markup is fine: displaCy renderings are tracked as Text)."""

    text: str = attrs.field(validator=_check_text)


def _floats(values: Iterable[object], what: str) -> tuple[float, ...]:
    if _module_of(values).startswith(("numpy", "torch")):
        values = values.tolist()  # type: ignore[attr-defined]
    result = []
    for item in values:
        number = float(to_scalar(item))
        if not math.isfinite(number):
            raise ValueError(f"a Distribution's {what} must be finite, got {number}")
        result.append(number)
    return tuple(result)


def _histogram(
    samples: tuple[float, ...], bins: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if not samples:
        raise ValueError("a Distribution needs at least one sample")
    low, high = min(samples), max(samples)
    if low == high:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    counts = [0.0] * bins
    for sample in samples:
        index = min(int((sample - low) / width), bins - 1)
        counts[index] += 1.0
    edges = (*(low + width * i for i in range(bins)), high)
    return edges, tuple(counts)


def _numpy_histogram(samples: Any, bins: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    import numpy as np

    array = np.asarray(samples, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("a Distribution needs at least one sample")
    if not np.all(np.isfinite(array)):
        raise ValueError("a Distribution's samples must be finite (found NaN or infinity)")
    low, high = float(array.min()), float(array.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    heights, edges = np.histogram(array, bins=bins, range=(low, high))
    return tuple(float(e) for e in edges), tuple(float(c) for c in heights)


@attrs.frozen(init=False)
class Distribution:
    """A histogram: ``len(bin_edges) == len(counts) + 1``, edges increasing.

    ``Distribution(samples, bins=64)`` computes it from samples (a list, numpy array or tensor);
    ``Distribution(bin_edges=..., counts=...)`` takes a precomputed one (Detectron2's histograms).
    """

    bin_edges: tuple[float, ...]
    counts: tuple[float, ...]

    def __init__(
        self,
        samples: Iterable[object] | None = None,
        *,
        bin_edges: Iterable[object] | None = None,
        counts: Iterable[object] | None = None,
        bins: int = 64,
    ) -> None:
        if samples is not None:
            if bin_edges is not None or counts is not None:
                raise TypeError("give either samples or bin_edges and counts, not both")
            if not isinstance(bins, int) or bins < 1:
                raise ValueError(f"bins must be a positive int, got {bins!r}")
            if _module_of(samples).startswith("torch"):
                samples = samples.detach().cpu().numpy()  # type: ignore[attr-defined]
            if _module_of(samples).startswith("numpy"):
                edges, heights = _numpy_histogram(samples, bins)
            else:
                edges, heights = _histogram(_floats(samples, "samples"), bins)
        else:
            if bin_edges is None or counts is None:
                raise TypeError("a Distribution needs samples, or both bin_edges and counts")
            edges, heights = _floats(bin_edges, "bin_edges"), _floats(counts, "counts")
            if len(edges) != len(heights) + 1:
                raise ValueError(
                    f"a Distribution needs len(bin_edges) == len(counts) + 1, "
                    f"got {len(edges)} edges and {len(heights)} counts"
                )
            if not heights:
                raise ValueError("a Distribution needs at least one bin")
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError("a Distribution's bin_edges must be strictly increasing")
            if any(c < 0 for c in heights):
                raise ValueError("a Distribution's counts must not be negative")
        self.__attrs_init__(edges, heights)

    @property
    def range(self) -> tuple[float, float]:
        return self.bin_edges[0], self.bin_edges[-1]

    @property
    def is_uniform(self) -> bool:
        """True when all bins have the same width (what Aim can store exactly)."""
        low, high = self.range
        width = (high - low) / len(self.counts)
        return all(
            math.isclose(b - a, width, rel_tol=1e-6, abs_tol=1e-12)
            for a, b in itertools.pairwise(self.bin_edges)
        )


Value = Union[Scalar, Image, Text, Distribution]

KIND_OF_TYPE: dict[type, ValueKind] = {
    Image: ValueKind.IMAGE,
    Text: ValueKind.TEXT,
    Distribution: ValueKind.DISTRIBUTION,
}


def coerce_value(value: object) -> tuple[Value, ValueKind]:
    """Return the value in its stored form and its kind, or raise TypeError."""
    kind = KIND_OF_TYPE.get(type(value))
    if kind is not None:
        return value, kind  # type: ignore[return-value]
    return to_scalar(value), ValueKind.SCALAR


@attrs.frozen
class Point:
    """One value of a sequence, as read back."""

    step: int
    epoch: int | None
    timestamp: float
    value: Value
