"""What the system metrics sampler costs the training thread, and what one sample costs.

The sampler runs in its own thread, so its cost on the training thread is what it takes from it:
the GIL while it reads counters, and the run's lock while it tracks. Measured in the same run,
rounds alternating between "no sampler" and "sampler at interval X":

1. ``track()`` on the training thread (median and p99, µs), one scalar per call;
2. a CPU-bound training step (pure Python work plus 5 ``track()`` calls, median µs per step);
3. one sample on the sampler's thread (ms): track's reading of every metric, beside Aim's own
   (``aim.ext.resource.stat.Stat``) and MLflow's (``mlflow.system_metrics`` monitors'
   ``collect_metrics``) where they are installed.

    python benchmarks/bench_system_metrics.py [--calls 200000] [--steps 3000] [--rounds 5]

Needs track-core and psutil (``hatch run resilience:python benchmarks/bench_system_metrics.py``
also has Aim and MLflow for part 3).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import track_core as track
from track_core import system_metrics

INTERVALS = (10.0, 1.0, 0.1)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _with_sampler(interval: float | None, body: Callable[[Any], float]) -> tuple[float, int]:
    """Run ``body(run)`` on a fresh memory run with or without a sampler; (its result, samples)."""
    run = track.start_run(
        f"memory:{uuid.uuid4().hex}", writer=track.WriterOptions(max_buffered=2_000_000)
    )
    sampler = None
    if interval is not None:
        sampler = system_metrics.start_sampler(run, interval=interval)
        time.sleep(0.2)  # past the first sample
    gc.collect()
    try:
        result = body(run)
    finally:
        samples = sampler.samples if sampler is not None else 0
        if sampler is not None:
            sampler.stop()
        run.close()
    return result, samples


def track_calls(count: int) -> Callable[[Any], float]:
    def body(run: Any) -> float:
        clock = time.perf_counter_ns
        durations = []
        append = durations.append
        context = {"subset": "train"}
        for step in range(count):
            before = clock()
            run.track(step * 0.001, "loss", step=step, context=context)
            append((clock() - before) / 1000)
        body.p99 = percentile(durations, 0.99)  # type: ignore[attr-defined]
        return statistics.median(durations)

    return body


def training_steps(count: int) -> Callable[[Any], float]:
    """The median step (µs): robust to the other processes of a shared machine taking the CPU
    for a while, which a mean over the loop is not."""

    def body(run: Any) -> float:
        context = {"subset": "train"}
        clock = time.perf_counter_ns
        durations = []
        for step in range(count):
            before = clock()
            total = 0
            for i in range(3000):  # the step's Python work
                total += i * i
            for name in ("loss", "acc", "lr", "grad_norm", "throughput"):
                run.track(total * 1e-12, name, step=step, context=context)
            durations.append((clock() - before) / 1000)
        return statistics.median(durations)

    return body


def part_1_and_2(calls: int, steps: int, rounds: int) -> None:
    print(f"1. track() on the training thread, {calls} calls per round, {rounds} rounds")
    print(f"2. a CPU-bound step (3000 Python multiply-adds + 5 track() calls), {steps} steps\n")
    print(
        f"{'sampler':>14} | {'track() median µs':>18} {'p99 µs':>8} {'ratio':>6} | "
        f"{'step µs':>8} {'ratio':>6} {'range':>13} | samples"
    )
    settings: list[float | None] = [None, *INTERVALS]
    med: dict[float | None, list[float]] = {s: [] for s in settings}
    p99: dict[float | None, list[float]] = {s: [] for s in settings}
    step_us: dict[float | None, list[float]] = {s: [] for s in settings}
    taken: dict[float | None, int] = {s: 0 for s in settings}
    for round_index in range(rounds):
        order = settings if round_index % 2 == 0 else list(reversed(settings))
        for setting in order:
            body = track_calls(calls)
            value, samples = _with_sampler(setting, body)
            med[setting].append(value)
            p99[setting].append(body.p99)  # type: ignore[attr-defined]
            value, more = _with_sampler(setting, training_steps(steps))
            step_us[setting].append(value)
            taken[setting] += samples + more
    for setting in settings:
        # ratios per round (each against the no-sampler run of the same round), then the median
        track_ratios = [a / b for a, b in zip(med[setting], med[None], strict=True)]
        step_ratios = [a / b for a, b in zip(step_us[setting], step_us[None], strict=True)]
        label = "none" if setting is None else f"every {setting:g} s"
        print(
            f"{label:>14} | {statistics.median(med[setting]):>18.3f} "
            f"{statistics.median(p99[setting]):>8.2f} {statistics.median(track_ratios):>6.3f} | "
            f"{statistics.median(step_us[setting]):>8.1f} {statistics.median(step_ratios):>6.3f} "
            f"{min(step_ratios):>6.3f}-{max(step_ratios):<6.3f} | {taken[setting]}"
        )


def _time_ms(read: Callable[[], object], count: int) -> float:
    read()  # warm
    times = []
    for _ in range(count):
        started = time.perf_counter()
        read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def part_3(count: int) -> None:
    print(f"\n3. one sample on the sampler's thread (median of {count}, ms)")
    unsampled: dict[str, str] = {}
    probe = system_metrics._Probe(None, os.path.abspath(os.sep), unsampled)
    probe.prime()
    ours = _time_ms(probe.read, count)
    metrics = len(probe.read())
    probe.close()
    print(f"{'track':>28}: {ours:7.3f} ms ({metrics} metrics)")
    try:
        import psutil
        from aim.ext.resource.stat import Stat

        process = psutil.Process()
        aim_ms = _time_ms(lambda: Stat(process), count)
        print(
            f"{'aim Stat(process)':>28}: {aim_ms:7.3f} ms (4 metrics + GPUs)  "
            f"track/aim = {ours / aim_ms:.2f}"
        )
    except ImportError:
        print(f"{'aim':>28}: not installed")
    try:
        from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
        from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
        from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor

        monitors = [CPUMonitor(), DiskMonitor(), NetworkMonitor()]

        def mlflow_sample() -> None:
            for monitor in monitors:
                monitor.collect_metrics()
                monitor.clear_metrics()

        mlflow_ms = _time_ms(mlflow_sample, count)
        print(
            f"{'mlflow monitors':>28}: {mlflow_ms:7.3f} ms (8 metrics + GPUs)  "
            f"track/mlflow = {ours / mlflow_ms:.2f}"
        )
    except ImportError:
        print(f"{'mlflow':>28}: not installed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs\n")
    part_1_and_2(args.calls, args.steps, args.rounds)
    part_3(args.samples)


if __name__ == "__main__":
    main()
