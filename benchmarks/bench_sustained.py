"""Heavy logging under sustained load (issue 15): 1,000 metrics per step at 10 steps per second.

Against each backend in turn (local Aim, an ``aim server``, MLflow sqlite, an ``mlflow server``
on sqlite, and with ``--only mlflow-postgres`` an ``mlflow server`` on PostgreSQL, as a team runs
it; that one needs ``psycopg2`` and PostgreSQL, see ``track_mlflow.testing.postgres_server``;
the servers started here on 127.0.0.1 and free ports, their stores in a temporary directory),
a training loop paced by the wall clock calls ``run.track()`` 1,000 times per step, 10 steps per
second (10,000 values/s), for ``--seconds`` (default 300) of wall-clock time: a backend that
falls behind makes ``track()`` wait and so tracks fewer steps. Then ``flush()`` waits at most
``--drain`` seconds (default 300) and ``close()`` its own bounded time. Each backend runs in a
child process of its own, so its memory figures are its own. Per backend it reports:

- ``BackPressureWarning``: whether one was raised (every warning is recorded, and listed);
- the longest time one step's 1,000 ``track()`` calls took on the training thread (and p99), and
  how many steps started more than half a period late;
- the training process's RSS, sampled every 2 s: first, max, last, and its trend (MB per minute,
  least squares over the samples after the first 30 s: flat is about 0);
- the lag between tracking a value and its being stored, two ways:
  * writer: from the writer's own accounting (``run.pending``, sampled every 10 ms, between
    steps): for each step, the time from its first ``track()`` call until every value of the
    step had been handed to the backend and its call returned; median and max over the steps;
  * reader: a separate process polls the backend's own SDK every 2 s (``MlflowClient.get_run``,
    ``aim.Repo(...).get_run(...).get_metric``) for the newest step of the first metric; the age
    of what it saw (read finished minus that step's first ``track()``) bounds the lag from above;
    median and max over the polls;
- at the end, after ``close()``: how many values the backend holds, counted through its own SDK
  (every metric's history; for the Aim server its repository, read from disk), against how many
  were tracked; counted twice: by the training process right after ``close()``, and by a fresh
  process once the training process has exited (the table shows the second, and the first where
  they differ; a short count keeps the stores, for a look).

    hatch run bench:sustained [--seconds 300] [--drain 300] [--only aim-local,aim-server,...]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BACKENDS = ("aim-local", "aim-server", "mlflow-sqlite", "mlflow-server")
#: Run only when named in --only: an mlflow server on a PostgreSQL server started here.
OPTIONAL = ("mlflow-postgres",)
PROBE = "m0000"  # the metric the reader process polls; its value is the step


def metric_names(count: int) -> list[str]:
    return [f"m{index:04d}" for index in range(count)]


# -- the training process -------------------------------------------------------------------
def train(arguments: argparse.Namespace) -> dict[str, Any]:
    import psutil

    import track_core as track

    names = metric_names(arguments.metrics)
    rate = arguments.rate
    steps = int(arguments.seconds * rate)
    process = psutil.Process()
    recorded: list[warnings.WarningMessage] = []
    catcher = warnings.catch_warnings(record=True)
    recorded = catcher.__enter__()  # every thread's warnings, from here on
    warnings.simplefilter("always")

    run = track.start_run(arguments.target, experiment="bench-sustained")
    run["hparams"] = {"metrics": arguments.metrics, "rate": rate}
    run.flush(timeout=60)  # from here on everything put is a point
    backend_id = run.backend_id
    Path(arguments.id_file).write_text(json.dumps({"run_id": backend_id}))

    step_lock = threading.Lock()  # held by the training thread during a step's track() calls
    state = {"done": 0}  # values put by finished steps
    samples_t: list[float] = []
    samples_stored: list[int] = []
    rss: list[tuple[float, int]] = []
    stop = threading.Event()

    def monitor() -> None:
        next_rss = 0.0
        while not stop.is_set():
            with step_lock:
                pending = run.pending
                now = time.time()
                samples_t.append(now)
                samples_stored.append(state["done"] - pending)
            if now >= next_rss:
                rss.append((now, process.memory_info().rss))
                next_rss = now + 2.0
            stop.wait(0.01)

    load_start = os.getloadavg()
    watcher = threading.Thread(target=monitor, name="bench-monitor", daemon=True)
    starts: list[float] = []
    durations: list[float] = []
    late = 0
    clock = time.perf_counter
    started = time.time()
    origin = clock()
    watcher.start()
    for step in range(steps):
        if clock() - origin >= arguments.seconds:
            break  # the duration is wall-clock time: a backend that fell behind tracks less
        due = origin + step / rate
        wait = due - clock()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.5 / rate:
            late += 1
        with step_lock:
            starts.append(time.time())
            before = clock()
            run.track(float(step), PROBE, step=step)
            for index in range(1, len(names)):
                run.track(step + index * 1e-4, names[index], step=step)
            durations.append(clock() - before)
            state["done"] += len(names)
    tracked_until = time.time()
    tracked_s = clock() - origin
    pending_at_end = run.pending
    flushed = run.flush(timeout=arguments.drain)
    flush_s = time.time() - tracked_until
    stop.set()
    watcher.join()
    samples_t.append(time.time())
    samples_stored.append(state["done"] - run.pending)
    left_after_flush = run.pending
    run.close()
    catcher.__exit__(None, None, None)

    # Writer lag per step: from its first track() until all of its values were stored.
    lags = []
    for step, start in enumerate(starts):
        needed = (step + 1) * len(names)
        index = bisect.bisect_left(samples_stored, needed)  # stored counts never decrease
        if index < len(samples_t):
            lags.append(samples_t[index] - start)
    tail = [(t - started, value) for t, value in rss if t - started >= 30] or [
        (t - started, value) for t, value in rss
    ]
    kinds: dict[str, int] = {}
    for message in recorded:
        kind = type(message.message).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "steps": len(starts),
        "steps_planned": steps,
        "tracked": len(starts) * len(names),
        "tracked_s": tracked_s,
        "pending_at_end": pending_at_end,
        "left_after_flush": left_after_flush,
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "starts": starts,
        "late_steps": late,
        "step_ms_max": max(durations) * 1000,
        "step_ms_p99": sorted(durations)[int(0.99 * (len(durations) - 1))] * 1000,
        "step_ms_median": statistics.median(durations) * 1000,
        "steps_not_stored": len(starts) - len(lags),
        "lag_median": statistics.median(lags),
        "lag_max": max(lags),
        "flush_s": flush_s,
        "flushed": flushed,
        "rss_first": rss[0][1],
        "rss_max": max(value for _, value in rss),
        "rss_last": rss[-1][1],
        "rss_slope_mb_min": slope(tail) * 60 / 2**20,
        "warnings": kinds,
        "warning_texts": sorted({str(message.message)[:200] for message in recorded})[:10],
        "back_pressure": kinds.get("BackPressureWarning", 0),
        "run_id": backend_id,
    }


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope (per second) of (seconds, bytes)."""
    if len(points) < 2:
        return 0.0
    xs = [x for x, _ in points]
    ys = [float(y) for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    if denominator == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator


# -- the backend's own SDK -------------------------------------------------------------------
def aim_repo(location: str) -> Any:
    import aim

    return aim.Repo(location) if location.startswith("aim://") else aim.Repo.from_path(location)


def newest_probe_step(kind: str, location: str, run_id: str) -> int | None:
    """The newest step of the probe metric the backend's SDK reads now."""
    if kind.startswith("mlflow"):
        from mlflow.tracking import MlflowClient

        metrics = MlflowClient(tracking_uri=location).get_run(run_id).data.metrics
        value = metrics.get(PROBE)
        return None if value is None else int(value)
    import aim
    from aim.sdk.index_manager import RepoIndexManager
    from aim.storage.context import Context

    # A fresh Repo each time (a cached one keeps a read-only snapshot), and the run indexed
    # first, as `aim up` does in the background: Aim's Repo.get_run reads the index only.
    repo = aim.Repo(location)
    RepoIndexManager.get_index_manager(repo).index(run_id)
    run = repo.get_run(run_id)
    if run is None:
        return None
    metric = run.get_metric(PROBE, Context({}))
    if metric is None:
        return None
    steps, _ = metric.data.numpy()
    return int(steps[-1]) if len(steps) else None


def count_stored(kind: str, location: str, run_id: str, names: list[str]) -> dict[str, int]:
    """Values and distinct (metric, step) pairs the backend holds, read through its own SDK."""
    values = distinct = 0
    if kind.startswith("mlflow"):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=location)
        for name in names:
            history = client.get_metric_history(run_id, name)
            values += len(history)
            distinct += len({metric.step for metric in history})
        return {"values": values, "distinct": distinct}
    run = aim_repo(location).get_run(run_id)
    per_metric: dict[str, list[int]] = {}
    for metric in run.metrics():
        if metric.name.startswith("__"):
            continue  # Aim's own system sequences
        steps, _ = metric.data.numpy()
        values += len(steps)
        distinct += len(set(steps.tolist()))
        per_metric[metric.name] = steps.tolist()
    counted: dict[str, Any] = {"values": values, "distinct": distinct}
    if per_metric:
        longest = max(len(steps) for steps in per_metric.values())
        short = {name: steps for name, steps in per_metric.items() if len(steps) < longest}
        counted["metrics"] = len(per_metric)
        counted["shortest"] = min(len(steps) for steps in per_metric.values())
        counted["longest"] = longest
        if short:
            name, steps = sorted(short.items())[0]
            held = set(steps)
            missing = [step for step in range(longest) if step not in held]
            counted["short_metrics"] = len(short)
            counted["example"] = {"name": name, "missing": missing[:5] + missing[-5:]}
    return counted


