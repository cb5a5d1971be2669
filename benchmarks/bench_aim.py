"""track_aim against raw Aim in one process: durable throughput, caller cost, reads.

    python benchmarks/bench_aim.py                        # local repo
    python benchmarks/bench_aim.py --remote               # also through an aim server

Throughput: the same values go to the same kind of target through

- raw ``Run.track``: ``aim.Run.track(value, name=, step=, context=)``, one call per value;
- raw ``Run.track(dict)``: one call per step and context with a dict of that step's values,
  Aim's own call for many values at once (the "wide" workload only);
- track: ``track_core.start_run(...)``; ``run.track(value, name, step=, context=)`` per value;
  ``run.flush()``, which returns once the backend has stored every value.

Each side is timed from its first call until every value is stored: for raw Aim on a local repo
when the last call returns, to an Aim server when Aim's client has drained its queue (the server
acknowledged every message); for track when ``flush()`` returns. Opening and closing the runs are
not timed. After each track run every value is read back through Aim's own SDK (``aim.Repo``,
``Run.metrics()``, ``Metric.data``) and counted. Two workloads: ``loss`` (one loss in two
contexts, as a training loop logs it) and ``wide`` (100 metrics per step in one context, as
per-layer statistics are logged). The ratio is track's values/s over the best raw path's.

Then the caller-thread cost of one ``track()`` call (median and p99), i.e. what a training loop
waits, and reading one run back (the run track wrote, one sequence of count/2 values): raw Aim
(``Repo.get_run(id).get_metric(...).data.numpy()`` on one open Repo) against track
(``track_core.open_run(id, ...).sequence(...).points()``, which opens the run's storage afresh
for each read and releases it), and reading one property (``view.status``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aim
import attrs
from aim.storage.context import Context as AimContext

import track_core
from track_aim.testing import aim_server

#: (value, name, step, context) in the order tracked.
Row = tuple[float, str, int, dict[str, str]]

WIDE = 100


def workload(kind: str, count: int) -> list[Row]:
    if kind == "loss":
        contexts = [{"subset": "train"}, {"subset": "val"}]
        return [(1.0 / (i + 1), "loss", i // 2, contexts[i % 2]) for i in range(count)]
    context: dict[str, str] = {}
    names = [f"layer{i:02d}/grad_norm" for i in range(WIDE)]
    return [(1.0 / (i + 1), names[i % WIDE], i // WIDE, context) for i in range(count)]


def _aim_run(repo: str) -> Any:
    return aim.Run(
        repo=repo,
        system_tracking_interval=None,
        log_system_params=False,
        capture_terminal_logs=False,
    )


def _drained(run: Any) -> None:
    if run.repo.is_remote_repo:  # Aim's client sends in the background: wait for the server
        run.repo._client.get_queue().wait_for_finish()


@attrs.frozen
class Rate:
    """Values per second of wall time, and per second of this process's CPU time (on a shared,
    loaded machine the second moves less; to a server it leaves out the server's CPU)."""

    wall: float
    cpu: float


def raw_per_value(repo: str, rows: list[Row]) -> Rate:
    run = _aim_run(repo)
    track = run.track
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    for value, name, step, context in rows:
        track(value, name=name, step=step, context=context)
    _drained(run)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    run.close()
    return Rate(len(rows) / elapsed, len(rows) / cpu)


def raw_dicts(repo: str, rows: list[Row]) -> Rate:
    """One Run.track call per step and context, with a dict of the step's values."""
    groups: dict[tuple[int, str], tuple[dict[str, float], dict[str, str]]] = {}
    for value, name, step, context in rows:
        groups.setdefault((step, repr(context)), ({}, context))[0][name] = value
    calls = [(values, step, context) for (step, _), (values, context) in groups.items()]
    run = _aim_run(repo)
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    for values, step, context in calls:
        run.track(values, step=step, context=context)
    _drained(run)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    run.close()
    return Rate(len(rows) / elapsed, len(rows) / cpu)


