"""How fast track_mlflow writes scalars, against raw MlflowClient calls, on sqlite and a server.

    hatch run mlflow:python benchmarks/bench_mlflow.py [--points 5000] [--per-value 300] [--rounds 5]

For each store: raw ``MlflowClient.log_metric`` per value (timed on ``--per-value`` values, as it
is slow), raw ``log_batch`` with hand-written batches of 1000, and track (``track_core.start_run``
then ``run.track`` per value), all on the same values. Each is timed over a whole run: creating the
experiment and the run, logging, and ending the run (``set_terminated`` / ``close``, which returns
once every value is stored). Prints microseconds per value and the ratios (targets: track >= 20x faster than per-value log_metric,
within 1.5x of raw log_batch). ``track+epochs`` is track with an epoch on every value.

Then the metric keys of a spaCy-like run (``--sequences`` sequences, every point with an epoch, as
spaCy's logger tracks them): the keys MLflow shows now, and the keys of the old layout (one
``<key> :: epoch`` companion metric per sequence with epochs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

import track_core as track
from track_mlflow import create_backend
from track_mlflow.testing import mlflow_server


def _values(count: int) -> list[float]:
    return [1.0 / (step + 1) for step in range(count)]


def bench_log_metric(uri: str, values: list[float]) -> float:
    client = MlflowClient(uri)
    start = time.perf_counter()
    experiment = client.create_experiment(f"raw-metric-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    for step, value in enumerate(values):
        client.log_metric(run_id, "loss", value, step=step)
    client.set_terminated(run_id)
    return (time.perf_counter() - start) / len(values)


def bench_log_batch(uri: str, values: list[float]) -> float:
    client = MlflowClient(uri)
    start = time.perf_counter()
    experiment = client.create_experiment(f"raw-batch-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    for offset in range(0, len(values), 1000):
        batch = [
            Metric("loss", value, now, offset + index)
            for index, value in enumerate(values[offset : offset + 1000])
        ]
        client.log_batch(run_id, metrics=batch)
    client.set_terminated(run_id)
    return (time.perf_counter() - start) / len(values)


def bench_track(uri: str, values: list[float], epochs: bool = False) -> float:
    backend = create_backend(uri)
    start = time.perf_counter()
    run = track.start_run(
        backend,
        experiment=f"track-{time.time_ns()}",
        writer=track.WriterOptions(close_timeout=3600.0),  # close() returns when all is stored
    )
    if epochs:
        for step, value in enumerate(values):
            run.track(value, "loss", context={"subset": "train"}, epoch=step // 1000)
    else:
        for value in values:
            run.track(value, "loss", context={"subset": "train"})
    run.close()
    elapsed = time.perf_counter() - start
    stored = MlflowClient(uri).get_metric_history(run.id, "loss :: subset: train")
    assert len(stored) == len(values), (len(stored), len(values))
    return elapsed / len(values)


def _row(store: str, results: dict[str, float]) -> str:
    per_metric, per_batch, per_track = results["log_metric"], results["log_batch"], results["track"]
    with_epochs = results["track+epochs"]
    return (
        f"{store:<8} {per_metric * 1e6:>12.1f} {per_batch * 1e6:>12.1f} {per_track * 1e6:>10.1f}"
        f" {with_epochs * 1e6:>13.1f} {per_metric / per_track:>16.1f}x"
        f" {per_track / per_batch:>15.2f}x"
    )


def spacy_like_keys(uri: str, sequences: int) -> tuple[int, int]:
    """Metric keys of a run whose ``sequences`` sequences all have epochs: (now, old layout)."""
    backend = create_backend(uri)
    run = track.start_run(backend, experiment=f"keys-{time.time_ns()}")
    for step in range(0, 200, 20):
        for index in range(sequences):
            context = {"subset": "train" if index < 4 else "val"}
            run.track(0.5, f"score_{index}", step=step, epoch=step // 50, context=context)
    run.close()
    keys = MlflowClient(uri).get_run(run.id).data.metrics
    with_epochs = sum(
        1
        for info in backend.read_run(run.id).sequences()
        if any(
            p.epoch is not None for p in backend.read_run(run.id).points(info.name, info.context)
        )
    )
    return len(keys), len(keys) + with_epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--per-value", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sequences", type=int, default=37)
    args = parser.parse_args()
    values = _values(args.points)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        stores: list[tuple[str, Callable[[], str]]] = []
        sqlite_uri = f"sqlite:///{Path(tmp) / 'bench.db'}"
        create_backend(sqlite_uri)  # creates the database with its artifacts next to it
        stores.append(("sqlite", lambda: sqlite_uri))
        with mlflow_server(Path(tmp) / "server") as server:
            stores.append(("server", lambda: server.url))
            for store, uri_of in stores:
                uri = uri_of()
                per_metric = bench_log_metric(uri, values[: args.per_value])
                # A store's speed drifts (sqlite checkpoints, a busy server): log_batch and track
                # alternate, and each keeps its median.
                batch_times, track_times, epoch_times = [], [], []
                for _ in range(args.rounds):
                    batch_times.append(bench_log_batch(uri, values))
                    track_times.append(bench_track(uri, values))
                    epoch_times.append(bench_track(uri, values, epochs=True))
                results = {
                    "log_metric": per_metric,
                    "log_batch": statistics.median(batch_times),
                    "track": statistics.median(track_times),
                    "track+epochs": statistics.median(epoch_times),
                }
                rows.append(_row(store, results))
        keys_now, keys_before = spacy_like_keys(sqlite_uri, args.sequences)
    print(
        f"{args.points} values ({args.per_value} for log_metric); microseconds per value; "
        f"log_batch and track: median of {args.rounds} alternating rounds"
    )
    print(
        f"{'store':<8} {'log_metric':>12} {'log_batch':>12} {'track':>10} {'track+epochs':>13}"
        f" {'log_metric/track':>17} {'track/log_batch':>16}"
    )
    for row in rows:
        print(row)
    print(
        f"spaCy-like run, {args.sequences} sequences with epochs: {keys_now} MLflow metric keys "
        f"({keys_before} in the old layout with '<key> :: epoch' companions)"
    )


if __name__ == "__main__":
    main()
