"""track_aim against raw Aim, end to end, in one process.

    python benchmarks/bench_aim.py                 # local repo, 20,000 scalars
    python benchmarks/bench_aim.py -n 2000 --remote  # also through an aim server (slow: ~3 ms/pt)

For each target it tracks the same values (a loss in two contexts, as a training loop does):

- raw:   ``aim.Run(...)``; ``run.track(value, name=, step=, context=)``; ``run.close()``
- track: ``track_core.start_run("aim:...")``; ``run.track(value, name, step=, context=)``;
         ``run.close()`` (which waits until the background writer has stored everything)

and prints µs per value end to end (open + track + flush/close) and the ratio track/raw, then
the caller-thread cost of one ``track()`` call (median and p99), i.e. what a training loop waits.

Then reading one run back (the run track wrote, one sequence of count/2 values): raw Aim
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

import aim
from aim.storage.context import Context as AimContext

import track_core
from track_aim.testing import aim_server


def values(count: int) -> list[tuple[float, str]]:
    return [(1.0 / (i + 1), "train" if i % 2 == 0 else "val") for i in range(count)]


def raw_aim(repo: str, data: list[tuple[float, str]]) -> float:
    start = time.perf_counter()
    run = aim.Run(
        repo=repo,
        system_tracking_interval=None,
        log_system_params=False,
        capture_terminal_logs=False,
    )
    steps = {"train": 0, "val": 0}
    for value, subset in data:
        run.track(value, name="loss", step=steps[subset], context={"subset": subset})
        steps[subset] += 1
    run.close()
    if run.repo.is_remote_repo:
        run.repo._client.get_queue().wait_for_finish()
    return time.perf_counter() - start


def with_track(backend: str, data: list[tuple[float, str]], per_call: list[float] | None) -> float:
    start = time.perf_counter()
    run = track_core.start_run(backend)
    contexts = {"train": {"subset": "train"}, "val": {"subset": "val"}}
    if per_call is None:
        for value, subset in data:
            run.track(value, "loss", context=contexts[subset])
    else:
        clock = time.perf_counter_ns
        for value, subset in data:
            before = clock()
            run.track(value, "loss", context=contexts[subset])
            per_call.append((clock() - before) / 1000.0)
    run.close()
    elapsed = time.perf_counter() - start
    if run.status.value != "finished":
        raise RuntimeError(f"the track run ended {run.status}")
    return elapsed


def best_of(repeats: int, job: Callable[[], float]) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        times.append(job())
    return min(times)


def measure(label: str, raw_repo: str, track_backend: str, count: int, repeats: int) -> list[str]:
    data = values(count)
    raw = best_of(repeats, lambda: raw_aim(raw_repo, data))
    tracked = best_of(repeats, lambda: with_track(track_backend, data, None))
    per_call: list[float] = []
    with_track(track_backend, data, per_call)
    per_call.sort()
    p99 = per_call[min(len(per_call) - 1, int(len(per_call) * 0.99))]
    raw_us, track_us = raw / count * 1e6, tracked / count * 1e6
    return [
        f"{label:<8} {count:>7} {raw_us:>12.1f} {track_us:>14.1f} {track_us / raw_us:>7.3f}"
        f" {statistics.median(per_call):>14.2f} {p99:>11.2f}"
    ]


def _timed(repeats: int, job: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_reads(label: str, backend: str, repo: str, count: int, repeats: int) -> list[str]:
    data = values(count)
    with track_core.start_run(backend) as run:
        for value, subset in data:
            run.track(value, "loss", context={"subset": subset})
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
    return [
        f"{label:<8} {count // 2:>7} {raw * 1e3:>12.1f} {tracked * 1e3:>14.1f}"
        f" {tracked / raw:>7.2f} {status * 1e3:>14.1f}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=20_000, help="values per target")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="best of N (end to end)")
    parser.add_argument("--remote", action="store_true", help="also measure through aim server")
    parser.add_argument("--remote-count", type=int, default=2_000)
    parser.add_argument("--read-repeats", type=int, default=5, help="reads timed (median)")
    args = parser.parse_args()

    header = (
        f"{'target':<8} {'values':>7} {'raw µs/val':>12} {'track µs/val':>14} {'ratio':>7}"
        f" {'track() med µs':>14} {'p99 µs':>11}"
    )
    rows, reads = [], []
    with tempfile.TemporaryDirectory(prefix="bench-aim-") as directory:
        raw_repo, track_repo = Path(directory, "raw"), Path(directory, "track")
        raw_repo.mkdir()
        aim.Repo.from_path(str(raw_repo), init=True)
        rows += measure("local", str(raw_repo), f"aim:{track_repo}", args.count, args.repeats)
        reads += measure_reads(
            "local", f"aim:{track_repo}", str(track_repo), args.count, args.read_repeats
        )
        if args.remote:
            with aim_server(Path(directory, "server")) as server:
                rows += measure("remote", server.url, server.url, args.remote_count, args.repeats)
                reads += measure_reads(
                    "remote", server.url, server.url, args.remote_count, args.read_repeats
                )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row)
    print(
        "\nend to end = open + track all + close (everything stored); ratio = track / raw; "
        "track() = caller-thread cost of one call"
    )
    read_header = (
        f"\n{'target':<8} {'points':>7} {'raw read ms':>12} {'track read ms':>14} {'ratio':>7}"
        f" {'status ms':>14}"
    )
    print(read_header)
    print("-" * (len(read_header) - 1))
    for row in reads:
        print(row)
    print("read = one sequence back (median of the repeats); status = open_run + view.status")


if __name__ == "__main__":
    main()
