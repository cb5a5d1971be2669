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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--aim-values", type=int, default=20_000)
    arguments = parser.parse_args()
    calls = arguments.values // len(KEYS)
    results: dict[str, list[float]] = {}
    options = track.WriterOptions(max_buffered=arguments.values * 2)
    for _ in range(arguments.rounds):
        run = track.start_run("memory:bench-calls", writer=options)
        values = dict.fromkeys(KEYS, 0.5)
        results.setdefault("track(value, name)", []).append(
            per_value(
                lambda step: [run.track(0.5, key, step=step) for key in KEYS] and None,
                calls,
                len(KEYS),
            )
        )
        results.setdefault("track({10 values})", []).append(
            per_value(lambda step: run.track(values, step=step + calls), calls, len(KEYS))
        )
        stamp = time.time()
        results.setdefault("track({10 values}, timestamp=)", []).append(
            per_value(
                lambda step: run.track(values, step=step + 2 * calls, timestamp=stamp),
                calls,
                len(KEYS),
            )
        )
        run.close()
        try:
            import aim
        except ImportError:
            continue
        folder = tempfile.mkdtemp(prefix="bench-calls-aim-")  # Aim finalizes its files at exit
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aim_run = aim.Run(repo=folder, system_tracking_interval=None)
            aim_calls = arguments.aim_values // len(KEYS)
            results.setdefault("aim Run.track({10 values})", []).append(
                per_value(lambda step: aim_run.track(values, step=step), aim_calls, len(KEYS))
            )
            aim_run.close()
    single = statistics.median(results["track(value, name)"])
    print(f"{'call':<34} {'µs per value (median)':>22} {'vs track(value, name)':>22}")
    for name, samples in results.items():
        median = statistics.median(samples)
        print(f"{name:<34} {median:>22.3f} {median / single:>21.2f}x")


if __name__ == "__main__":
    main()
