"""Smoothed scalars equal metrics.json at every iteration, by the installed Detectron2's own rule.

The hook computes a smoothed value with ``latest_with_smoothing_hint`` of the storage's own class
(the installed Detectron2's rule: v0.6 takes the median of the last 20 values, later versions the
median of the values put in the last 20 iterations). These tests write metrics.json at every
iteration (``JSONWriter`` with ``PeriodicWriter(period=1)``) and compare it with the run, value for
value, in the cases where the two rules differ: scalars not put every iteration and scalars put
several times in one iteration.
"""

from __future__ import annotations

import inspect
import json
import statistics
from pathlib import Path
from typing import Any

import d2_helpers
import pytest
import torch
from detectron2.engine import HookBase, SimpleTrainer, hooks
from detectron2.utils.events import EventStorage, JSONWriter

import track_core as track
from track_detectron2 import TrackHook
from track_detectron2.names import TRAIN_CONTEXT, NameMapper
from track_detectron2.storage import StorageReader


def _metrics_json(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _compare(run: Any, lines: list[dict[str, Any]]) -> int:
    """Every value of every metrics.json line is the run's value at that iteration."""
    checked = 0
    for line in lines:
        record = dict(line)
        iteration = record.pop("iteration")
        for key, value in record.items():
            points = {p.step: p.value for p in run.sequence(key, TRAIN_CONTEXT).points()}
            assert iteration in points, (key, iteration)
            assert points[iteration] == pytest.approx(value, rel=1e-12, abs=1e-300), (
                key,
                iteration,
                points[iteration],
                value,
            )
            checked += 1
    return checked


class PutIrregular(HookBase):  # type: ignore[misc]
    """Scalars the way evaluation-like or sparse code puts them: ``sparse`` every 3rd iteration,
    ``twice`` two values in each even iteration, ``raw`` without smoothing."""

    def after_step(self) -> None:
        storage = self.trainer.storage
        i = self.trainer.iter
        if i % 3 == 0:
            storage.put_scalar("sparse", float(i * i % 17))
        if i % 2 == 0:
            storage.put_scalar("twice", float(i % 5))
            storage.put_scalar("twice", float(-i))
        storage.put_scalar("raw", float(i % 7), smoothing_hint=False)


def test_every_iteration_of_metrics_json_irregular_scalars(
    tmp_path: Path, recording_backend: Any
) -> None:
    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model, d2_helpers.synthetic_batches(), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    hook = TrackHook(
        backend=recording_backend,
        output_dir=str(tmp_path),
        write_period=7,
        log_images=False,
        log_histograms=False,
    )
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            PutIrregular(),
            hooks.PeriodicWriter([JSONWriter(str(tmp_path / "metrics.json"))], period=1),
            hook,
        ]
    )
    trainer.train(0, 60)
    lines = _metrics_json(tmp_path / "metrics.json")
    run = track.open_run(hook.run.id, recording_backend)
    assert _compare(run, lines) > 60 * 6
    # the irregular names are where the rules of Detectron2 versions differ: they are compared
    sparse = [line for line in lines if "sparse" in line]
    twice = [line for line in lines if "twice" in line]
    assert len(sparse) == 20 and len(twice) == 30
    # and the run holds one point per iteration a value was put at, no more
    assert [p.step for p in run.sequence("sparse", TRAIN_CONTEXT).points()] == list(range(0, 60, 3))
    assert [p.step for p in run.sequence("twice", TRAIN_CONTEXT).points()] == list(range(0, 60, 2))
    raw = run.sequence("raw", TRAIN_CONTEXT).points()
    assert [p.value for p in raw] == [float(i % 7) for i in range(60)]
    assert max(recording_backend.counts.values()) == 1


class MeanOfLastIterations(EventStorage):  # type: ignore[misc]
    """A storage with a smoothing rule of its own (the mean of the values put in the last
    ``window_size`` iterations), to show that the hook follows the storage's rule, not a copy
    of one Detectron2 version's."""

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict[str, tuple[float, int]]:
        result = {}
        for name, (value, iteration) in self.latest().items():
            if self.smoothing_hints()[name]:
                recent = [v for v, i in self.history(name).values() if i > iteration - window_size]
                value = statistics.fmean(recent)
            result[name] = (value, iteration)
        return result


