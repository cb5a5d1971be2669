"""The forms of ``track()`` on the caller's thread: one value, a dict of values, a given timestamp;
beside Aim's own ``Run.track`` of the same dict, in the same run.

    hatch run resilience:python benchmarks/bench_track_calls.py [--values 200000] [--rounds 5]

Prints the median cost per value (µs) over the rounds and the ratios. The writer stores into
the memory backend, so what is measured is the call, not storage.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

import track_core as track

KEYS = [f"layer{i}/grad_norm" for i in range(10)]


def per_value(work: Callable[[int], None], calls: int, values_per_call: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for step in range(calls):
        work(step)
    return (time.perf_counter() - start) / (calls * values_per_call) * 1e6


def one_round(count: int, aim_count: int, results: dict[str, list[float]]) -> None:
    calls = count // len(KEYS)
    run = track.start_run("memory:bench-calls", writer=track.WriterOptions(max_buffered=count * 2))
    values = dict.fromkeys(KEYS, 0.5)
    stamp = time.time()

    def single(step: int) -> None:
        for key in KEYS:
            run.track(0.5, key, step=step)

    measured: dict[str, Callable[[int], None]] = {
        "track(value, name)": single,
        "track({10 values})": lambda step: run.track(values, step=step + calls),
        "track({10 values}, timestamp=)": lambda step: run.track(
            values, step=step + 2 * calls, timestamp=stamp
        ),
    }
    for name, work in measured.items():
        results.setdefault(name, []).append(per_value(work, calls, len(KEYS)))
    run.close()
    try:
        import aim
    except ImportError:
        return
    folder = tempfile.mkdtemp(prefix="bench-calls-aim-")  # Aim finalizes its files at exit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aim_run = aim.Run(repo=folder, system_tracking_interval=None)
        results.setdefault("aim Run.track({10 values})", []).append(
            per_value(
                lambda step: aim_run.track(values, step=step), aim_count // len(KEYS), len(KEYS)
            )
        )
        aim_run.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--aim-values", type=int, default=20_000)
    arguments = parser.parse_args()
    results: dict[str, list[float]] = {}
    for _ in range(arguments.rounds):
        one_round(arguments.values, arguments.aim_values, results)
    single = statistics.median(results["track(value, name)"])
    print(f"{'call':<34} {'µs per value (median)':>22} {'vs track(value, name)':>22}")
    for name, samples in results.items():
        median = statistics.median(samples)
        print(f"{name:<34} {median:>22.3f} {median / single:>21.2f}x")


if __name__ == "__main__":
    main()
