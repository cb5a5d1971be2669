"""Durable throughput into MLflow: track against MLflow's best raw batch path, in one process.

    hatch run mlflow:python benchmarks/bench_mlflow_durable.py [--values 200000] [--rounds 3]
    hatch run mlflow:python benchmarks/bench_mlflow_durable.py --server   # also an mlflow server

The same values (100 metrics per step in two contexts, as per-layer statistics are logged) go to
a new run through

- raw ``log_batch``: ``MlflowClient.log_batch`` of 1000 metrics a call (MLflow's limit per call),
  the fastest way MLflow's client offers to store many values;
- track: ``track_core.start_run(...)``, ``run.track(value, name, step=, context=)`` per value,
  ``run.flush()``, which returns once the backend has stored every value, with the batch size
  the backend declares (``MlflowBackend.batch_size``) and with the core's default of 1000, to
  show what the declared size is worth.

Each side is timed from its first call until every value is stored (creating and ending the run
not timed); every run is then read back through ``MlflowClient.get_metric_history`` and counted.
The best of ``--rounds`` is printed for each, with track's ratio to raw ``log_batch``.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

import track_core as track
from track_core.context import Context
from track_mlflow import MlflowBackend, create_backend
from track_mlflow.keys import encode_key
from track_mlflow.testing import mlflow_server

WIDE = 100
CONTEXTS = ({"subset": "train"}, {"subset": "val"})

#: (value, name, step, context) in the order tracked.
Row = tuple[float, str, int, dict[str, str]]


def workload(count: int) -> list[Row]:
    names = [f"layer{i:02d}/grad_norm" for i in range(WIDE // 2)]
    per_step = len(names) * len(CONTEXTS)
    return [
        (1.0 / (i + 1), names[(i % per_step) // 2], i // per_step, CONTEXTS[i % 2])
        for i in range(count)
    ]


def raw_log_batch(uri: str, rows: list[Row]) -> tuple[float, str]:
    client = MlflowClient(uri)
    experiment = client.create_experiment(f"raw-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    keys = {(name, tuple(context.items())): "" for _, name, _, context in rows}
    for name, context in keys:
        keys[(name, context)] = encode_key(name, Context(dict(context)))
    gc.collect()
    started = time.perf_counter()
    batch = []
    for value, name, step, context in rows:
        batch.append(Metric(keys[(name, tuple(context.items()))], value, now, step))
        if len(batch) == 1000:
            client.log_batch(run_id, metrics=batch)
            batch = []
    if batch:
        client.log_batch(run_id, metrics=batch)
    elapsed = time.perf_counter() - started
    client.set_terminated(run_id)
    return elapsed, run_id


@contextmanager
def default_batch_size() -> Iterator[None]:
    """MlflowBackend without a declared batch size: the core's default (1000)."""
    declared = MlflowBackend.batch_size
    del MlflowBackend.batch_size  # type: ignore[misc]
    try:
        yield
    finally:
        MlflowBackend.batch_size = declared  # type: ignore[method-assign,misc]


def with_track(uri: str, rows: list[Row]) -> tuple[float, str]:
    backend = create_backend(uri)
    options = track.WriterOptions(max_buffered=len(rows) + 1, close_timeout=3600.0)
    run = track.start_run(backend, experiment=f"track-{time.time_ns()}", writer=options)
    gc.collect()
    started = time.perf_counter()
    for value, name, step, context in rows:
        run.track(value, name, step=step, context=context)
    run.flush(timeout=3600.0)
    elapsed = time.perf_counter() - started
    run.close()
    return elapsed, run.id


def check_stored(uri: str, run_id: str, rows: list[Row]) -> None:
    client = MlflowClient(uri)
    keys = {encode_key(name, Context(context)) for _, name, _, context in rows}
    stored = sum(len(client.get_metric_history(run_id, key)) for key in keys)
    assert stored == len(rows), (stored, len(rows))


def best(rounds: int, uri: str, rows: list[Row], job: Callable[..., tuple[float, str]]) -> float:
    times = []
    for _ in range(rounds):
        elapsed, run_id = job(uri, rows)
        check_stored(uri, run_id, rows)
        times.append(elapsed)
    return len(rows) / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", action="store_true", help="also an mlflow server")
    args = parser.parse_args()
    rows = workload(args.values)
    print(f"{len(rows):,} values, {WIDE} sequences, best of {args.rounds}; values/s")
    print("| store | raw log_batch | track (declared batch) | ratio | track (batch 1000) | ratio |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-durable-") as tmp, ExitStack() as stack:
        stores = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if args.server:
            stores.append(("server", stack.enter_context(mlflow_server(Path(tmp) / "srv")).url))
        for label, uri in stores:
            create_backend(uri)  # the store's tables, as track's runs have them
            raw = best(args.rounds, uri, rows, raw_log_batch)
            declared = best(args.rounds, uri, rows, with_track)
            with default_batch_size():
                default = best(args.rounds, uri, rows, with_track)
            size = create_backend(uri).batch_size
            print(
                f"| {label} | {raw:,.0f} | {declared:,.0f} ({size}) | {declared / raw:.2f}x "
                f"| {default:,.0f} | {default / raw:.2f}x |"
            )


if __name__ == "__main__":
    main()
