"""track beside the trackers a user would pick instead, on one workload, in one run (issue 15).

The workload: ``--metrics`` (100) scalar metrics per step for ``--steps`` (1,000) steps, 100,000
values, written to each of:

- track, one ``run.track(value, name, step=)`` per value and one ``run.track(dict, step=)`` per
  step, into a local Aim repository and into MLflow sqlite (the default background writer);
- Aim's ``Run.track`` per value, local repository;
- MLflow on sqlite: ``MlflowClient.log_metric`` per value (synchronous), ``log_batch`` of one
  step's 100 metrics per call (synchronous), and the asynchronous mode: ``log_metric(...,
  synchronous=False)`` per value and ``mlflow.log_metrics(dict, synchronous=False)`` per step;
- W&B offline (``mode="offline"``, system stats and console capture off), ``run.log(dict)``;
- TensorBoard: tensorboardX's ``SummaryWriter.add_scalar`` per value (torch is not in this
  environment, so not torch's writer; tensorboardX writes the same event files);
- Trackio (local sqlite under ``$TRACKIO_DIR``), ``trackio.log(dict)`` per step.

For each it prints the caller-thread cost per value (µs: time spent inside the logging calls
over the values) and the durable end-to-end rate (values/s from the first call until the call
that makes the values durable returns: ``flush()`` for track and tensorboardX, ``finish()`` for
W&B and Trackio, ``mlflow.flush_async_logging()`` for MLflow's async mode, the call's own return
for Aim's and MLflow's synchronous calls), and ratios against track. Values are read back
through each tool's own reader where one exists (Aim's Repo, MlflowClient, Trackio's storage)
and the count printed. The slow per-value MLflow calls log fewer steps (``--slow-steps``); their
rates are per value, so they compare. Rounds alternate the order; each figure is the median
over the rounds. Each timed section starts right after ``gc.collect()``.

    hatch run bench:peers [--metrics 100] [--steps 1000] [--rounds 3] [--only track-aim,wandb,...]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

Result = dict[str, Any]


def names_of(count: int) -> list[str]:
    return [f"layer{index:03d}/grad_norm" for index in range(count)]


def value_of(step: int, index: int) -> float:
    return step * 0.001 + index * 1e-6


class Timer:
    """Sums the time spent inside the logging calls; marks the end-to-end span."""

    def __init__(self) -> None:
        gc.collect()
        self.inside = 0.0
        self.started = time.perf_counter()
        self.ended = 0.0

    def end(self) -> None:
        self.ended = time.perf_counter()

    def result(self, values: int, stored: int | None) -> Result:
        return {
            "caller_us": self.inside / values * 1e6,
            "durable_per_s": values / (self.ended - self.started),
            "values": values,
            "stored": stored,
        }


# -- track ---------------------------------------------------------------------------------
def track_peer(backend: str, per_step_dict: bool) -> Callable[[Path, list[str], int], Result]:
    def measure(folder: Path, names: list[str], steps: int) -> Result:
        import track_core as track

        target = (
            f"aim:{folder / 'aim'}" if backend == "aim" else f"mlflow:sqlite:///{folder / 'm.db'}"
        )
        values = len(names) * steps
        options = track.WriterOptions(max_buffered=max(100_000, values + 10), close_timeout=3600)
        run = track.start_run(target, experiment="bench-peers", writer=options)
        clock = time.perf_counter
        timer = Timer()
        for step in range(steps):
            before = clock()
            if per_step_dict:
                run.track(
                    {name: value_of(step, index) for index, name in enumerate(names)}, step=step
                )
            else:
                for index, name in enumerate(names):
                    run.track(value_of(step, index), name, step=step)
            timer.inside += clock() - before
        assert run.flush(timeout=3600), "track did not store everything"
        timer.end()
        run_id = run.backend_id
        run.close()
        assert run_id is not None
        if backend == "aim":
            stored = aim_count(str(folder / "aim"), run_id)
        else:
            stored = mlflow_count(f"sqlite:///{folder / 'm.db'}", run_id, names)
        return timer.result(values, stored)

    return measure


# -- Aim -------------------------------------------------------------------------------------
def aim_count(repo: str, run_hash: str) -> int:
    import aim
    from aim.sdk.index_manager import RepoIndexManager

    # Aim's Repo.get_run reads its index, which `aim up` brings up to date in the background
    repository = aim.Repo(repo)
    RepoIndexManager.get_index_manager(repository).index(run_hash)
    run = repository.get_run(run_hash)
    total = 0
    for metric in run.metrics():
        if not metric.name.startswith("__"):
            total += len(metric.data.numpy()[0])
    return total


def aim_track(folder: Path, names: list[str], steps: int) -> Result:
    import aim

    repo = str(folder / "aim-raw")
    run = aim.Run(
        repo=repo,
        experiment="bench-peers",
        system_tracking_interval=None,
        log_system_params=False,
        capture_terminal_logs=False,
    )
    clock = time.perf_counter
    timer = Timer()
    for step in range(steps):
        before = clock()
        for index, name in enumerate(names):
            run.track(value_of(step, index), name=name, step=step)
        timer.inside += clock() - before
    timer.end()  # a local repository holds each value when Run.track returns
    run_hash = run.hash
    run.close()
    return timer.result(len(names) * steps, aim_count(repo, run_hash))


# -- MLflow ----------------------------------------------------------------------------------
def mlflow_count(uri: str, run_id: str, names: list[str]) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return sum(len(client.get_metric_history(run_id, name)) for name in names)


def mlflow_run(folder: Path, label: str) -> tuple[Any, str, str]:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder / f'{label}.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("bench-peers")
    return client, uri, client.create_run(experiment_id).info.run_id


def mlflow_log_metric(folder: Path, names: list[str], steps: int) -> Result:
    client, uri, run_id = mlflow_run(folder, "log-metric")
    clock = time.perf_counter
    timer = Timer()
    for step in range(steps):
        before = clock()
        for index, name in enumerate(names):
            client.log_metric(run_id, name, value_of(step, index), step=step)
        timer.inside += clock() - before
    timer.end()
    client.set_terminated(run_id)
    return timer.result(len(names) * steps, mlflow_count(uri, run_id, names))


def mlflow_log_batch(folder: Path, names: list[str], steps: int) -> Result:
    from mlflow.entities import Metric

    client, uri, run_id = mlflow_run(folder, "log-batch")
    clock = time.perf_counter
    timer = Timer()
    for step in range(steps):
        before = clock()
        stamp = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[
                Metric(name, value_of(step, index), stamp, step) for index, name in enumerate(names)
            ],
        )
        timer.inside += clock() - before
    timer.end()
    client.set_terminated(run_id)
    return timer.result(len(names) * steps, mlflow_count(uri, run_id, names))


def mlflow_async(per_value: bool) -> Callable[[Path, list[str], int], Result]:
    def measure(folder: Path, names: list[str], steps: int) -> Result:
        import mlflow

        label = "async-metric" if per_value else "async-metrics"
        uri = f"sqlite:///{folder / f'{label}.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("bench-peers")
        run = mlflow.start_run()
        run_id = run.info.run_id
        clock = time.perf_counter
        timer = Timer()
        for step in range(steps):
            before = clock()
            if per_value:
                for index, name in enumerate(names):
                    mlflow.log_metric(name, value_of(step, index), step=step, synchronous=False)
            else:
                mlflow.log_metrics(
                    {name: value_of(step, index) for index, name in enumerate(names)},
                    step=step,
                    synchronous=False,
                )
            timer.inside += clock() - before
        mlflow.flush_async_logging()
        timer.end()
        mlflow.end_run()
        return timer.result(len(names) * steps, mlflow_count(uri, run_id, names))

    return measure


# -- W&B, TensorBoard, Trackio ---------------------------------------------------------------
def wandb_offline(folder: Path, names: list[str], steps: int) -> Result:
    import wandb

    settings = wandb.Settings(x_disable_stats=True, console="off", silent=True)
    run = wandb.init(
        project="bench-peers", mode="offline", dir=str(folder), settings=settings, reinit=True
    )
    clock = time.perf_counter
    timer = Timer()
    for step in range(steps):
        before = clock()
        run.log({name: value_of(step, index) for index, name in enumerate(names)}, step=step)
        timer.inside += clock() - before
    run.finish()
    timer.end()
    return timer.result(len(names) * steps, None)


def tensorboardx(folder: Path, names: list[str], steps: int) -> Result:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=str(folder / "tb"))
    clock = time.perf_counter
    timer = Timer()
    for step in range(steps):
        before = clock()
        for index, name in enumerate(names):
            writer.add_scalar(name, value_of(step, index), step)
        timer.inside += clock() - before
    writer.flush()
    timer.end()
    writer.close()
    return timer.result(len(names) * steps, None)


def trackio_local(folder: Path, names: list[str], steps: int) -> Result:
    import trackio
    from trackio.sqlite_storage import SQLiteStorage

    project = f"bench-peers-{folder.name}"
    run = trackio.init(project=project, embed=False, auto_log_cpu=False, auto_log_gpu=False)
    clock = time.perf_counter
    timer = Timer()
    for step in range(steps):
        before = clock()
        trackio.log({name: value_of(step, index) for index, name in enumerate(names)}, step=step)
        timer.inside += clock() - before
    trackio.finish()
    timer.end()
    wanted = set(names)
    logs = SQLiteStorage.get_logs(project, run=run.name)
    stored = sum(len(wanted.intersection(row)) for row in logs)
    return timer.result(len(names) * steps, stored)


# label, measure, slow (logs --slow-steps steps), what makes the values durable
PEERS: list[tuple[str, Callable[[Path, list[str], int], Result], bool, str]] = [
    ("track-aim", track_peer("aim", False), False, "flush()"),
    ("track-aim-dict", track_peer("aim", True), False, "flush()"),
    ("track-mlflow", track_peer("mlflow", False), False, "flush()"),
    ("track-mlflow-dict", track_peer("mlflow", True), False, "flush()"),
    ("aim-run-track", aim_track, False, "Run.track returns"),
    ("mlflow-log-metric", mlflow_log_metric, True, "log_metric returns"),
    ("mlflow-log-batch", mlflow_log_batch, False, "log_batch returns"),
    ("mlflow-async-metric", mlflow_async(True), True, "flush_async_logging()"),
    ("mlflow-async-metrics", mlflow_async(False), False, "flush_async_logging()"),
    ("wandb-offline", wandb_offline, False, "finish()"),
    ("tensorboardx", tensorboardx, False, "flush()"),
    ("trackio", trackio_local, False, "finish()"),
]
DESCRIPTION = {
    "track-aim": "track → local Aim, `run.track(v, name)` per value",
    "track-aim-dict": "track → local Aim, `run.track(dict)` per step",
    "track-mlflow": "track → MLflow sqlite, per value",
    "track-mlflow-dict": "track → MLflow sqlite, `run.track(dict)` per step",
    "aim-run-track": "Aim `Run.track` per value (local)",
    "mlflow-log-metric": "MLflow `log_metric` per value (sync)",
    "mlflow-log-batch": "MLflow `log_batch` of a step's metrics (sync)",
    "mlflow-async-metric": "MLflow `log_metric(synchronous=False)` per value",
    "mlflow-async-metrics": "MLflow `log_metrics(dict, synchronous=False)` per step",
    "wandb-offline": "W&B offline `run.log(dict)` per step",
    "tensorboardx": "tensorboardX `add_scalar` per value",
    "trackio": "Trackio `trackio.log(dict)` per step (local)",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--slow-steps", type=int, default=20, help="steps for per-value MLflow")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=None, help=",".join(label for label, *_ in PEERS))
    arguments = parser.parse_args()
    peers = PEERS
    if arguments.only:
        wanted = set(arguments.only.split(","))
        unknown = sorted(wanted - {label for label, *_ in PEERS})
        if unknown:
            parser.error(f"unknown peer(s) {unknown}")
        peers = [peer for peer in PEERS if peer[0] in wanted]
    names = names_of(arguments.metrics)
    results: dict[str, list[Result]] = {label: [] for label, *_ in peers}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        root = Path(tmp)
        os.environ["TRACK_SPOOL_DIR"] = str(root / "spool")
        os.environ["TRACKIO_DIR"] = str(root / "trackio")  # read when trackio is imported
        os.environ["WANDB_MODE"] = "offline"
        os.environ["WANDB_SILENT"] = "true"
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        for round_index in range(arguments.rounds):
            order = peers if round_index % 2 == 0 else list(reversed(peers))
            for label, measure, slow, _ in order:
                folder = root / f"{label}-{round_index}"
                folder.mkdir()
                steps = min(arguments.slow_steps, arguments.steps) if slow else arguments.steps
                result = measure(folder, names, steps)
                results[label].append(result)
                stored = result["stored"]
                print(
                    f"round {round_index + 1} {label}: {result['caller_us']:.2f} µs/value on the "
                    f"caller, {result['durable_per_s']:,.0f} values/s durable, "
                    + (
                        "not read back"
                        if stored is None
                        else f"{stored:,} / {result['values']:,} read back"
                    ),
                    flush=True,
                )
    print_table(results, peers, arguments)


def print_table(
    results: dict[str, list[Result]],
    peers: list[tuple[str, Callable[[Path, list[str], int], Result], bool, str]],
    arguments: argparse.Namespace,
) -> None:
    rows = {
        label: {
            "caller_us": statistics.median(r["caller_us"] for r in results[label]),
            "durable_per_s": statistics.median(r["durable_per_s"] for r in results[label]),
            "values": results[label][-1]["values"],
            "stored": [r["stored"] for r in results[label]],
        }
        for label, *_ in peers
    }
    reference = rows.get("track-aim") or next(iter(rows.values()))
    print()
    print(
        f"{arguments.metrics} metrics x {arguments.steps} steps, {arguments.rounds} rounds "
        "(medians); ratios: peer's caller cost / track's, track's durable rate / peer's "
        "(against track per value into local Aim, and track into MLflow sqlite for MLflow's rows)"
    )
    print(
        "| writer | caller µs per value | durable values/s (until) | caller cost vs track "
        "| track's durable rate vs it | read back / values |"
    )
    print("|---|---|---|---|---|---|")
    for label, _measure, _slow, until in peers:
        row = rows[label]
        against = reference
        if label.startswith("mlflow") and "track-mlflow" in rows:
            against = rows["track-mlflow"]
        stored = row["stored"]
        read = (
            "not read back"
            if stored[-1] is None
            else ", ".join(f"{value:,}" for value in sorted(set(stored))) + f" / {row['values']:,}"
        )
        print(
            f"| {DESCRIPTION[label]} | {row['caller_us']:.2f} | {row['durable_per_s']:,.0f} "
            f"({until}) | {row['caller_us'] / reference['caller_us']:.1f}x "
            f"| {against['durable_per_s'] / row['durable_per_s']:.2f}x | {read} |"
        )


if __name__ == "__main__":
    main()
