"""Durable throughput into MLflow: track against MLflow's best raw batch path, in one process.

    hatch run mlflow:python benchmarks/bench_mlflow_durable.py [--values 200000] [--rounds 3]
    hatch run mlflow:python benchmarks/bench_mlflow_durable.py --server   # also an mlflow server
    hatch run postgres:python benchmarks/bench_mlflow_durable.py --postgres
        # MLflow as a team runs it: a PostgreSQL server (track_mlflow.testing.postgres_server),
        # written to directly (postgresql+psycopg2://) and through an mlflow server on it

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

For a server, what the server side spends is measured too: the CPU time of the ``mlflow server``
process and its workers (and of PostgreSQL's processes, when it is the store), from ``/proc``,
over the best round of each side, per value stored. ``cores / that`` is the most values per
second the server could store on this machine if the client took no CPU at all: a ceiling no
client reaches, however many requests it keeps in flight.
"""

from __future__ import annotations

import argparse
import gc
import os
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
from track_mlflow.testing import mlflow_server, postgres_server

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


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) "


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU seconds of the live processes under ``roots`` (the roots included): each one's own
    and its reaped children's (utime, stime, cutime, cstime), so a worker or a database backend
    that ended is counted once, in its parent's figure."""
    parents: dict[int, int] = {}
    fields: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents[int(entry)] = int(stat[1])
                fields[int(entry)] = stat
    tree = {root for root in roots if root in fields}
    grown = True
    while grown:
        grown = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grown = True
    ticks = sum(int(fields[pid][index]) for pid in tree for index in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(roots: list[int], timeout: float = 120.0) -> None:
    """Wait until the processes under ``roots`` are idle (under 2% of a core over a second): a
    new mlflow server starts its job consumers for some seconds after it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = tree_cpu_seconds(roots)
        time.sleep(1.0)
        if tree_cpu_seconds(roots) - before < 0.02:
            return


def check_stored(uri: str, run_id: str, rows: list[Row]) -> None:
    client = MlflowClient(uri)
    keys = {encode_key(name, Context(context)) for _, name, _, context in rows}
    stored = sum(len(client.get_metric_history(run_id, key)) for key in keys)
    assert stored == len(rows), (stored, len(rows))


def best(
    rounds: int,
    uri: str,
    rows: list[Row],
    job: Callable[..., tuple[float, str]],
    server_side: list[int],
) -> tuple[float, float]:
    """Values/s of the best round, and the server side's CPU microseconds per value in it."""
    results = []
    for _ in range(rounds):
        cpu_before = tree_cpu_seconds(server_side)
        elapsed, run_id = job(uri, rows)
        cpu = tree_cpu_seconds(server_side) - cpu_before  # the run's end included: a few ms
        check_stored(uri, run_id, rows)
        results.append((elapsed, cpu))
    elapsed, cpu = min(results)
    return len(rows) / elapsed, cpu / len(rows) * 1e6


def postmaster_pid(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", action="store_true", help="also an mlflow server")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="PostgreSQL instead of sqlite as the store (needs psycopg2: the postgres env)",
    )
    parser.add_argument("--workers", type=int, default=2, help="the mlflow server's workers")
    args = parser.parse_args()
    rows = workload(args.values)
    cores = os.cpu_count() or 1
    print(f"{len(rows):,} values, {WIDE} sequences, best of {args.rounds}, {cores} cores; values/s")
    print(
        "| store | raw log_batch | track (declared batch) | ratio | track (batch 1000) | ratio "
        "| server CPU us/value: raw / track | ceiling (cores / track's CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-durable-") as tmp, ExitStack() as stack:
        database: list[int] = []
        if args.postgres:
            postgres = stack.enter_context(postgres_server())
            database = [postmaster_pid(postgres.data)]
            stores = [("postgresql", postgres.uri, database)]
            store_uri: str | None = postgres.uri
        else:
            stores = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", [])]
            store_uri = None
        if args.server or args.postgres:
            server = stack.enter_context(
                mlflow_server(Path(tmp) / "srv", workers=args.workers, store_uri=store_uri)
            )
            assert server.pid is not None
            label = f"server ({args.workers} workers) on {stores[0][0]}"
            stores.append((label, server.url, [server.pid, *database]))
        for label, uri, server_side in stores:
            create_backend(uri)  # the store's tables, as track's runs have them
            settle(server_side)
            raw, raw_cpu = best(args.rounds, uri, rows, raw_log_batch, server_side)
            declared, cpu = best(args.rounds, uri, rows, with_track, server_side)
            with default_batch_size():
                default, _ = best(args.rounds, uri, rows, with_track, server_side)
            size = create_backend(uri).batch_size
            line = (
                f"| {label} | {raw:,.0f} | {declared:,.0f} ({size}) | {declared / raw:.2f}x "
                f"| {default:,.0f} | {default / raw:.2f}x "
            )
            if server_side:
                line += f"| {raw_cpu:,.0f} / {cpu:,.0f} | {cores / cpu * 1e6:,.0f} |"
            else:
                line += "| - | - |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
