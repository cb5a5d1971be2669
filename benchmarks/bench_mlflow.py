"""How fast track_mlflow writes scalars, against raw MlflowClient calls, on sqlite and a server.

    hatch run mlflow:python benchmarks/bench_mlflow.py [--points 5000] [--per-value 300] [--rounds 5]

For each store: raw ``MlflowClient.log_metric`` per value (timed on ``--per-value`` values, as it
is slow), raw ``log_batch`` with hand-written batches of 1000, and track (``track_core.start_run``
then ``run.track`` per value), all on the same values. Each is timed over a whole run: creating the
experiment and the run, logging, and ending the run (``set_terminated`` / ``close``, which returns
once every value is stored). Prints microseconds per value and the ratios (targets: track >= 20x faster than per-value log_metric,
within 1.5x of raw log_batch).
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


def bench_track(uri: str, values: list[float]) -> float:
    backend = create_backend(uri)
    start = time.perf_counter()
    run = track.start_run(
        backend,
        experiment=f"track-{time.time_ns()}",
        writer=track.WriterOptions(close_timeout=3600.0),  # close() returns when all is stored
    )
    for value in values:
        run.track(value, "loss", context={"subset": "train"})
    run.close()
    elapsed = time.perf_counter() - start
    stored = MlflowClient(uri).get_metric_history(run.id, "loss :: subset: train")
    assert len(stored) == len(values), (len(stored), len(values))
    return elapsed / len(values)


def _row(store: str, results: dict[str, float]) -> str:
    per_metric, per_batch, per_track = results["log_metric"], results["log_batch"], results["track"]
    return (
        f"{store:<8} {per_metric * 1e6:>12.1f} {per_batch * 1e6:>12.1f} {per_track * 1e6:>10.1f}"
        f" {per_metric / per_track:>16.1f}x {per_track / per_batch:>15.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--per-value", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
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
                batch_times, track_times = [], []
                for _ in range(args.rounds):
                    batch_times.append(bench_log_batch(uri, values))
                    track_times.append(bench_track(uri, values))
                results = {
                    "log_metric": per_metric,
                    "log_batch": statistics.median(batch_times),
                    "track": statistics.median(track_times),
                }
                rows.append(_row(store, results))
    print(
        f"{args.points} values ({args.per_value} for log_metric); microseconds per value; "
        f"log_batch and track: median of {args.rounds} alternating rounds"
    )
    print(
        f"{'store':<8} {'log_metric':>12} {'log_batch':>12} {'track':>10}"
        f" {'log_metric/track':>17} {'track/log_batch':>16}"
    )
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
