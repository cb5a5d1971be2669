"""TensorBoard's argument types to track values, the way TensorBoard's writers read them.

numpy, Pillow and matplotlib are imported when a value needs them. Every error says what was
given and what TensorBoard takes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from track_core import Distribution, Image, Text


def _module(value: object) -> str:
    return type(value).__module__ or ""


def to_numpy(value: object, what: str) -> Any:
    """A numpy array from a torch tensor, a numpy array, or a (nested) list of numbers."""
    import numpy as np

    module = _module(value)
    if module.startswith("torch"):
        value = value.detach().cpu().numpy()  # type: ignore[attr-defined]
    elif module.startswith(("jax", "tensorflow")) and hasattr(value, "__array__"):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{what} must be a tensor or an array, got {type(value).__name__}")
    try:
        return np.asarray(value)
    except Exception as error:
        raise TypeError(
            f"{what} must be a tensor or an array, got {type(value).__name__}: {error}"
        ) from None


def scalar(value: object, tag: str) -> int | float:
    """A scalar: a number, or a tensor / array of one element (as TensorBoard takes them)."""
    cls = type(value)
    if cls is float or cls is int:
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not _module(value).startswith(("numpy", "torch")):
        return float(value) if not isinstance(value, numbers.Integral) else int(value)
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(size):  # torch: size() is the shape; numel() the count
        numel = getattr(value, "numel", None)
        size = numel() if callable(numel) else None
    if item is not None and size == 1:
        number = item()
        if isinstance(number, bool):
            return int(number)
        if isinstance(number, (int, float)):
            return number
        raise TypeError(
            f"add_scalar({tag!r}): expected a real number, got {type(number).__name__} "
            f"inside a {cls.__name__}"
        )
    if item is not None and size is not None:
        shape = tuple(getattr(value, "shape", ()))
        raise TypeError(
            f"add_scalar({tag!r}): expected a scalar, got a {cls.__name__} of shape {shape}; "
            "log one element, or add_histogram for all of them"
        )
    if isinstance(value, str):
        raise TypeError(
            f"add_scalar({tag!r}): a str is not a scalar ({value[:40]!r}); "
            "use add_text for text, or float(...) for a number in a string"
        )
    raise TypeError(
        f"add_scalar({tag!r}): expected a number (int, float, numpy or torch scalar), "
        f"got {cls.__name__}"
    )


#: ``bins="tensorflow"`` (TensorBoard's default) is a fixed exponential bucketing that leaves most
#: buckets empty; track stores this many uniform buckets over the values' range instead (Aim
#: stores uniform distributions).
TENSORFLOW_BINS = 64


def histogram(values: object, bins: object, max_bins: int | None, tag: str) -> Distribution:
    """``add_histogram(tag, values, bins=...)``: ``bins`` is ``"tensorflow"`` (TensorBoard's
    default), an int, a numpy bin method (``"auto"``, ``"fd"``, ``"sturges"``, ...) or a sequence
    of edges, as numpy's ``histogram`` takes it."""
    import numpy as np

    array = to_numpy(values, f"add_histogram({tag!r}) values")
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise TypeError(f"add_histogram({tag!r}): values must be numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False).ravel()
    if array.size == 0:
        raise ValueError(f"add_histogram({tag!r}): the values are empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"add_histogram({tag!r}): the values contain NaN or infinity")
    low, high = float(array.min()), float(array.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    if bins is None or (isinstance(bins, str) and bins == "tensorflow"):
        heights, edges = np.histogram(array, bins=TENSORFLOW_BINS, range=(low, high))
    elif isinstance(bins, (int, str)) and not isinstance(bins, bool):
        try:
            heights, edges = np.histogram(array, bins=bins, range=(low, high))
        except (ValueError, TypeError) as error:
            raise ValueError(f"add_histogram({tag!r}): bins={bins!r}: {error}") from None
    else:
        try:
            heights, edges = np.histogram(array, bins=np.asarray(bins, dtype=np.float64))
        except (ValueError, TypeError) as error:
            raise ValueError(f"add_histogram({tag!r}): bins={bins!r}: {error}") from None
    if max_bins is not None and len(heights) > max_bins:
        heights, edges = _merge_bins(heights, edges, max_bins)
    return uniform(Distribution(bin_edges=edges, counts=heights))


def _merge_bins(heights: Any, edges: Any, max_bins: int) -> tuple[Any, Any]:
    """At most ``max_bins`` bins, neighbours merged (TensorBoard's ``max_bins``)."""
    import numpy as np

    factor = math.ceil(len(heights) / max_bins)
    pad = (-len(heights)) % factor
    padded = np.concatenate([heights, np.zeros(pad)]) if pad else heights
    merged = padded.reshape(-1, factor).sum(axis=1)
    kept = np.concatenate([edges[::factor], edges[-1:]]) if pad else edges[::factor]
    if len(kept) != len(merged) + 1:
        kept = np.append(kept[: len(merged)], edges[-1])
    return merged, kept


def histogram_raw(
    min: float,
    max: float,
    bucket_limits: Iterable[float],
    bucket_counts: Iterable[float],
    tag: str,
) -> Distribution:
    """A histogram as TensorBoard stores it: ``bucket_limits`` are the buckets' right edges, the
    first bucket starts at ``min``. TensorFlow's open-ended limits (±1.8e308) are cut at ``min`` /
    ``max``; empty buckets at either end are dropped."""
    limits = [float(x) for x in _flat(bucket_limits, f"add_histogram_raw({tag!r}) bucket_limits")]
    counts = [float(x) for x in _flat(bucket_counts, f"add_histogram_raw({tag!r}) bucket_counts")]
    if len(limits) != len(counts):
        raise ValueError(
            f"add_histogram_raw({tag!r}): bucket_limits and bucket_counts must have the same "
            f"length, got {len(limits)} and {len(counts)}"
        )
    if not counts:
        raise ValueError(f"add_histogram_raw({tag!r}): no buckets")
    low, high = float(min), float(max)
    return uniform(_buckets_to_distribution(low, high, limits, counts, tag))


def _buckets_to_distribution(
    low: float, high: float, limits: list[float], counts: list[float], tag: str
) -> Distribution:
    while len(counts) > 1 and counts[-1] == 0:
        counts.pop()
        limits.pop()
    first = 0
    while first < len(counts) - 1 and counts[first] == 0:
        first += 1
    left = limits[first - 1] if first > 0 else low
    limits, counts = limits[first:], counts[first:]
    if not math.isfinite(left) or left > low:
        left = low
    if math.isfinite(high) and (not math.isfinite(limits[-1]) or abs(limits[-1]) > 1e300):
        limits[-1] = high if high > (limits[-2] if len(limits) > 1 else left) else limits[-1]
    edges = [left]
    heights: list[float] = []
    for limit, count in zip(limits, counts, strict=True):
        if not math.isfinite(limit):
            raise ValueError(f"histogram {tag!r}: a bucket limit is not finite ({limit})")
        if limit <= edges[-1]:  # an empty-width bucket: its count joins the previous bucket
            if heights:
                heights[-1] += count
                continue
            limit = edges[-1] + max(1e-12, abs(edges[-1]) * 1e-9)
        edges.append(limit)
        heights.append(count)
    return Distribution(bin_edges=edges, counts=heights)


def _flat(values: Iterable[float], what: str) -> list[Any]:
    module = _module(values)
    if module.startswith(("numpy", "torch")):
        return list(to_numpy(values, what).ravel().tolist())
    try:
        return list(values)
    except TypeError:
        raise TypeError(
            f"{what} must be a sequence of numbers, got {type(values).__name__}"
        ) from None


def stored_histogram(buckets: Any, tag: str) -> Distribution:
    """A histogram read from an event file: rows of ``[left, right, count]`` (TensorBoard's
    histogram plugin format)."""
    rows = [tuple(float(x) for x in row) for row in buckets]
    if not rows:
        raise ValueError(f"histogram {tag!r}: no buckets")
    low = min(row[0] for row in rows)
    high = max(row[1] for row in rows)
    if len(rows) == 1 and rows[0][0] == rows[0][1]:
        return Distribution(bin_edges=(low - 0.5, high + 0.5), counts=(rows[0][2],))
    return uniform(
        _buckets_to_distribution(low, high, [r[1] for r in rows], [r[2] for r in rows], tag)
    )


# -- images ---------------------------------------------------------------------------------------
def _to_hwc(array: Any, dataformats: str, tag: str, method: str) -> Any:
    """An HWC (or HW) array from ``array`` laid out as ``dataformats`` (any order of N, C, H, W;
    with N the images are tiled into one, 8 per row, as TensorBoard's ``add_images`` shows them)."""
    import numpy as np

    layout = str(dataformats).upper()
    if (
        len(set(layout)) != len(layout)
        or not set(layout) <= set("NCHW")
        or not {"H", "W"} <= set(layout)
    ):
        raise ValueError(
            f"{method}({tag!r}): dataformats must be an order of H and W with optional N and C "
            f"(CHW, HWC, HW, NCHW, NHWC, ...), got {dataformats!r}"
        )
    if array.ndim != len(layout):
        raise ValueError(
            f"{method}({tag!r}): dataformats={dataformats!r} needs a {len(layout)}-d tensor, got "
            f"shape {tuple(array.shape)}"
        )
    axes = layout
    if "N" not in axes:
        array, axes = array[np.newaxis], "N" + axes
    if "C" not in axes:
        array, axes = array[..., np.newaxis], axes + "C"
    array = np.transpose(array, [axes.index(axis) for axis in "NCHW"])
    channels = array.shape[1]
    if channels not in (1, 3, 4):
        raise ValueError(
            f"{method}({tag!r}): an image needs 1, 3 or 4 channels, got {channels} "
            f"(shape {tuple(array.shape)} as {dataformats})"
        )
    count, _, height, width = array.shape
    if count == 0 or height == 0 or width == 0:
        raise ValueError(f"{method}({tag!r}): an empty image (shape {tuple(array.shape)})")
    columns = min(count, 8)
    rows = math.ceil(count / columns)
    canvas = np.zeros((channels, height * rows, width * columns), dtype=array.dtype)
    for index in range(count):
        y, x = divmod(index, columns)
        canvas[:, y * height : (y + 1) * height, x * width : (x + 1) * width] = array[index]
    picture = np.transpose(canvas, (1, 2, 0))
    return picture[..., 0] if channels == 1 else picture


def _to_uint8(array: Any, tag: str, method: str) -> Any:
    """TensorBoard's scaling: uint8 as it is; floats (expected in [0, 1]) times 255, clipped."""
    import numpy as np

    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{method}({tag!r}): the image contains NaN or infinity")
        return np.clip(array * 255.0, 0, 255).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    raise TypeError(f"{method}({tag!r}): unsupported image dtype {array.dtype}")


def image(
    img_tensor: object, dataformats: str, tag: str, method: str = "add_image", caption: str = ""
) -> Image:
    array = to_numpy(img_tensor, f"{method}({tag!r}) img_tensor")
    picture = _to_uint8(_to_hwc(array, dataformats, tag, method), tag, method)
    return Image(picture, caption=caption or None)


def figure_image(figure: Any, tag: str, close: bool) -> Image:
    """A matplotlib figure (or a list of them, tiled) rendered as an RGBA image."""
    import numpy as np

    figures = list(figure) if isinstance(figure, (list, tuple)) else [figure]
    if not figures:
        raise ValueError(f"add_figure({tag!r}): an empty list of figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    arrays = []
    for item in figures:
        if not hasattr(item, "savefig") or not hasattr(item, "canvas"):
            raise TypeError(
                f"add_figure({tag!r}): expected a matplotlib Figure, got {type(item).__name__}"
            )
        canvas: Any = FigureCanvasAgg(item)  # as TensorBoard renders it (a closed figure too)
        canvas.draw()
        arrays.append(np.asarray(canvas.buffer_rgba()).copy())
        if close:
            import matplotlib.pyplot as plt

            plt.close(item)
    if len(arrays) == 1:
        return Image(arrays[0])
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"add_figure({tag!r}): the figures of a list must have one size")
    return Image(_to_hwc(np.stack(arrays), "NHWC", tag, "add_figure"))


def text(value: object, tag: str) -> Text:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise TypeError(f"add_text({tag!r}): text_string must be a str, got {type(value).__name__}")
    return Text(value)


def hparam_value(value: object) -> Any:
    """An hparam as plain data (TensorBoard takes int, float, str, bool and tensors of one)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return scalar(value, "hparam")
    except TypeError:
        return str(value)


def hparams(hparam_dict: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(hparam_dict, Mapping):
        raise TypeError(
            f"add_hparams: hparam_dict must be a dict, got {type(hparam_dict).__name__}"
        )
    return {str(key): hparam_value(value) for key, value in hparam_dict.items()}


def uniform(distribution: Distribution, bins: int = TENSORFLOW_BINS) -> Distribution:
    """``distribution`` with equal-width bins over its range (what Aim stores): unchanged when
    it has them, else re-binned, the count of each bucket spread evenly over its width (the
    total count is kept)."""
    if distribution.is_uniform:
        return distribution
    import numpy as np

    edges = np.asarray(distribution.bin_edges, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(distribution.counts)])
    count = min(bins, len(distribution.counts))
    target = np.linspace(edges[0], edges[-1], count + 1)
    heights = np.diff(np.interp(target, edges, cumulative))
    return Distribution(bin_edges=target, counts=np.clip(heights, 0.0, None))
