"""track-tensorboard against TensorBoard's own writer and the raw backend SDKs, in the same run.

1. ``SummaryWriter.add_scalar`` on the caller's thread: torch's own writer (writing its event
   file) beside track's drop-in writer (``tee=False``) on each backend, and torch's writer
   patched by ``track_tensorboard.patch()`` (its own work plus track's). Median µs per call over
   the rounds (each round: the median of its calls), and the ratio to torch's.
2. Import: values per second of ``import_logdir`` (reading the event files with tensorboard's
   reader, writing, closing the run) into Aim and MLflow, against that backend's best raw write
   path on the same values (``aim.Run.track`` per value; ``MlflowClient.log_batch`` of 1000
   rows), which neither reads the event files nor converts anything.

Each timed section starts right after ``gc.collect()``; rounds alternate the sides.

    python benchmarks/bench_tensorboard.py [--calls 20000] [--values 20000] [--rounds 5]

Needs the tensorboard-torch environment: ``hatch run tensorboard-torch:bench``.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import track_core as track
import track_tensorboard
from track_tensorboard import SummaryWriter, import_logdir

TAGS = ("train/loss", "val/loss", "train/accuracy", "lr")
WAIT = track.WriterOptions(close_timeout=3600.0)


def per_call(add: Callable[[str, float, int], Any], calls: int) -> float:
    """The median µs of ``calls`` add_scalar calls, each timed on its own."""
    clock = time.perf_counter_ns
    durations = []
    append = durations.append
    gc.collect()
    for step in range(calls):
        before = clock()
        add("train/loss", step * 0.001, step)
        append(clock() - before)
    return statistics.median(durations) / 1000


def bench_add_scalar(folder: Path, calls: int, rounds: int) -> list[tuple[str, list[float]]]:
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    backends = {
        "memory": "memory:bench",
        "aim local": f"aim:{folder / 'aim-calls'}",
        "mlflow sqlite": f"mlflow:sqlite:///{folder / 'calls.db'}",
    }
    results: dict[str, list[float]] = {"torch": []}
    for round_number in range(rounds):
        torch_writer = TorchWriter(str(folder / f"torch-{round_number}"))
        results["torch"].append(per_call(torch_writer.add_scalar, calls))
        torch_writer.close()
        for label, backend in backends.items():
            writer = SummaryWriter(
                folder / f"{label}-{round_number}",
                backend=backend,
                experiment="bench-calls",
                writer_options=WAIT,  # close() waits until every value is stored (untimed)
            )
            results.setdefault(f"track ({label})", []).append(per_call(writer.add_scalar, calls))
            writer.close()
        with track_tensorboard.patch("memory:bench-patched"):
            patched = TorchWriter(str(folder / f"patched-{round_number}"))
            results.setdefault("torch patched (memory)", []).append(
                per_call(patched.add_scalar, calls)
            )
            patched.close()
    return list(results.items())


def write_logs(folder: Path, values: int) -> list[tuple[str, float, int, float]]:
    """An event file of ``values`` scalars (4 tags) by torch's writer; returns them as read back
    by tensorboard's reader: (tag, value, step, wall time)."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea
    from tensorboard.util import tensor_util
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    writer = TorchWriter(str(folder / "run"), max_queue=1000)
    for index in range(values):
        writer.add_scalar(TAGS[index % len(TAGS)], index * 0.001, index // len(TAGS))
    writer.close()
    accumulator = pea.EventAccumulator(str(folder / "run"), size_guidance={pea.TENSORS: 0})
    accumulator.Reload()
    rows = []
    for tag in accumulator.Tags()["tensors"]:
        for event in accumulator.Tensors(tag):
            value = float(tensor_util.make_ndarray(event.tensor_proto).item())
            rows.append((tag, value, event.step, event.wall_time))
    return rows


def raw_aim(repo: str, rows: list[tuple[str, float, int, float]]) -> float:
    import aim

    from track_tensorboard.names import split_tag

    named = [(*split_tag(tag), value, step) for tag, value, step, _ in rows]
    run = aim.Run(
        repo=repo,
        experiment="bench-raw",
        system_tracking_interval=None,
        log_system_params=False,
        capture_terminal_logs=False,
    )
    gc.collect()
    started = time.perf_counter()
    for name, context, value, step in named:
        run.track(value, name=name, step=step, context=context)
    elapsed = time.perf_counter() - started
    run.close()
    return len(rows) / elapsed


def raw_mlflow(uri: str, rows: list[tuple[str, float, int, float]]) -> float:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from track_core import Context
    from track_mlflow.keys import encode_key
    from track_tensorboard.names import split_tag

    keys = {tag: encode_key(*_as_context(split_tag(tag), Context)) for tag in TAGS}
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name("bench-raw")
    experiment_id = found.experiment_id if found else client.create_experiment("bench-raw")
    run = client.create_run(experiment_id)
    gc.collect()
    started = time.perf_counter()
    batch: list[Metric] = []
    for index, (tag, value, step, wall_time) in enumerate(rows):
        batch.append(Metric(keys[tag], value, int(wall_time * 1000), step))
        if len(batch) == 1000 or index == len(rows) - 1:
            client.log_batch(run.info.run_id, metrics=batch)
            batch = []
    elapsed = time.perf_counter() - started
    client.set_terminated(run.info.run_id)
    return len(rows) / elapsed


def _as_context(found: tuple[str, Any], context_type: Any) -> tuple[str, Any]:
    return found[0], context_type(found[1])


def timed_import(logs: Path, backend: str) -> float:
    gc.collect()
    started = time.perf_counter()
    report = import_logdir(logs, backend, "bench-import", progress=False)
    elapsed = time.perf_counter() - started
    return report.values / elapsed


def timed_read(logs: Path) -> float:
    from track_tensorboard.importer import read_run_dir
    from track_tensorboard.names import Namer

    gc.collect()
    started = time.perf_counter()
    data = read_run_dir(logs / "run", Namer())
    return len(data.values) / (time.perf_counter() - started)


def bench_import(
    folder: Path, values: int, rounds: int
) -> list[tuple[str, list[float], list[float]]]:
    logs = folder / "logs"
    rows = write_logs(logs, values)
    assert len(rows) == values
    results: dict[str, tuple[list[float], list[float]]] = {
        "aim local": ([], []),
        "mlflow sqlite": ([], []),
        "(reading the event files only)": ([], []),
    }
    for round_number in range(rounds):
        repo = folder / f"aim-import-{round_number}"
        results["aim local"][0].append(timed_import(logs, f"aim:{repo}"))
        results["aim local"][1].append(raw_aim(str(folder / f"aim-raw-{round_number}"), rows))
        database = f"sqlite:///{folder / f'import-{round_number}.db'}"
        results["mlflow sqlite"][0].append(timed_import(logs, f"mlflow:{database}"))
        raw_database = f"sqlite:///{folder / f'raw-{round_number}.db'}"
        results["mlflow sqlite"][1].append(raw_mlflow(raw_database, rows))
        results["(reading the event files only)"][0].append(timed_read(logs))
    return [(label, imported, raw) for label, (imported, raw) in results.items()]


def spread(samples: list[float], digits: int) -> str:
    return f"{min(samples):.{digits}f}-{max(samples):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--values", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--import-rounds", type=int, default=3)
    arguments = parser.parse_args()
    warnings.simplefilter("ignore")
    print(
        f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-tensorboard-") as directory:
        folder = Path(directory)
        calls = bench_add_scalar(folder, arguments.calls, arguments.rounds)
        torch_median = statistics.median(calls[0][1])
        print(
            f"\nadd_scalar on the caller's thread ({arguments.calls} calls x {arguments.rounds} rounds)"
        )
        print("| writer | median µs per call (rounds) | torch's / this |")
        print("|---|---|---|")
        for label, samples in calls:
            median = statistics.median(samples)
            ratio = "-" if label == "torch" else f"{torch_median / median:.1f}x"
            print(f"| {label} | {median:.2f} ({spread(samples, 2)}) | {ratio} |")
        imports = bench_import(folder, arguments.values, arguments.import_rounds)
        print(
            f"\nimport of {arguments.values} scalars (one run dir, 4 tags) x "
            f"{arguments.import_rounds} rounds: values/s"
        )
        print(
            "| backend | import values/s (rounds) | raw best write values/s (rounds) | import / raw |"
        )
        print("|---|---|---|---|")
        for label, imported, raw in imports:
            median = statistics.median(imported)
            if raw:
                raw_median = statistics.median(raw)
                print(
                    f"| {label} | {median:,.0f} ({spread(imported, 0)}) | {raw_median:,.0f} "
                    f"({spread(raw, 0)}) | {median / raw_median:.2f}x |"
                )
            else:
                print(f"| {label} | {median:,.0f} ({spread(imported, 0)}) | - | - |")


if __name__ == "__main__":
    main()
