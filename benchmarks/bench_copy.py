"""Copying a run between backends, against each destination's best raw write path, in one run.

The run: 1,000,000 scalars over 100 sequences (10,000 steps each, two contexts) plus 100 images
(64x64 RGB), written to an MLflow sqlite store (untimed). Then, timed:

- ``copy_run`` MLflow sqlite -> Aim local, against Aim's raw ``Run.track`` of the same values
  (names, contexts, steps; a new Aim run, timed until ``close()`` returned);
- ``copy_run`` Aim -> MLflow sqlite (the copy just made), against MLflow's raw ``log_batch`` of
  the same rows (1000 metrics a call: the same keys, steps and timestamps) and ``log_image`` for
  the images, into a new MLflow run.

A copy also reads every point from the source; the raw side writes values it already holds, so
the time to read the source through its reader is measured on its own too. Each timed section
starts right after ``gc.collect()``. Points per second counts scalars and images.

    python benchmarks/bench_copy.py [--scale 0.1]

``--scale`` multiplies the steps per sequence and the number of images (1.0: the run above).
Needs track-core, track-aim and track-mlflow (``hatch run resilience:python ...``).
"""

from __future__ import annotations

import argparse
import gc
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import track_core as track
from track_core.backend import Backend
from track_core.copying import copy_run

SEQUENCES = 100
STEPS = 10_000
IMAGES = 100
T0 = 1_700_000_000.0


def names() -> list[tuple[str, dict[str, str]]]:
    return [
        (f"metric_{index // 2:03d}", {"subset": "train" if index % 2 else "val"})
        for index in range(SEQUENCES)
    ]


def value(index: int, step: int) -> float:
    return math.sin(step * 0.001 + index)


def picture(index: int) -> Any:
    rng = np.random.default_rng(index)
    return rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)


def write_source(backend: str, steps: int, images: int) -> str:
    """The source run (untimed), through track's background writer."""
    sequences = names()
    options = track.WriterOptions(max_buffered=200_000, close_timeout=3600.0)
    with track.start_run(backend, experiment="bench-copy", name="source", writer=options) as run:
        run["hparams"] = {"lr": 0.01, "sequences": SEQUENCES, "steps": steps}
        for step in range(steps):
            stamp = T0 + step * 0.01
            for index, (name, context) in enumerate(sequences):
                run.track(value(index, step), name, step=step, context=context, timestamp=stamp)
        for index in range(images):
            image = track.Image(picture(index), caption=f"sample {index}")
            run.track(image, "samples", step=index, timestamp=T0 + index)
    return run.id


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def read_all(backend: Backend, run_id: str) -> int:
    """Every point of a run through the backend's reader (what a copy reads)."""
    reader = backend.read_run(run_id)
    return sum(len(reader.points(info.name, info.context)) for info in reader.sequences())


def raw_aim(repo: Path, steps: int, images: int) -> None:
    """Aim's own write path: Run.track for every value, then close()."""
    import aim
    from PIL import Image as PILImage

    run = aim.Run(repo=str(repo), experiment="bench-copy", system_tracking_interval=None)
    run["hparams"] = {"lr": 0.01, "sequences": SEQUENCES, "steps": steps}
    sequences = names()
    for index, (name, context) in enumerate(sequences):
        for step in range(steps):
            run.track(value(index, step), name=name, step=step, context=context)
    for index in range(images):
        pil = PILImage.fromarray(picture(index))
        run.track(aim.Image(pil, caption=f"sample {index}"), name="samples", step=index)
    run.close()


def raw_mlflow(tracking_uri: str, steps: int, images: int) -> None:
    """MLflow's best write path: log_batch of 1000 metrics, log_image for the images."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    from PIL import Image as PILImage

    from track_core.context import Context
    from track_mlflow.keys import encode_key

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("bench-copy-raw")
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment("bench-copy-raw")
    )
    run_id = client.create_run(experiment_id).info.run_id
    batch: list[Any] = []
    for index, (name, context) in enumerate(names()):
        key = encode_key(name, Context(context))
        for step in range(steps):
            batch.append(Metric(key, value(index, step), round((T0 + step * 0.01) * 1000), step))
            if len(batch) == 1000:
                client.log_batch(run_id, metrics=batch, synchronous=True)
                batch = []
    if batch:
        client.log_batch(run_id, metrics=batch, synchronous=True)
    for index in range(images):
        pil = PILImage.fromarray(picture(index))
        client.log_image(run_id, pil, key="samples", step=index, timestamp=round(T0 * 1000))
    client.set_terminated(run_id)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full run")
    arguments = parser.parse_args()
    if not 0 < arguments.scale <= 10:
        parser.error("--scale must be in (0, 10]")
    steps = max(1, round(STEPS * arguments.scale))
    images = max(1, round(IMAGES * arguments.scale))
    points = SEQUENCES * steps + images
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as folder:
        root = Path(folder)
        source = f"mlflow:sqlite:///{root / 'source.db'}"
        print(f"writing the source run: {SEQUENCES} sequences x {steps:,} steps + {images} images")
        built, run_id = timed(lambda: write_source(source, steps, images))
        print(f"  ({built:.1f} s, untimed)")

        read_ml, count = timed(lambda: read_all(track.get_backend(source), run_id))
        assert count == points, count
        aim_dest = track.get_backend(f"aim:{root / 'aim-copy'}")
        copy_aim, result = timed(lambda: copy_run(run_id, source, aim_dest))
        assert result.complete and result.points == points, result
        raw_aim_s, _ = timed(lambda: raw_aim(root / "aim-raw", steps, images))

        read_aim, count = timed(lambda: read_all(aim_dest, result.dest_id))
        assert count == points, count
        mlflow_dest = track.get_backend(f"mlflow:sqlite:///{root / 'copy.db'}")
        copy_ml, back = timed(lambda: copy_run(result.dest_id, aim_dest, mlflow_dest))
        assert back.complete and back.points == points, back
        raw_uri = f"sqlite:///{root / 'raw.db'}"
        track.get_backend(f"mlflow:{raw_uri}")  # the same store layout as track's
        raw_ml_s, _ = timed(lambda: raw_mlflow(raw_uri, steps, images))

    print()
    print(f"{points:,} points ({SEQUENCES * steps:,} scalars, {images} images)")
    print(
        "| copy | copy s | reading the source alone s | copy points/s | raw write path "
        "| raw s | raw points/s | copy vs raw |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, copy_s, read_s, raw_label, raw_s in [
        ("MLflow sqlite -> Aim local", copy_aim, read_ml, "Aim `Run.track`", raw_aim_s),
        (
            "Aim local -> MLflow sqlite",
            copy_ml,
            read_aim,
            "MLflow `log_batch` (+`log_image`)",
            raw_ml_s,
        ),
    ]:
        print(
            f"| {label} | {copy_s:.1f} | {read_s:.1f} | {points / copy_s:,.0f} | {raw_label} "
            f"| {raw_s:.1f} | {points / raw_s:,.0f} | {raw_s / copy_s:.2f}x |"
        )


if __name__ == "__main__":
    main()
