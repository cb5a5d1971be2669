"""Reading runs from an Aim server while views stay open, from several processes, while runs are
being written; and where an Aim server's artifacts go.

Aim 3.29's server answers every client's read-only request of a container from one it already
holds open (a snapshot) while any client references a view of it. Holding an ``aim.Run(hash,
read_only=True)`` therefore hid every run indexed later from every client (``Repo.get_run``
returned None, track's readers raised KeyError). track_aim reads a run from its own containers,
opened for each read and released after it; these tests hold views the whole time.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aim.sdk.repo import Repo

import track_core as track
from track_aim.testing import AimServer
from track_core.backend import Capability

pytestmark = pytest.mark.server

CLIENTS = Path(__file__).with_name("server_clients.py")


def _write_one(url: str, value: float, **options: object) -> str:
    with track.start_run(url, **options) as run:  # type: ignore[arg-type]
        run.track(value, "x")
    return run.id


def _aim_sees(url: str, run_ids: list[str]) -> list[bool]:
    """Whether Aim's own client, in a fresh process, finds each run (Repo.get_run)."""
    script = (
        "import json, sys\n"
        "from aim.sdk.repo import Repo\n"
        f"repo = Repo({url!r})\n"
        "print(json.dumps([repo.get_run(h) is not None for h in json.loads(sys.argv[1])]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(run_ids)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen: list[bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return seen


def test_views_kept_open_do_not_hide_later_runs(server: AimServer) -> None:
    url = server.url
    backend = track.get_backend(url)
    views = []
    run_ids = []
    for index in range(6):
        run_id = _write_one(url, float(index), experiment="kept")
        run_ids.append(run_id)
        view = track.open_run(run_id, url)  # read at once, after the list was just cached
        assert [p.value for p in view.sequence("x").points()] == [float(index)]
        assert view.status is track.Status.FINISHED
        assert view.artifacts() == []
        views.append(view)
        listed = [info.id for info in backend.list_runs(experiment="kept")]
        assert listed == run_ids  # every run, oldest first, while all views are held
    # the views still read, and Aim's own client in another process sees every run
    assert [view.sequence("x").points()[0].value for view in views] == [float(i) for i in range(6)]
    assert _aim_sees(url, run_ids) == [True] * 6


def test_a_held_aim_snapshot_hides_later_runs_from_aim_but_not_from_track(
    private_server: AimServer,
) -> None:
    """The Aim bug itself, kept as a test: if it fails, Aim fixed it (see track_aim._aim_private)."""
    url = private_server.url
    first = _write_one(url, 1.0)
    aim_repo = Repo(url)
    held = aim_repo.get_run(first)  # Aim's own read-only view, held (its index snapshot)
    try:
        assert held is not None
        later = [_write_one(url, float(value)) for value in (2, 3)]
        assert [aim_repo.get_run(run_id) for run_id in later] == [None, None]  # Aim 3.29's bug
        assert _aim_sees(url, later) == [False, False]  # for every client, while it is held
        # track reads every run while Aim's snapshot is held
        for value, run_id in zip((2.0, 3.0), later, strict=True):
            view = track.open_run(run_id, url)
            assert [p.value for p in view.sequence("x").points()] == [value]
            assert view.status is track.Status.FINISHED
        assert set(later) <= {info.id for info in track.get_backend(url).list_runs()}
    finally:
        # Aim releases a view's server resources at garbage collection: while the server is up
        del held
        gc.collect()
        aim_repo.close()


def test_many_runs_from_several_client_processes(server: AimServer) -> None:
    """Three processes each write runs and, after each, read every run listed, holding views."""
    runs, tags = 3, ["a", "b", "c"]
    processes = [
        subprocess.Popen(
            [sys.executable, str(CLIENTS), "write-and-read", server.url, str(runs), tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in tags
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [report["problems"] for report in reports] == [[], [], []]
    written = [run_id for report in reports for run_id in report["written"]]
    assert len(set(written)) == runs * len(tags)
    # and this process, which held nothing before, sees all of them, complete
    listed = {info.id: info for info in track.get_backend(server.url).list_runs()}
    views = []
    for tag, report in zip(tags, reports, strict=True):
        for index, run_id in enumerate(report["written"]):
            assert listed[run_id].status is track.Status.FINISHED
            view = track.open_run(run_id, server.url)
            views.append(view)
            assert [p.value for p in view.sequence("x").points()] == [
                float(index * 100 + step) for step in range(5)
            ]
            assert view.tags == frozenset({tag})
    assert _aim_sees(server.url, written) == [True] * len(written)


@pytest.mark.parametrize("where", ["server", "local"])
def test_a_run_written_while_another_client_reads_it(
    where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if where == "server":
        url = request.getfixturevalue("server").url
    else:
        url = f"aim:{tmp_path / 'repo'}"
    steps = 100
    writer = subprocess.Popen(
        [sys.executable, str(CLIENTS), "write-slowly", url, str(steps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    run_id = writer.stdout.readline().strip()
    assert run_id, writer.stderr.read() if writer.stderr else ""
    views = []
    seen: list[int] = []
    statuses = set()
    deadline = time.monotonic() + 300
    while writer.poll() is None and time.monotonic() < deadline:
        try:
            view = track.open_run(run_id, url)
        except KeyError:  # not on the server yet
            time.sleep(0.1)
            continue
        views.append(view)  # every view stays referenced
        statuses.add(view.status)
        try:
            points = view.sequence("x").points()
        except KeyError:  # no value stored yet
            continue
        steps_read = [p.step for p in points]
        assert steps_read == list(range(len(steps_read)))  # a prefix, in step order
        seen.append(len(steps_read))
    _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err[-3000:]
    assert seen == sorted(seen)  # never an older snapshot than the previous read
    assert len(set(seen)) > 1  # the reads saw the run grow
    assert track.Status.RUNNING in statuses
    final = track.open_run(run_id, url)
    assert [p.value for p in final.sequence("x").points()] == [float(s) for s in range(steps)]
    assert final.status is track.Status.FINISHED
    assert views[0].status is track.Status.FINISHED  # an old view reads what is stored now


def test_an_aim_server_on_this_machine_stores_artifacts_beside_its_repo(
    server: AimServer, tmp_path: Path
) -> None:
    model = tmp_path / "model.txt"
    model.write_text("weights")
    backend = track.get_backend(server.url)  # no artifacts_uri given
    assert Capability.ARTIFACTS in backend.capabilities
    with track.start_run(backend) as run:
        run.log_artifact(model, "model/model.txt")
    assert track.open_run(run.id, server.url).artifact_bytes("model/model.txt") == b"weights"
    stored = server.repo_dir / ".aim-artifacts" / run.id / "model" / "model.txt"
    assert stored.read_text() == "weights"  # where Aim itself put it (Run.log_artifact)


def test_a_server_elsewhere_needs_an_artifacts_uri() -> None:
    # 192.0.2.1 is TEST-NET-1: never contacted (not this machine, so no default is looked for)
    elsewhere = track.get_backend("aim://192.0.2.1:53800")
    assert Capability.ARTIFACTS not in elsewhere.capabilities
    assert "artifacts_uri=" in elsewhere.no_artifacts_reason()  # type: ignore[attr-defined]
    given = track.get_backend("aim://192.0.2.1:53800?artifacts_uri=s3://bucket/runs")
    assert Capability.ARTIFACTS in given.capabilities
