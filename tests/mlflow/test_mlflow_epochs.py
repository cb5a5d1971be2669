"""Epochs in MLflow: one artifact per run (``track/epochs.json``) instead of one companion metric
per sequence; exact round trips through the backend's reader and the kit's storage reader; runs
written the old way (``<key> :: epoch`` metrics) still read and resumed."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow_storage import MlflowStorageReader

import track_core as track
from track_core.backend import Point
from track_core.context import Context
from track_mlflow import MlflowBackend, create_backend
from track_mlflow._epochs import EpochRanges, EpochWriter, parse_document


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[MlflowBackend]:
    backend = create_backend(str(tmp_path / "store"))
    yield backend
    backend.close()


def _epochs(points: object) -> list[tuple[int, int | None]]:
    return [(p.step, p.epoch) for p in points]  # type: ignore[attr-defined]


def _both_readers(backend: MlflowBackend, run_id: str, name: str, context: Context) -> list[Point]:
    """The points read by the backend's reader, checked against the kit's storage reader."""
    ours = list(backend.read_run(run_id).points(name, context))
    theirs = list(MlflowStorageReader(backend.tracking_uri, run_id).points(name, context))
    assert _epochs(ours) == _epochs(theirs)
    assert [p.value for p in ours] == [p.value for p in theirs]
    return ours


# --- the ranges ----------------------------------------------------------------------------------


def test_ranges_match_a_plain_dict_under_any_order_of_writes() -> None:
    """Property-style: random steps (rewrites, out of order, gaps), epochs and no epochs."""
    rng = random.Random(7)
    for _ in range(300):
        ranges = EpochRanges()
        model: dict[int, int | None] = {}
        for _ in range(rng.randint(1, 60)):
            if model and rng.random() < 0.7:
                step = max(model) + rng.choice([1, 1, 1, 2, 5])  # mostly appending
            else:
                step = rng.randint(0, 40)
            epoch = rng.choice([None, 0, 1, 2, 3]) if rng.random() < 0.3 else step // 10
            ranges.assign(step, epoch)
            model[step] = epoch
            assert {s: ranges.at(s) for s in model} == model
        again = parse_document(EpochWriter({"k": ranges}).document())["k"]
        assert {s: again.at(s) for s in model} == model


def test_a_training_loop_needs_one_pair_per_epoch_and_writes_the_file_once_per_epoch() -> None:
    writer = EpochWriter()
    writes = 0
    for step in range(10_000):
        writer.note("loss", step, step // 1000)
        writer.note("lr", step, None)
        if writer.dirty:
            writes += 1
            writer.dirty = False
    assert writer.ranges["loss"].to_json() == [[1000 * e, e] for e in range(10)]
    assert "lr" not in writer.ranges  # no epochs, no entry
    assert writes == 10


# --- through MLflow ------------------------------------------------------------------------------


def test_one_metric_key_per_sequence_and_exact_epochs(backend: MlflowBackend) -> None:
    train, val = Context(subset="train"), Context(subset="val")
    with track.start_run(backend, experiment="epochs") as run:
        for step in range(30):
            run.track(1.0 / (step + 1), "loss", epoch=step // 10, context=train)
            run.track(0.5, "lr", step=step)  # no epochs
            if step % 7 == 0:
                run.track(0.9, "acc", step=step, epoch=step // 10, context=val)
            # Some points with an epoch, some without, in one sequence.
            run.track(0.1, "mixed", step=step, epoch=step // 10 if step % 3 else None)
        run.track(2.0, "loss", step=5, epoch=7, context=train)  # a rewrite, another epoch
        run.track(3.0, "late", step=100, epoch=4)
        run.track(3.0, "late", step=50, epoch=2)  # out of order
        run.track(3.0, "late", step=75)
    metrics = MlflowClient(backend.tracking_uri).get_run(run.id).data.metrics
    assert sorted(metrics) == [
        "acc :: subset: val",
        "late",
        "loss :: subset: train",
        "lr",
        "mixed",
    ]
    loss = _both_readers(backend, run.id, "loss", train)
    assert _epochs(loss) == [(s, 7 if s == 5 else s // 10) for s in range(30)]
    assert loss[5].value == 2.0
    assert _epochs(_both_readers(backend, run.id, "lr", Context())) == [
        (s, None) for s in range(30)
    ]
    assert _epochs(_both_readers(backend, run.id, "acc", val)) == [
        (s, s // 10) for s in range(0, 30, 7)
    ]
    assert _epochs(_both_readers(backend, run.id, "mixed", Context())) == [
        (s, s // 10 if s % 3 else None) for s in range(30)
    ]
    assert _epochs(_both_readers(backend, run.id, "late", Context())) == [
        (50, 2),
        (75, None),
        (100, 4),
    ]


def test_a_spacy_like_run_has_half_the_metric_keys(backend: MlflowBackend) -> None:
    """spaCy's logger tracks every loss and score with the epoch: 37 sequences gave 74 keys."""
    losses = [("loss", {"component": c, "subset": "train"}) for c in ("tok2vec", "ner", "tagger")]
    scores = [(f"score_{i}", {"subset": "val"}) for i in range(34)]
    with track.start_run(backend, experiment="spacy-like") as run:
        for step in range(0, 200, 20):
            for name, context in losses + scores:
                run.track(float(step), name, step=step, epoch=step // 50, context=context)
    keys = MlflowClient(backend.tracking_uri).get_run(run.id).data.metrics
    assert len(keys) == 37  # 74 with one companion key per sequence
    reader = backend.read_run(run.id)
    for info in reader.sequences():
        assert _epochs(reader.points(info.name, info.context)) == [
            (s, s // 50) for s in range(0, 200, 20)
        ]


def test_resume_goes_on_with_the_epochs(backend: MlflowBackend) -> None:
    with track.start_run(backend, experiment="resume") as run:
        for step in range(20):
            run.track(0.1, "loss", epoch=step // 10)
    with track.start_run(backend, run_id=run.id) as again:
        for step in range(20, 40):
            again.track(0.1, "loss", epoch=step // 10)
        again.track(0.2, "loss", step=3, epoch=9)  # rewrites an old step
    expected = [(s, 9 if s == 3 else s // 10) for s in range(40)]
    assert _epochs(_both_readers(backend, run.id, "loss", Context())) == expected


# --- runs written the old way --------------------------------------------------------------------


def _old_way_run(backend: MlflowBackend) -> str:
    """A run as track wrote it before epochs.json: a companion metric ``<key> :: epoch``."""
    client = MlflowClient(backend.tracking_uri)
    experiment = client.create_experiment(f"old-{time.time_ns()}")
    run_id: str = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    rows = []
    for step in range(10):
        rows.append(Metric("loss :: subset: train", 1.0 / (step + 1), now + step, step))
        rows.append(Metric("loss :: subset: train :: epoch", float(step // 4), now + step, step))
        rows.append(Metric("lr", 0.1, now + step, step))
    client.log_batch(run_id, metrics=rows)
    client.set_terminated(run_id)
    return run_id


def test_runs_written_the_old_way_read_back(backend: MlflowBackend) -> None:
    run_id = _old_way_run(backend)
    reader = backend.read_run(run_id)
    assert {(info.name, info.context) for info in reader.sequences()} == {
        ("loss", Context(subset="train")),
        ("lr", Context()),
    }
    loss = _both_readers(backend, run_id, "loss", Context(subset="train"))
    assert _epochs(loss) == [(s, s // 4) for s in range(10)]
    assert _epochs(_both_readers(backend, run_id, "lr", Context())) == [
        (s, None) for s in range(10)
    ]


def test_runs_written_the_old_way_resume_the_old_way(backend: MlflowBackend) -> None:
    run_id = _old_way_run(backend)
    with track.start_run(backend, run_id=run_id) as run:
        for step in range(10, 15):
            run.track(0.5, "loss", epoch=step // 4, context={"subset": "train"})
            run.track(0.5, "acc", epoch=step // 4)  # a new sequence: the new way
    metrics = MlflowClient(backend.tracking_uri).get_run(run_id).data.metrics
    assert sorted(metrics) == [
        "acc",
        "loss :: subset: train",
        "loss :: subset: train :: epoch",
        "lr",
    ]
    loss = _both_readers(backend, run_id, "loss", Context(subset="train"))
    assert _epochs(loss) == [(s, s // 4) for s in range(15)]
    acc = _both_readers(backend, run_id, "acc", Context())
    assert _epochs(acc) == [(i, (10 + i) // 4) for i in range(5)]
