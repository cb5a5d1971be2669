"""Several trainings write to one MLflow server on PostgreSQL while it is killed and restarted.

Four training processes (real Python, started with subprocess) track 50 metrics x 1000 steps
(50,000 values) each, plus images and an artifact, to ``mlflow:http://127.0.0.1:PORT``. When every
one is halfway, the server is SIGKILLed, left down, and started again on the same port and
database. Then MLflow's own client (and a look at PostgreSQL's tables) must find every run
complete: each value once, FINISHED, its images and its artifact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from track_mlflow.testing import MlflowServer, Postgres

PROCESSES = 4
METRICS = 50
STEPS = 1000
IMAGES_EVERY = 250  # steps 0, 250, 500, 750: four images per run

TRAINING = textwrap.dedent(
    """
    import json, sys, time, warnings
    from pathlib import Path

    import numpy as np
    import track_core as track

    backend, worker, folder, writer_process = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    metrics, steps, images_every = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    options = track.WriterOptions(
        flush_interval=0.05, retry_initial=0.2, retry_max=1.0, close_timeout=900,
        process=writer_process,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = track.start_run(backend, experiment="team", name=f"worker-{worker}", writer=options)
        run["hparams"] = {"worker": worker, "lr": 0.001 * (worker + 1)}
        (folder / "run_id").write_text(run.id)
        started = time.monotonic()
        for step in range(steps):
            run.track(
                {f"layer{m:02d}/grad_norm": worker * 1e6 + m * 1e3 + step for m in range(metrics)},
                step=step, context={"subset": "train"},
            )
            if step % images_every == 0:
                pixels = np.full((16, 24, 3), (worker * 40 + step // images_every) % 256, np.uint8)
                run.track(track.Image(pixels, caption=f"step {step}"), "samples", step=step)
            if step == steps // 2:
                (folder / "halfway").touch()
                while not (folder / "go").exists():  # the server is killed meanwhile
                    time.sleep(0.02)
            time.sleep(0.004)
        report = folder / "report.txt"
        report.write_text(f"worker {worker}: {metrics * steps} values\\n")
        run.log_artifact(report, "report.txt")
        tracked = time.monotonic()
        run.close()
        closed = time.monotonic()
    (folder / "result.json").write_text(json.dumps({
        "run_id": run.id,
        "backend_id": run.backend_id,
        "warnings": sorted({w.category.__name__ for w in caught}),
        "close_seconds": closed - tracked,
        "seconds": closed - started,
    }))
    """
)


def _wait_for(paths: list[Path], children: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for child in children:
            if child.poll() is not None:
                out = child.stdout.read() if child.stdout else ""
                raise AssertionError(f"a training exited early ({child.returncode}):\n{out}")
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {paths}"
        time.sleep(0.05)


def test_four_trainings_through_a_server_kill_lose_and_duplicate_nothing(
    mlflow_on_postgres: MlflowServer, postgres: Postgres, tmp_path: Path
) -> None:
    server = mlflow_on_postgres
    backend = f"mlflow:{server.url}"
    folders = [tmp_path / f"worker-{i}" for i in range(PROCESSES)]
    children = []
    began = time.monotonic()
    for worker, folder in enumerate(folders):
        folder.mkdir()
        # Half the trainings write from a writer thread, half from a writer process.
        writer_process = "on" if worker % 2 else "off"
        sizes = [str(METRICS), str(STEPS), str(IMAGES_EVERY)]
        arguments = [TRAINING, backend, str(worker), str(folder), writer_process, *sizes]
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", *arguments],
                env=dict(os.environ, TRACK_SPOOL_DIR=str(folder / "spool")),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    _wait_for([f / "halfway" for f in folders], children, timeout=600)
    server.kill()
    killed = time.monotonic()
    for folder in folders:
        (folder / "go").touch()
    # Every training goes on tracking into its spool while the server is away.
    deadline = time.monotonic() + 120
    while not all(list((f / "spool").glob("*.spool")) for f in folders):
        assert time.monotonic() < deadline, "a training spooled nothing while the server was down"
        time.sleep(0.1)
    time.sleep(2.0)
    server.start()
    restarted = time.monotonic()
    for child in children:
        out, _ = child.communicate(timeout=900)
        assert child.returncode == 0, out
    ended = time.monotonic()
    results = [json.loads((f / "result.json").read_text()) for f in folders]
    for result in results:
        assert "BackendUnavailableWarning" in result["warnings"], result
        assert "DataNotWrittenWarning" not in result["warnings"], result
        assert "BackPressureWarning" not in result["warnings"], result
    for folder in folders:
        assert not list((folder / "spool").glob("*.spool")), "a spool was left behind"

    _check_with_mlflow_client(server, results)
    _check_postgres_rows(postgres, results)
    values = PROCESSES * METRICS * STEPS
    print(
        f"\n{PROCESSES} trainings, {values} values: {ended - began:.1f} s in all, server down"
        f" {restarted - killed:.1f} s (kill to /health), trainings"
        f" {', '.join(format(r['seconds'], '.1f') for r in results)} s;"
        f" {values / (ended - began - (restarted - killed)):.0f} values/s while the server was up"
    )


def _check_with_mlflow_client(server: MlflowServer, results: list[dict[str, Any]]) -> None:
    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server.url)
    experiment = client.get_experiment_by_name("team")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert sorted(r.info.run_name for r in runs) == [f"worker-{i}" for i in range(PROCESSES)]
    by_id = {r.info.run_id: r for r in runs}
    for worker, result in enumerate(results):
        run = by_id[result["backend_id"] or result["run_id"]]
        assert run.info.run_name == f"worker-{worker}"
        assert run.info.status == RunStatus.to_string(RunStatus.FINISHED)
        assert run.data.params["hparams.worker"] == str(worker)
        keys = sorted(run.data.metrics)
        assert keys == sorted(f"layer{m:02d}/grad_norm :: subset: train" for m in range(METRICS)), (
            keys
        )
        for key in keys:
            m = int(key[len("layer") : len("layer") + 2])
            history = client.get_metric_history(run.info.run_id, key)
            assert len(history) == STEPS, (key, len(history))  # once each: no duplicate rows
            assert sorted((h.step, h.value) for h in history) == [
                (step, worker * 1e6 + m * 1e3 + step) for step in range(STEPS)
            ]
        pngs = sorted(
            a.path
            for a in client.list_artifacts(run.info.run_id, "images")
            if a.path.endswith(".png")
        )
        assert len(pngs) == STEPS // IMAGES_EVERY, pngs
        assert sorted(int(p.split("+step+")[1].split("+")[0]) for p in pngs) == list(
            range(0, STEPS, IMAGES_EVERY)
        )
        from PIL import Image

        with Image.open(client.download_artifacts(run.info.run_id, pngs[0])) as image:
            assert image.size == (24, 16)
            assert image.getpixel((0, 0)) == ((worker * 40) % 256,) * 3
        report = Path(client.download_artifacts(run.info.run_id, "report.txt")).read_text()
        assert report == f"worker {worker}: {METRICS * STEPS} values\n"


def _check_postgres_rows(postgres: Postgres, results: list[dict[str, Any]]) -> None:
    """What is in PostgreSQL: each (key, step) of each run once, 50,000 rows a run."""
    connection: Any = postgres.connect()
    try:
        with connection.cursor() as cursor:
            for result in results:
                run_id = result["backend_id"] or result["run_id"]
                cursor.execute(
                    "SELECT count(*), count(DISTINCT (key, step)) FROM metrics WHERE run_uuid = %s",
                    (run_id,),
                )
                assert cursor.fetchone() == (METRICS * STEPS, METRICS * STEPS)
                cursor.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
                assert cursor.fetchone() == ("FINISHED",)
    finally:
        connection.close()