def with_track(
    backend: str, rows: list[Row], per_call: list[float] | None = None
) -> tuple[Rate, str]:
    options = track_core.WriterOptions(
        max_buffered=max(100_000, len(rows) + 10), close_timeout=3600.0
    )
    run = track_core.start_run(backend, writer=options)
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    if per_call is None:
        for value, name, step, context in rows:
            run.track(value, name, step=step, context=context)
    else:
        clock = time.perf_counter_ns
        for value, name, step, context in rows:
            before = clock()
            run.track(value, name, step=step, context=context)
            per_call.append((clock() - before) / 1000.0)
    if not run.flush(timeout=3600.0):
        raise RuntimeError("the backend did not take every value")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    run.close()
    if run.status.value != "finished":
        raise RuntimeError(f"the track run ended {run.status}")
    return Rate(len(rows) / elapsed, len(rows) / cpu), run.id


def check_stored(repo: str, run_id: str, rows: list[Row]) -> None:
    """Every value of the track run, read back through Aim's own SDK."""
    expected: dict[tuple[str, str], dict[int, float]] = {}
    for value, name, step, context in rows:
        expected.setdefault((name, repr(context)), {})[step] = value
    aim_repo = aim.Repo(repo)  # a fresh Repo: its read-only index is opened now
    stored = aim_repo.get_run(run_id)
    if stored is None:
        raise RuntimeError(f"Aim's SDK does not find run {run_id} in {repo}")
    found: dict[tuple[str, str], dict[int, float]] = {}
    for metric in stored.metrics():
        steps, (values, _, _) = metric.data.numpy()
        key = (metric.name, repr(metric.context.to_dict()))
        found[key] = dict(zip(steps.tolist(), values.tolist(), strict=True))
    if found != expected:
        missing = sum(len(v) for v in expected.values()) - sum(len(v) for v in found.values())
        raise RuntimeError(f"Aim's SDK reads another run than was tracked ({missing} values short)")


def best_of(repeats: int, job: Callable[[], Rate]) -> Rate:
    rates = [job() for _ in range(repeats)]
    return Rate(max(rate.wall for rate in rates), max(rate.cpu for rate in rates))


def measure_throughput(
    label: str,
    raw_repo: str,
    track_backend: str,
    read_repo: str,
    kind: str,
    count: int,
    repeats: int,
) -> str:
    rows = workload(kind, count)
    per_value = best_of(repeats, lambda: raw_per_value(raw_repo, rows))
    dicts = best_of(repeats, lambda: raw_dicts(raw_repo, rows)) if kind == "wide" else None
    runs: list[str] = []

    def tracked() -> Rate:
        rate, run_id = with_track(track_backend, rows)
        runs.append(run_id)
        return rate

    through_track = best_of(repeats, tracked)
    check_stored(read_repo, runs[-1], rows)
    best = [per_value] if dicts is None else [per_value, dicts]
    best_wall = max(rate.wall for rate in best)
    best_cpu = max(rate.cpu for rate in best)
    dict_cell = f"{'-':>14}" if dicts is None else f"{dicts.wall:>14,.0f}"
    return (
        f"{label:<7} {kind:<5} {count:>7,} {per_value.wall:>12,.0f} {dict_cell}"
        f" {through_track.wall:>10,.0f} {through_track.wall / best_wall:>7.2f}x"
        f" {best_cpu:>12,.0f} {through_track.cpu:>12,.0f} {through_track.cpu / best_cpu:>7.2f}x"
    )


def measure_calls(label: str, backend: str, count: int) -> str:
    per_call: list[float] = []
    with_track(backend, workload("loss", count), per_call)
    per_call.sort()
    p99 = per_call[min(len(per_call) - 1, int(len(per_call) * 0.99))]
    return f"{label:<7} {count:>7,} {statistics.median(per_call):>14.2f} {p99:>11.2f}"


