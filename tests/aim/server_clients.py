"""Client processes for tests/aim/test_server_reads.py (run as ``python server_clients.py ...``).

``write-and-read URL RUNS TAG``: writes RUNS runs (each: values 0..STEPS-1 of "x", tag TAG), and
after each one reads back every run it can list, keeping every view it opened referenced; prints
one JSON line: the ids it wrote, and the problems it saw (a run it wrote and could not read
completely, or did not list).

``write-slowly URL STEPS``: prints the run id, then tracks STEPS values of "x", flushing after
each tenth, with a pause, while another client reads; finishes the run.
"""

from __future__ import annotations

import json
import sys
import time

import track_core as track

STEPS = 5


def write_and_read(url: str, runs: int, tag: str) -> None:
    backend = track.get_backend(url)
    written: list[str] = []
    problems: list[str] = []
    views: list[object] = []  # kept referenced, as a notebook keeps them
    for index in range(runs):
        with track.start_run(url, experiment="many-clients", tags=[tag]) as run:
            for step in range(STEPS):
                run.track(float(index * 100 + step), "x", step=step)
        written.append(run.id)
        listed = {info.id for info in backend.list_runs()}
        for run_id in written:
            if run_id not in listed:
                problems.append(f"{run_id} not listed")
        for info in backend.list_runs(experiment="many-clients"):
            view = track.open_run(info.id, url)
            views.append(view)
            points = view.sequence("x").points() if info.status is track.Status.FINISHED else []
            if info.id in written:
                expected = [float(written.index(info.id) * 100 + s) for s in range(STEPS)]
                if [p.value for p in points] != expected:
                    problems.append(f"{info.id} read {[p.value for p in points]}")
                if view.status is not track.Status.FINISHED or tag not in view.tags:
                    problems.append(f"{info.id} status {view.status} tags {view.tags}")
    print(json.dumps({"written": written, "problems": problems}), flush=True)


def write_slowly(url: str, steps: int) -> None:
    options = track.WriterOptions(flush_interval=0.05)
    with track.start_run(url, writer=options) as run:
        print(run.id, flush=True)
        for step in range(steps):
            run.track(float(step), "x", step=step)
            if step % 10 == 9:
                assert run.flush(timeout=60)
                time.sleep(0.3)


if __name__ == "__main__":
    command, url, *rest = sys.argv[1:]
    if command == "write-and-read":
        write_and_read(url, int(rest[0]), rest[1])
    elif command == "write-slowly":
        write_slowly(url, int(rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")
