"""``storage.put_histogram`` histograms: exact equal-width edges, re-binned to what a backend holds.

Detectron2 records ``torch.linspace`` float32 edges, equal-width only to float32 precision, and
1000 bins by default. The reader rebuilds exact edges from min, max and the bin count, and merges
adjacent bins by an integer factor where the backend refuses that many (Aim: 512); the Aim and
MLflow round trips are in test_e2e_backends.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import d2_helpers
import pytest
import torch
from detectron2.engine import HookBase, SimpleTrainer
from detectron2.utils.events import EventStorage

import track_core as track
from track_detectron2 import TrackHook
from track_detectron2.storage import fit_to_backend, histogram_to_distribution, merge_bins

TENSORS = {
    "shifted": lambda: torch.randn(5000, generator=torch.Generator().manual_seed(0)) * 3 + 100,
    "normal": lambda: torch.randn(5000, generator=torch.Generator().manual_seed(1)),
    "tiny": lambda: torch.rand(300, generator=torch.Generator().manual_seed(2)) * 1e-3,
}


def _record(tensor: torch.Tensor, bins: int = 1000) -> dict[str, Any]:
    with EventStorage() as storage:
        storage.put_histogram("h", tensor, bins=bins)
        return dict(storage._histograms[0])


@pytest.mark.parametrize("name", sorted(TENSORS))
def test_exact_edges_from_min_max_and_bins(name: str) -> None:
    tensor = TENSORS[name]()
    params = _record(tensor)
    # the premise: Detectron2's float32 edges fail a 1e-6 relative uniformity check
    given = track.Distribution(
        bin_edges=[params["min"], *params["bucket_limits"]], counts=params["bucket_counts"]
    )
    assert not given.is_uniform
    value = histogram_to_distribution(params)
    assert value.is_uniform
    assert len(value.counts) == 1000
    assert value.range == (float(tensor.min()), float(tensor.max()))
    assert list(value.counts) == torch.histc(tensor, bins=1000).tolist()
    width = (value.range[1] - value.range[0]) / 1000
    for edge, limit in zip(value.bin_edges[1:], params["bucket_limits"], strict=True):
        assert abs(edge - limit) < 1e-2 * width + 1e-6 * abs(limit)


def test_merged_bins_keep_counts_exact() -> None:
    tensor = TENSORS["normal"]()
    value = histogram_to_distribution(_record(tensor))
    halves = merge_bins(value, 2)
    assert len(halves.counts) == 500 and halves.is_uniform
    assert halves.range == value.range
    assert list(halves.counts) == [value.counts[i] + value.counts[i + 1] for i in range(0, 1000, 2)]
    # the same as binning the samples into 500 bins over the same range, up to samples that
    # fall on an edge
    direct = torch.histc(tensor, bins=500, min=value.range[0], max=value.range[1]).tolist()
    assert sum(abs(a - b) for a, b in zip(halves.counts, direct, strict=True)) <= 4
    # a factor that does not divide the bin count: empty bins past the maximum
    thirds = merge_bins(value, 3)
    assert len(thirds.counts) == 334 and thirds.is_uniform
    assert thirds.range[0] == value.range[0] and thirds.range[1] > value.range[1]
    assert sum(thirds.counts) == sum(value.counts) == 5000
    assert thirds.counts[-1] == value.counts[-1]  # the last real bin alone, then two empty ones
    assert merge_bins(value, 1) is value


class _AtMost:
    """A real memory backend that refuses distributions of more than ``limit`` bins, as Aim
    refuses more than 512 (the Aim one is used in test_e2e_backends.py)."""

    def __init__(self, limit: int) -> None:
        self._inner = track.get_backend("memory:limits")
        self.limit = limit
        self.checked: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def check_value(self, value: Any) -> None:
        self.checked.append(len(value.counts))
        if len(value.counts) > self.limit:
            raise ValueError(f"at most {self.limit} bins")


@pytest.mark.parametrize(("limit", "factor"), [(1000, 1), (512, 2), (400, 3), (100, 10), (7, 143)])
def test_fit_to_backend_smallest_factor(limit: int, factor: int) -> None:
    value = histogram_to_distribution(_record(TENSORS["normal"]()))
    backend = _AtMost(limit)
    fitted, used = fit_to_backend(backend, value)
    assert used == factor
    assert len(fitted.counts) <= limit and fitted.is_uniform
    if factor > 1:  # the smallest factor: one less gives too many bins
        assert len(merge_bins(value, factor - 1).counts) > limit
    assert sum(fitted.counts) == 5000


class PutHistograms(HookBase):  # type: ignore[misc]
    def __init__(self) -> None:
        self.tensors: dict[int, torch.Tensor] = {}

    def after_step(self) -> None:
        weights = self.trainer.model.body[0].weight.detach().flatten().clone()
        self.tensors[self.trainer.iter] = weights
        self.trainer.storage.put_histogram("weights/body0", weights)  # bins=1000


def test_training_histograms_exact_to_a_backend_that_limits_bins(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    put = PutHistograms()
    backend = _AtMost(512)
    hook = TrackHook(backend=backend, output_dir=str(tmp_path), write_period=3)
    trainer.register_hooks([put, hook])
    trainer.train(0, 5)
    run = track.open_run(hook.run.id, backend._inner)
    points = run.sequence("weights/body0", {"subset": "train"}).points()
    assert [p.step for p in points] == list(range(5))
    for point in points:
        tensor = put.tensors[point.step]
        full = torch.histc(tensor, bins=1000).tolist()
        assert list(point.value.counts) == [full[i] + full[i + 1] for i in range(0, 1000, 2)]
        assert point.value.range == (float(tensor.min()), float(tensor.max()))
    # the factor is found once per bin count, then reused
    assert backend.checked.count(1000) == 1
