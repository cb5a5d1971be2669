"""Values: scalars from every library, images, texts and distributions, and clear errors."""

from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image as PILImage

from track_core import Distribution, Image, Text, ValueKind
from track_core.values import coerce_value, to_scalar


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (2.5, 2.5),
        (True, 1),
        (np.float32(0.5), 0.5),
        (np.int64(2**40), 2**40),
        (np.bool_(True), 1),
        (np.array(1.25), 1.25),
        (Fraction(1, 4), 0.25),
    ],
)
def test_scalars_from_python_and_numpy(value: object, expected: float) -> None:
    result = to_scalar(value)
    assert result == expected
    assert type(result) in (int, float)


def test_a_large_int_stays_an_exact_int() -> None:
    assert to_scalar(np.int64(2**62 + 1)) == 2**62 + 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.0", "Text"),
        (np.zeros(3), r"shape \(3,\)"),
        ([1.0], "cannot track a list"),
        (None, "cannot track a NoneType"),
        (1 + 2j, "cannot track a complex"),
    ],
)
def test_non_scalars_are_refused_with_a_hint(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        to_scalar(value)


def test_torch_scalars_and_tensors() -> None:
    torch = pytest.importorskip("torch")
    assert to_scalar(torch.tensor(0.5)) == 0.5
    assert to_scalar(torch.tensor(7)) == 7
    with pytest.raises(TypeError, match="shape"):
        to_scalar(torch.ones(2))
    image = Image(torch.ones(3, 4, 5) * 0.5)
    assert (image.width, image.height, image.mode) == (5, 4, "RGB")


def test_coerce_value_tells_the_kind() -> None:
    assert coerce_value(np.float64(1.0)) == (1.0, ValueKind.SCALAR)
    assert coerce_value(Text("x"))[1] is ValueKind.TEXT
    assert coerce_value(Distribution([1.0, 2.0]))[1] is ValueKind.DISTRIBUTION


def test_image_from_hwc_chw_gray_float_and_bool_arrays() -> None:
    hwc = np.zeros((4, 6, 3), dtype=np.uint8)
    hwc[1, 2] = (10, 20, 30)
    assert Image(hwc).pixels() == hwc.tobytes()
    chw = Image(hwc.transpose(2, 0, 1))
    assert (chw.width, chw.height) == (6, 4) and chw.pixels() == hwc.tobytes()
    gray = Image(np.full((3, 3), 0.5))
    assert gray.mode == "L" and set(gray.pixels()) == {128}
    mask = Image(np.eye(2, dtype=bool))
    assert list(mask.pixels()) == [255, 0, 0, 255]
    rgba = Image(np.zeros((2, 2, 4), dtype=np.uint8), caption="clear")
    assert rgba.mode == "RGBA" and rgba.caption == "clear"


def test_image_from_pil_and_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    picture = PILImage.new("RGB", (5, 3), (1, 2, 3))
    assert Image(picture).pixels() == picture.tobytes()
    path = tmp_path / "p.jpg"
    picture.save(path)
    from_file = Image(str(path), caption="file")
    assert (from_file.width, from_file.height, from_file.caption) == (5, 3, "file")
    assert PILImage.open(io.BytesIO(from_file.png)).format == "PNG"
    assert Image.from_png(from_file.png).pixels() == from_file.pixels()


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (np.full((2, 2), 1.5), ValueError, r"\[0, 1\]"),
        (np.full((2, 2), np.nan), ValueError, "NaN"),
        (np.zeros((2, 2, 2)), ValueError, "channels"),
        (np.full((2, 2), 300), ValueError, r"\[0, 255\]"),
        ("/no/such/image.png", FileNotFoundError, "not found"),
        (42, TypeError, "cannot make an image from int"),
    ],
)
def test_bad_images_are_refused(data: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Image(data)


def test_text_needs_a_str() -> None:
    assert Text("ok").text == "ok"
    with pytest.raises(TypeError, match="str"):
        Text(3)  # type: ignore[arg-type]


def test_distribution_from_samples_counts_them_all() -> None:
    samples = np.random.default_rng(0).normal(size=1000)
    dist = Distribution(samples, bins=10)
    assert len(dist.counts) == 10 and sum(dist.counts) == 1000
    assert dist.range == (pytest.approx(samples.min()), pytest.approx(samples.max()))
    assert dist.is_uniform
    plain = Distribution([1.0, 2.0, 2.0, 3.0], bins=2)
    assert plain.counts == (1.0, 3.0) and plain.bin_edges == (1.0, 2.0, 3.0)
    single = Distribution([5.0])
    assert sum(single.counts) == 1


def test_distribution_from_edges_and_counts() -> None:
    dist = Distribution(bin_edges=[0, 1, 3], counts=[2, 5])
    assert dist.bin_edges == (0.0, 1.0, 3.0) and dist.counts == (2.0, 5.0)
    assert not dist.is_uniform


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bin_edges": [0, 1], "counts": [1, 2]}, "len"),
        ({"bin_edges": [0, 2, 1], "counts": [1, 2]}, "increasing"),
        ({"bin_edges": [0, 1], "counts": [-1]}, "negative"),
        ({"bin_edges": [0, math.inf], "counts": [1]}, "finite"),
        ({"samples": [1.0, float("nan")]}, "finite"),
        ({"samples": []}, "at least one"),
        ({}, "needs samples"),
    ],
)
def test_bad_distributions_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        Distribution(**kwargs)  # type: ignore[arg-type]