def _put_irregular(storage: Any, i: int) -> bool:
    """Put iteration ``i``'s values of ``loss``; whether there were any."""
    storage.iter = i
    put = False
    if i % 3 != 1:
        storage.put_scalar("loss", float(i % 5))
        put = True
    if i % 4 == 0:
        storage.put_scalar("loss", 10.0 + i)  # a second value in the same iteration
        put = True
    return put


def test_follows_the_storage_s_own_smoothing_rule(tmp_path: Path, recording_backend: Any) -> None:
    path = tmp_path / "metrics.json"
    writer = JSONWriter(str(path), window_size=4)
    reader = StorageReader(NameMapper.create(()), window_size=4)
    with track.start_run(recording_backend) as run, MeanOfLastIterations() as storage:
        for i in range(30):
            _put_irregular(storage, i)
            writer.write()
            if i % 7 == 6:
                reader.write_scalars(run, storage)
        reader.write_scalars(run, storage)
        run_id = run.id
    writer.close()
    lines = _metrics_json(path)
    stored = track.open_run(run_id, recording_backend)
    assert _compare(stored, lines) == len(lines) == 23
    # and that rule is not what Detectron2's would give: the comparison above can fail
    values = {p.step: p.value for p in stored.sequence("loss", TRAIN_CONTEXT).points()}
    differ = 0
    with EventStorage() as plain:
        for i in range(30):
            if _put_irregular(plain, i):
                differ += plain.latest_with_smoothing_hint(4)["loss"][0] != values[i]
    assert differ > 10


def _has_gather_metric_period() -> bool:
    return "gather_metric_period" in inspect.signature(SimpleTrainer.__init__).parameters


@pytest.mark.skipif(
    not _has_gather_metric_period(),
    reason="SimpleTrainer(gather_metric_period=...) is newer than the installed Detectron2",
)
def test_gather_metric_period_matches_metrics_json(tmp_path: Path, recording_backend: Any) -> None:
    """Newer Detectron2 puts the losses every ``gather_metric_period`` iterations and smooths
    over the values of the last 20 *iterations*: the run follows it, at every iteration."""
    torch.manual_seed(0)
    model = d2_helpers.SmallModel()
    trainer = SimpleTrainer(
        model,
        d2_helpers.synthetic_batches(),
        torch.optim.SGD(model.parameters(), lr=0.01),
        gather_metric_period=5,
    )
    hook = TrackHook(
        backend=recording_backend,
        output_dir=str(tmp_path),
        write_period=7,
        log_images=False,
        log_histograms=False,
    )
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.PeriodicWriter([JSONWriter(str(tmp_path / "metrics.json"))], period=1),
            hook,
        ]
    )
    trainer.train(0, 100)
    lines = _metrics_json(tmp_path / "metrics.json")
    run = track.open_run(hook.run.id, recording_backend)
    assert _compare(run, lines) > 100
    losses = run.sequence("total_loss", TRAIN_CONTEXT).points()
    assert [p.step for p in losses] == list(range(4, 100, 5))


def test_the_rule_is_found_by_asking_the_installed_storage() -> None:
    """The reader asks a scratch storage of the storage's class which window it takes: the last
    values (v0.6) or the values of the last iterations (``count_samples``, later versions); a
    class that matches neither is smoothed by its own ``latest_with_smoothing_hint`` per value
    (``test_follows_the_storage_s_own_smoothing_rule``)."""
    from track_detectron2.storage import LAST_ITERATIONS, LAST_VALUES, _probe_rule

    expected = LAST_ITERATIONS if hasattr(EventStorage, "count_samples") else LAST_VALUES
    assert _probe_rule(lambda _: EventStorage(), None) == expected
    assert _probe_rule(lambda _: MeanOfLastIterations(), None) is None