def reader(arguments: argparse.Namespace) -> None:
    """Poll the newest stored step of the probe metric until told to stop; one JSON line each."""
    id_file = Path(arguments.id_file)
    while not id_file.exists() or not id_file.read_text():
        time.sleep(0.2)
    run_id = json.loads(id_file.read_text())["run_id"]
    stop = Path(arguments.stop_file)
    with open(arguments.out, "w") as out:
        while not stop.exists():
            began = time.time()
            try:
                step = newest_probe_step(arguments.kind, arguments.location, run_id)
            except Exception as error:  # a read that failed is reported, not fatal
                out.write(json.dumps({"error": repr(error)[:200], "t": time.time()}) + "\n")
            else:
                out.write(json.dumps({"t": time.time(), "began": began, "step": step}) + "\n")
            out.flush()
            time.sleep(max(0.0, 2.0 - (time.time() - began)))


# -- the driver ------------------------------------------------------------------------------
@contextlib.contextmanager
def location(folder: Path, label: str) -> Iterator[tuple[str, str]]:
    """(track backend string, SDK location) of one backend; its server runs meanwhile."""
    from track_aim.testing import aim_server
    from track_mlflow.testing import mlflow_server, postgres_server

    if label == "aim-local":
        repo = str(folder / "aim-local")
        yield f"aim:{repo}", repo
    elif label == "aim-server":
        # The SDK reads the repository the server writes, from its directory: reading through
        # the server's RPC takes about 1 s per 1,000 values and competes with the writes.
        with aim_server(folder / "aim-server") as server:
            yield server.url, str(folder / "aim-server")
    elif label == "mlflow-sqlite":
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        yield f"mlflow:{uri}", uri
    elif label == "mlflow-postgres":
        with postgres_server() as postgres:
            store = postgres.uri
            with mlflow_server(folder / "mlflow-postgres", store_uri=store) as mlflow:
                yield f"mlflow:{mlflow.url}", mlflow.url
    else:
        with mlflow_server(folder / "mlflow-server") as mlflow:
            yield f"mlflow:{mlflow.url}", mlflow.url


