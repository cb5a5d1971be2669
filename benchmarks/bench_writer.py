"""The background writer against every backend, measured against the raw SDKs in the same run.

For each backend (memory, Aim local, Aim server, MLflow sqlite, MLflow server) it prints:
- the cost of ``track()`` on the caller's thread (median and p99, µs);
- end-to-end throughput until durable (values per second from the first track() until flush()
  returns, once the backend has stored everything);
- the raw SDK's per-value call (``aim.Run.track``, ``MlflowClient.log_metric``) and its best
  batched call (``MlflowClient.log_batch`` of 1000) on the same values, and the ratios.
Then memory while a backend is down: items held in memory and bytes spooled to disk.

Each timed section, on either side, starts right after ``gc.collect()``: in a process that has
imported MLflow (about 320,000 objects) a full collection takes about 0.1 s, and whether a 1.3 s
section happens to contain two or three of them would otherwise decide a ratio by about 8%.

    python benchmarks/bench_writer.py [--values 20000] [--rounds 5] [--only aim-local,mlflow-sqlite]

Needs track-core, track-aim and track-mlflow installed (``hatch run resilience:python ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import track_core as track
from track_core.backend import Backend
from track_core.memory import MemoryBackend, MemoryStore

Row = dict[str, Any]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def measure_track(backend: str | Backend, count: int) -> tuple[list[float], float]:
    """Per-call µs on the caller's thread, and values per second until flush() returned: every
    value is then stored (what the raw SDK's calls give when they return). close() comes after,
    untimed: it records the status and releases the SDK's resources."""
    options = track.WriterOptions(max_buffered=max(100_000, count + 10), close_timeout=3600.0)
    run = track.start_run(backend, experiment="bench-writer", writer=options)
    gc.collect()  # every timed section starts with a full collection just done
    clock = time.perf_counter_ns
    durations: list[float] = []
    append = durations.append
    context = {"subset": "train"}
    started = time.perf_counter()
    for step in range(count):
        before = clock()
        run.track(step * 0.001, "loss", step=step, context=context)
        append((clock() - before) / 1000)
    assert run.flush(timeout=3600.0), "the backend did not take every value"
    elapsed = time.perf_counter() - started
    run.close()
    return durations, count / elapsed


def raw_aim(repo: str, count: int) -> float:
    """Values per second of aim.Run.track, one call per value, until the values are stored: for
    a local repository when the last call returns (closing is not timed, as for track); for an
    Aim server, whose client queues calls and sends them in the background, when close() has
    drained that queue."""
    import aim

    run = aim.Run(
        repo=repo,
        experiment="bench-raw",
        system_tracking_interval=None,
        log_system_params=False,
        capture_terminal_logs=False,
    )
    gc.collect()
    started = time.perf_counter()
    for step in range(count):
        run.track(step * 0.001, name="loss", step=step, context={"subset": "train"})
    remote = repo.startswith("aim://")
    if remote:
        run.close()
    elapsed = time.perf_counter() - started
    if not remote:
        run.close()
    return count / elapsed


def raw_mlflow(uri: str, count: int) -> tuple[float, float]:
    """Values per second of log_metric (per value) and of log_batch (1000 per call), writing
    the rows track writes: the same metric key, and each value's own timestamp."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from track_mlflow.keys import encode_key

    key = encode_key("loss", {"subset": "train"})

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("bench-raw")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("bench-raw")
    )
    run = client.create_run(experiment_id)
    per_value = min(count, 300)
    gc.collect()
    started = time.perf_counter()
    for step in range(per_value):
        client.log_metric(run.info.run_id, key, step * 0.001, step=step)
    single = per_value / (time.perf_counter() - started)
    batched_run = client.create_run(experiment_id)
    gc.collect()
    started = time.perf_counter()
    batch: list[Metric] = []
    for step in range(count):
        batch.append(Metric(key, step * 0.001, int(time.time() * 1000), step))
        if len(batch) == 1000 or step == count - 1:
            client.log_batch(batched_run.info.run_id, metrics=batch)
            batch = []
    client.set_terminated(batched_run.info.run_id)
    batched = count / (time.perf_counter() - started)
    client.set_terminated(run.info.run_id)
    return single, batched


@contextlib.contextmanager
def backends(
    folder: Path, only: set[str] | None
) -> Iterator[list[tuple[str, str | Backend, Callable[[int], tuple[float, float | None]]]]]:
    """(label, backend, raw measurement) for every backend, servers started and stopped here."""
    from track_aim.testing import aim_server
    from track_mlflow.testing import mlflow_server

    wanted = only or {"memory", "aim-local", "aim-server", "mlflow-sqlite", "mlflow-server"}

    def append_baseline(count: int) -> tuple[float, float | None]:
        sink: list[Any] = []
        gc.collect()
        started = time.perf_counter()
        for step in range(count):
            sink.append((step, step * 0.001))
        return count / (time.perf_counter() - started), None

    with contextlib.ExitStack() as stack:
        entries: list[tuple[str, str | Backend, Callable[[int], tuple[float, float | None]]]] = []
        if "memory" in wanted:
            entries.append(("memory", MemoryBackend(MemoryStore(), "bench"), append_baseline))
        if "aim-local" in wanted:
            repo = str(folder / "aim-local")
            entries.append(("aim local", f"aim:{repo}", lambda n, r=repo: (raw_aim(r, n), None)))
        if "aim-server" in wanted:
            server = stack.enter_context(aim_server(folder / "aim-server"))
            entries.append(
                ("aim server", server.url, lambda n, u=server.url: (raw_aim(u, n), None))
            )
        if "mlflow-sqlite" in wanted:
            uri = f"sqlite:///{folder / 'mlflow.db'}"
            entries.append(("mlflow sqlite", f"mlflow:{uri}", lambda n, u=uri: raw_mlflow(u, n)))
        if "mlflow-server" in wanted:
            mlflow = stack.enter_context(mlflow_server(folder / "mlflow-server"))
            entries.append(
                ("mlflow server", f"mlflow:{mlflow.url}", lambda n, u=mlflow.url: raw_mlflow(u, n))
            )
        yield entries


def memory_while_down(count: int, spool: Path) -> Row:
    backend = MemoryBackend(MemoryStore(), "down")
    run = track.start_run(backend, writer=track.WriterOptions(max_buffered=10_000))
    assert isinstance(run, track.TrackedRun)
    backend.store.unavailable = True
    peak = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(count):
            run.track(step * 0.001, "loss", step=step)
            if step % 1000 == 0:
                peak = max(peak, len(run._writer._queue))
                time.sleep(0.001)
        time.sleep(0.5)
        spooled = sum(path.stat().st_size for path in spool.glob("*.spool"))
        backend.store.unavailable = False
        run.close()
    stored = len(backend.read_run(run.id).points("loss", track.Context()))
    return {
        "tracked": count,
        "peak_in_memory": peak,
        "spooled_bytes": spooled,
        "stored_after": stored,
    }


class _EmptyRun:
    def track(
        self, value: object, name: str, step: int | None = None, context: object = None
    ) -> None:
        pass


def timing_floor(count: int) -> float:
    """Median µs of the timed loop around a method that does nothing: the part of each
    track() figure that is the timer and the call itself."""
    run = _EmptyRun()
    clock = time.perf_counter_ns
    durations: list[float] = []
    append = durations.append
    context = {"subset": "train"}
    for step in range(count):
        before = clock()
        run.track(step * 0.001, "loss", step=step, context=context)
        append((clock() - before) / 1000)
    return statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--values", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians)")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated: memory,aim-local,aim-server,mlflow-sqlite,mlflow-server",
    )
    arguments = parser.parse_args()
    only = set(arguments.only.split(",")) if arguments.only else None
    count = arguments.values
    rounds = arguments.rounds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["TRACK_SPOOL_DIR"] = str(folder / "spool")
        rows = []
        with backends(folder, only) as entries:
            for label, backend, raw in entries:
                measure_track(backend, min(count, 2_000))  # warm-up: imports, first contexts
                # Speeds drift on a shared machine: track and the raw SDK alternate, each
                # ratio is taken within a round, and each figure is the median over the rounds.
                medians, p99s, throughputs, singles, batches = [], [], [], [], []
                versus_single, versus_batch = [], []
                for _ in range(rounds):
                    durations, throughput = measure_track(backend, count)
                    medians.append(statistics.median(durations))
                    p99s.append(percentile(durations, 0.99))
                    throughputs.append(throughput)
                    raw_single, raw_batched = raw(count)
                    singles.append(raw_single)
                    versus_single.append(throughput / raw_single)
                    if raw_batched is not None:
                        batches.append(raw_batched)
                        versus_batch.append(throughput / raw_batched)
                rows.append(
                    {
                        "label": label,
                        "median": statistics.median(medians),
                        "median_range": (min(medians), max(medians)),
                        "p99": statistics.median(p99s),
                        "p99_max": max(p99s),
                        "throughput": statistics.median(throughputs),
                        "single": statistics.median(singles),
                        "batch": statistics.median(batches) if batches else None,
                        "vs_single": statistics.median(versus_single),
                        "vs_batch": statistics.median(versus_batch) if versus_batch else None,
                        "vs_range": (
                            min(versus_batch or versus_single),
                            max(versus_batch or versus_single),
                        ),
                    }
                )
                print(f"measured {label}", flush=True)
        floor = timing_floor(count)
        down = memory_while_down(max(count, 200_000), folder / "spool")
    print()
    print(
        f"{count} scalar values per backend, {rounds} alternating rounds: medians over the "
        "rounds (ranges: lowest..highest round); track() is timed on the caller's thread"
    )
    header = (
        f"{'backend':<15}{'track median µs':>16}{'(range)':>13}{'p99 µs':>8}{'(max)':>7}"
        f"{'track values/s':>16}{'raw per-value/s':>17}{'raw batch/s':>13}"
        f"{'vs per-value':>14}{'vs best raw':>13}{'(range)':>13}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        low, high = row["median_range"]
        vs_low, vs_high = row["vs_range"]
        batch = f"{row['batch']:>13,.0f}" if row["batch"] else f"{'-':>13}"
        best = row["vs_batch"] if row["vs_batch"] is not None else row["vs_single"]
        print(
            f"{row['label']:<15}{row['median']:>16.2f}{f'{low:.2f}..{high:.2f}':>13}"
            f"{row['p99']:>8.2f}{row['p99_max']:>7.1f}{row['throughput']:>16,.0f}"
            f"{row['single']:>17,.0f}{batch}{row['vs_single']:>13.2f}x{best:>12.2f}x"
            f"{f'{vs_low:.2f}..{vs_high:.2f}':>13}"
        )
    print()
    print(
        f"timing floor: the same timed loop around a method that does nothing takes {floor:.2f} µs "
        "per call (included in the track() figures)"
    )
    print(
        "memory backend down while tracking "
        f"{down['tracked']:,} values: at most {down['peak_in_memory']:,} items in memory, "
        f"{down['spooled_bytes']:,} bytes spooled to disk, {down['stored_after']:,} stored once back"
    )
    print(
        "(memory row: 'raw' is a Python list.append of the same values; 'vs best raw' is "
        "against the batched call where the SDK has one, MLflow's log_batch of 1000)"
    )


if __name__ == "__main__":
    main()