def _timed(repeats: int, job: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_reads(label: str, backend: str, repo: str, count: int, repeats: int) -> str:
    with track_core.start_run(backend) as run:
        for value, name, step, context in workload("loss", count):
            run.track(value, name, step=step, context=context)
    aim_repo = aim.Repo(repo) if repo.startswith("aim://") else aim.Repo.from_path(repo)

    def raw_read() -> int:
        stored = aim_repo.get_run(run.id)
        metric = stored.get_metric("loss", AimContext({"subset": "train"}))
        steps, _ = metric.data.numpy()
        return len(steps)

    def track_read() -> int:
        view = track_core.open_run(run.id, backend)
        return len(view.sequence("loss", {"subset": "train"}).points())

    def track_status() -> object:
        return track_core.open_run(run.id, backend).status

    if raw_read() != track_read():
        raise RuntimeError("raw Aim and track read different points")
    raw = _timed(repeats, raw_read)
    tracked = _timed(repeats, track_read)
    status = _timed(repeats, track_status)
    return (
        f"{label:<7} {count // 2:>7} {raw * 1e3:>12.1f} {tracked * 1e3:>14.1f}"
        f" {tracked / raw:>7.2f} {status * 1e3:>14.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=20_000, help="values per local run")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="best of N (throughput)")
    parser.add_argument("--remote", action="store_true", help="also measure through aim server")
    parser.add_argument("--remote-count", type=int, default=4_000, help="values per server run")
    parser.add_argument("--read-repeats", type=int, default=5, help="reads timed (median)")
    args = parser.parse_args()

    rows, calls, reads = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-aim-") as directory:
        raw_repo, track_repo = Path(directory, "raw"), Path(directory, "track")
        raw_repo.mkdir()
        aim.Repo.from_path(str(raw_repo), init=True)
        local = f"aim:{track_repo}"
        for kind in ("loss", "wide"):
            rows.append(
                measure_throughput(
                    "local", str(raw_repo), local, str(track_repo), kind, args.count, args.repeats
                )
            )
        calls.append(measure_calls("local", local, args.count))
        reads.append(measure_reads("local", local, str(track_repo), args.count, args.read_repeats))
        if args.remote:
            with aim_server(Path(directory, "server")) as server:
                for kind in ("loss", "wide"):
                    rows.append(
                        measure_throughput(
                            "server",
                            server.url,
                            server.url,
                            server.url,
                            kind,
                            args.remote_count,
                            args.repeats,
                        )
                    )
                calls.append(measure_calls("server", server.url, args.remote_count))
                reads.append(
                    measure_reads(
                        "server", server.url, server.url, args.remote_count, args.read_repeats
                    )
                )
    header = (
        f"{'target':<7} {'load':<5} {'values':>7} {'Run.track/s':>12} {'Run.track(d)/s':>14}"
        f" {'track/s':>10} {'ratio':>8} {'raw/cpu-s':>12} {'track/cpu-s':>12} {'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row)
    print(
        "\nvalues/s until every value is stored (best of the repeats); Run.track(d) = one call per"
        " step with a dict of its values; ratio = track / the best raw path; /cpu-s = values per"
        " second of this process's CPU time (best raw path, track); every track run is read back"
        " through Aim's SDK"
    )
    call_header = f"\n{'target':<7} {'values':>7} {'track() med µs':>14} {'p99 µs':>11}"
    print(call_header)
    print("-" * (len(call_header) - 1))
    for row in calls:
        print(row)
    read_header = (
        f"\n{'target':<7} {'points':>7} {'raw read ms':>12} {'track read ms':>14} {'ratio':>7}"
        f" {'status ms':>14}"
    )
    print(read_header)
    print("-" * (len(read_header) - 1))
    for row in reads:
        print(row)
    print("read = one sequence back (median of the repeats); status = open_run + view.status")


if __name__ == "__main__":
    main()