def measure(
    label: str, target: str, location: str, arguments: argparse.Namespace
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"sustained-{label}-"))
    id_file, stop_file = folder / "run-id.json", folder / "stop"
    result_file, reads_file = folder / "result.json", folder / "reads.jsonl"
    script = str(Path(__file__).resolve())
    environment = dict(os.environ, TRACK_SPOOL_DIR=str(folder / "spool"))
    reading = subprocess.Popen(
        [sys.executable, script, "--role", "reader", "--kind", label, "--location", location,
         "--id-file", str(id_file), "--stop-file", str(stop_file), "--out", str(reads_file)],
        env=environment,
    )  # fmt: skip
    try:
        subprocess.run(
            [sys.executable, script, "--role", "train", "--kind", label, "--target", target,
             "--location", location, "--id-file", str(id_file), "--out", str(result_file),
             "--seconds", str(arguments.seconds), "--metrics", str(arguments.metrics),
             "--rate", str(arguments.rate), "--drain", str(arguments.drain)],
            env=environment,
            check=True,
        )  # fmt: skip
    finally:
        stop_file.write_text("stop")
        try:
            reading.wait(60)
        except subprocess.TimeoutExpired:
            reading.kill()
    result: dict[str, Any] = json.loads(result_file.read_text())
    # Counted again by a fresh process, the training process gone: right after close() a
    # reader may open a store its writer is still flushing or compacting.
    count_file = folder / "count.json"
    subprocess.run(
        [sys.executable, script, "--role", "count", "--kind", label, "--location", location,
         "--id-file", str(id_file), "--out", str(count_file), "--metrics", str(arguments.metrics)],
        env=environment,
        check=True,
    )  # fmt: skip
    result["stored_later"] = json.loads(count_file.read_text())
    starts: list[float] = result.pop("starts")
    ages, errors = [], 0
    reads = reads_file.read_text().splitlines()
    shutil.rmtree(folder, ignore_errors=True)
    for line in reads:
        read = json.loads(line)
        if "error" in read:
            errors += 1
        elif read["step"] is not None and read["t"] <= result_started_end(starts):
            ages.append(read["t"] - starts[read["step"]])
    result["reader_polls"] = len(ages)
    result["reader_errors"] = errors
    result["reader_age_median"] = statistics.median(ages) if ages else None
    result["reader_age_max"] = max(ages) if ages else None
    return result


def result_started_end(starts: list[float]) -> float:
    """Polls after the last step (once tracking stopped) say nothing about lag under load."""
    return starts[-1] + 1.0


def train_role(arguments: argparse.Namespace) -> None:
    result = train(arguments)
    names = metric_names(arguments.metrics)
    began = time.time()
    result["stored"] = count_stored(arguments.kind, arguments.location, result["run_id"], names)
    result["count_s"] = time.time() - began
    Path(arguments.out).write_text(json.dumps(result))


def count_role(arguments: argparse.Namespace) -> None:
    run_id = json.loads(Path(arguments.id_file).read_text())["run_id"]
    names = metric_names(arguments.metrics)
    counted = count_stored(arguments.kind, arguments.location, run_id, names)
    Path(arguments.out).write_text(json.dumps(counted))


def print_table(results: dict[str, dict[str, Any]], arguments: argparse.Namespace) -> None:
    print()
    print(
        f"{arguments.metrics} metrics per step, {arguments.rate:g} steps/s "
        f"({arguments.metrics * arguments.rate:,.0f} values/s) for {arguments.seconds:g} s of "
        "wall-clock time per backend"
    )
    print(
        "| backend | BackPressureWarning | steps tracked / due (late) "
        "| a step's track() calls: max ms (p99, median) "
        "| RSS MB first / max / last (trend MB/min) | writer lag s: median / max "
        "| reader age s: median / max (polls) | queued when tracking stopped, flush() s "
        "| stored via the SDK / tracked (distinct) | load avg start / end |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    mb = 2**20
    for label, row in results.items():
        other = {k: v for k, v in row["warnings"].items() if k != "BackPressureWarning"}
        pressure = "yes" if row["back_pressure"] else "no"
        if other:
            pressure += " (other: " + ", ".join(f"{k} x{v}" for k, v in other.items()) + ")"
        reader_age = (
            f"{row['reader_age_median']:.2f} / {row['reader_age_max']:.2f} ({row['reader_polls']})"
            if row["reader_age_median"] is not None
            else f"- ({row['reader_errors']} errors)"
        )
        stored = row["stored_later"]
        if row["stored"]["values"] != stored["values"]:
            stored_text = (
                f"{stored['values']:,} / {row['tracked']:,} ({stored['distinct']:,}); right "
                f"after close() {row['stored']['values']:,}"
            )
        else:
            stored_text = f"{stored['values']:,} / {row['tracked']:,} ({stored['distinct']:,})"
        not_stored = (
            f", {row['steps_not_stored']} steps not stored by then"
            if row["steps_not_stored"]
            else ""
        )
        print(
            f"| {label} | {pressure} | {row['steps']:,} / {row['steps_planned']:,} "
            f"({row['late_steps']:,}) | {row['step_ms_max']:.1f} ({row['step_ms_p99']:.1f}, "
            f"{row['step_ms_median']:.1f}) "
            f"| {row['rss_first'] / mb:.0f} / {row['rss_max'] / mb:.0f} / {row['rss_last'] / mb:.0f} "
            f"({row['rss_slope_mb_min']:+.2f}) | {row['lag_median']:.2f} / {row['lag_max']:.2f}"
            f"{not_stored} | {reader_age} | {row['pending_at_end']:,}, {row['flush_s']:.1f} "
            f"| {stored_text} "
            f"| {row['load_start'][0]:.1f} / {row['load_end'][0]:.1f} |"
        )
    for label, row in results.items():
        for text in row["warning_texts"]:
            print(f"{label}: warning: {text}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--metrics", type=int, default=1000, help="metrics per step")
    parser.add_argument("--rate", type=float, default=10.0, help="steps per second")
    parser.add_argument("--only", default=",".join(BACKENDS), help=",".join(BACKENDS + OPTIONAL))
    parser.add_argument(
        "--drain", type=float, default=300.0, help="most seconds flush() waits after the last step"
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep each backend's folder (it is kept anyway when fewer values were counted)",
    )
    # the child processes' own arguments
    parser.add_argument("--role", default="driver", choices=["driver", "train", "reader", "count"])
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--location", help=argparse.SUPPRESS)
    parser.add_argument("--id-file", help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.role == "train":
        train_role(arguments)
        return
    if arguments.role == "reader":
        reader(arguments)
        return
    if arguments.role == "count":
        count_role(arguments)
        return
    only = [label for label in arguments.only.split(",") if label]
    unknown = sorted(set(only) - set(BACKENDS + OPTIONAL))
    if unknown:
        choices = ", ".join(BACKENDS + OPTIONAL)
        parser.error(f"unknown backend(s) {unknown}; choose from {choices}")
    results: dict[str, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-sustained-"))
    try:
        for label in only:
            with location(tmp, label) as (target, where):
                print(f"{label}: {arguments.seconds:g} s ...", flush=True)
                results[label] = measure(label, target, where, arguments)
                row = results[label]
                print(
                    f"{label}: back-pressure warnings {row['back_pressure']}, step max "
                    f"{row['step_ms_max']:.1f} ms, writer lag {row['lag_median']:.2f}/"
                    f"{row['lag_max']:.2f} s, stored {row['stored']['values']:,}/"
                    f"{row['tracked']:,} (counted in {row['count_s']:.0f} s)",
                    flush=True,
                )
                later = row["stored_later"]
                if row["stored"] != later or later["values"] != row["tracked"]:
                    print(
                        f"{label}: counted right after close() {row['stored']}, "
                        f"by a fresh process afterwards {later}",
                        flush=True,
                    )
    finally:
        lost = any(
            row["stored_later"]["values"] != row["tracked"]
            or row["stored"]["values"] != row["tracked"]
            for row in results.values()
        )
        if arguments.keep or lost:
            print(f"the stores are kept in {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(results, arguments)
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
