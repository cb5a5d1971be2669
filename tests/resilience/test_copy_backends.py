"""Runs copied between real backends: MLflow sqlite -> Aim local, Aim -> MLflow sqlite, and back.

Every comparison reads through both backends' readers: track's adapter (``read_run``) and a
reader written on the backend's own SDK (tests/aim/aim_storage.py, tests/mlflow/mlflow_storage.py).
Also: an interrupted ``track copy`` (SIGKILL) run again finishes the job with nothing duplicated,
values a destination cannot hold are listed, and the ``track`` command against real stores and
against servers that are down.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import track_core as track
from track_core import cli
from track_core.backend import Backend, Capability, RunReader
from track_core.context import Context
from track_core.copying import (
    COPYING_TAG,
    CopyAction,
    copy_run,
    copy_runs,
    run_differences,
    source_tag,
)
from track_core.status import Status
from track_core.testing.ports import free_port

TESTS = Path(__file__).resolve().parents[1]
#: Whole milliseconds: MLflow keeps timestamps in milliseconds.
T0 = 1_700_000_000.0


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


aim_storage = _load(TESTS / "aim" / "aim_storage.py")
mlflow_storage = _load(TESTS / "mlflow" / "mlflow_storage.py")


class Store:
    """A backend and the SDK-level reader of its storage."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        if kind == "aim":
            self.string = f"aim:{root / 'repo'}"
        else:
            self.string = f"mlflow:sqlite:///{root / 'mlflow.db'}"

    @functools.cached_property
    def backend(self) -> Backend:
        return track.get_backend(self.string)

    def storage(self, run_id: str) -> RunReader:
        if self.kind == "aim":
            reader: RunReader = aim_storage.AimStorageReader(
                aim_storage.open_aim_run(self.root / "repo", run_id)
            )
            return reader
        tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        reader = mlflow_storage.MlflowStorageReader(tracking_uri, run_id)
        return reader

    def readers(self, run_id: str) -> Iterator[tuple[str, RunReader]]:
        yield f"{self.kind} adapter", self.backend.read_run(run_id)
        yield f"{self.kind} storage", self.storage(run_id)


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[[str], Store]:
    def make(kind: str) -> Store:
        folder = tmp_path / f"{kind}-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        return Store(kind, folder)

    return make


def write_run(store: Store, tmp_path: Path, *, scalars: int = 1200, exact: bool = True) -> str:
    """A run with everything: params, tags, every kind of sequence, an artifact, archived, failed.
    ``exact=False`` gives timestamps finer than a millisecond."""
    run = track.start_run(
        store.backend,
        experiment="copying",
        name="original",
        description="a run to copy ✓",
        tags=["baseline", "sweep:3", "lr=0.01"],
    )
    run["hparams"] = {"lr": 0.01, "layers": [64, 32], "optimizer": {"name": "adam", "b": [0.9]}}
    run["seed"] = 7
    for step in range(scalars):
        stamp = T0 + step * (0.001 if exact else 0.0012345)
        run.track(1.0 / (step + 1), "loss", step=step, epoch=step // 400, timestamp=stamp)
        if step % 10 == 0:
            run.track(step, "acc", step=step, context={"subset": "val", "fold": 1}, timestamp=stamp)
    with pytest.warns(track.NonFiniteValueWarning):
        run.track(float("nan"), "odd", step=0, timestamp=T0)
        run.track(float("-inf"), "odd", step=1, timestamp=T0 + 1)
    for step in range(3):
        pixels = np.full((8, 6, 3), step * 40, np.uint8)
        pixels[0, 0] = (255, 0, step)
        run.track(track.Image(pixels, caption=f"i{step}"), "samples", step=step, timestamp=T0)
    run.track(track.Text("hello ✓"), "notes", step=5, epoch=1, timestamp=T0 + 2)
    run.track(track.Distribution([1.0, 2.0, 2.5, 4.0], bins=4), "weights", timestamp=T0 + 3)
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(bytes(range(256)) * 5)
    run.log_artifact(str(artifact), "model/weights.bin")
    run.set_archived(True)
    run.close(Status.FAILED, "ValueError: diverged")
    return run.id


def assert_same(original: RunReader, store: Store, run_id: str, tolerance: float = 0.0) -> None:
    for origin, reader in store.readers(run_id):
        assert run_differences(original, reader, timestamp_tolerance=tolerance) == [], origin


@pytest.mark.parametrize(
    ("first", "second"), [("mlflow", "aim"), ("aim", "mlflow")], ids=["mlflow-aim", "aim-mlflow"]
)
def test_a_to_b_to_a_reads_back_equal_through_both_readers(
    make_store: Callable[[str], Store], tmp_path: Path, first: str, second: str
) -> None:
    a, b = make_store(first), make_store(second)
    run_id = write_run(a, tmp_path)
    original = a.backend.read_run(run_id)
    assert original.status is Status.FAILED and original.archived
    there = copy_run(run_id, a.backend, b.backend)
    assert there.action is CopyAction.CREATED and there.complete, there
    assert_same(original, b, there.dest_id)
    back = copy_run(there.dest_id, b.backend, a.backend)
    assert back.action is CopyAction.CREATED and back.complete, back
    assert_same(original, a, back.dest_id)
    assert source_tag(b.backend.name, there.dest_id) in a.backend.read_run(back.dest_id).tags
    # copying again duplicates nothing
    again = copy_runs(a.backend, b.backend, experiment="copying")
    assert [(r.action, r.dest_id) for r in again if r.source_id == run_id] == [
        (CopyAction.SKIPPED, there.dest_id)
    ]
    sources = [t for info in b.backend.list_runs() for t in b.backend.read_run(info.id).tags]
    assert sources.count(source_tag(a.backend.name, run_id)) == 1


def test_aim_timestamps_finer_than_mlflow_keeps_are_rounded_to_the_millisecond(
    make_store: Callable[[str], Store], tmp_path: Path
) -> None:
    a, b = make_store("aim"), make_store("mlflow")
    run_id = write_run(a, tmp_path, scalars=300, exact=False)
    original = a.backend.read_run(run_id)
    there = copy_run(run_id, a.backend, b.backend)
    copied = b.backend.read_run(there.dest_id)
    assert run_differences(original, copied) != []  # not equal to the microsecond...
    assert_same(original, b, there.dest_id, tolerance=0.0005)  # ...but to the millisecond
    back = copy_run(there.dest_id, b.backend, a.backend)
    assert_same(copied, a, back.dest_id)  # what MLflow holds comes back exactly


def test_what_aim_cannot_hold_is_listed_and_the_rest_copied(
    make_store: Callable[[str], Store],
) -> None:
    a, b = make_store("mlflow"), make_store("aim")
    with track.start_run(a.backend, name="odd") as run:
        run.track(track.Distribution(bin_edges=[0.0, 1.0, 3.0], counts=[1.0, 2.0]), "uneven")
        run.track(track.Distribution(bin_edges=[0.0, 1.0, 2.0], counts=[1.0, 2.0]), "uneven")
        run.track(1.0, "__reserved")
        run.track(2.0, "loss")
    result = copy_run(run.id, a.backend, b.backend)
    listed = {item.what: item for item in result.not_copied}
    assert listed["sequence 'uneven'"].values == 1
    assert "equal-width bins" in listed["sequence 'uneven'"].reason
    assert listed["sequence '__reserved'"].values == 1
    assert "reserved by Aim" in listed["sequence '__reserved'"].reason
    for origin, reader in b.readers(result.dest_id):
        assert [p.value for p in reader.points("loss", Context())] == [2.0], origin
        assert len(reader.points("uneven", Context())) == 1, origin
        assert reader.status is Status.FINISHED, origin
    assert copy_run(run.id, a.backend, b.backend).action is CopyAction.SKIPPED


def _track_command() -> str:
    path = Path(sys.executable).with_name("track")
    assert path.exists(), "the track console script is not installed in this environment"
    return str(path)


def _mlflow_rows(store: Store, run_id: str, name: str) -> list[Any]:
    from track_mlflow.keys import encode_key

    client = store.backend.client  # type: ignore[attr-defined]
    return list(client.get_metric_history(run_id, encode_key(name, Context())))


@pytest.mark.parametrize(
    ("first", "second"), [("mlflow", "aim"), ("aim", "mlflow")], ids=["mlflow-aim", "aim-mlflow"]
)
def test_a_killed_track_copy_run_again_finishes_the_job_once(
    make_store: Callable[[str], Store], first: str, second: str
) -> None:
    a, b = make_store(first), make_store(second)
    steps, names = 5000, [f"m{i}" for i in range(6)]  # long enough to be killed midway
    with track.start_run(a.backend, experiment="big", name="big") as run:
        run["hparams"] = {"lr": 0.1}
        for step in range(steps):
            run.track({name: float(step) for name in names}, step=step, timestamp=T0 + step)
    command = [_track_command(), "copy", a.string, b.string, "--progress"]
    copying = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert copying.stderr is not None
    seen = b""
    # the progress line is throttled: kill at the first one shown for sequences 2 to 5
    while not re.search(rb"sequence [2-5]/6, [\d,]+ points \([\d,]+ points/s\)$", seen):
        byte = copying.stderr.read(1)
        assert byte, f"track copy ended before it could be killed: {seen[-300:]!r}"
        seen += byte
    copying.send_signal(signal.SIGKILL)
    copying.wait(timeout=60)
    copying.stderr.close()
    assert copying.stdout is not None
    copying.stdout.close()
    # Read in other processes: an Aim repo opened here would be cached by Aim (Repo._pool)
    # and would not show what the next track copy changes.
    (info,) = json.loads(run_track("runs", b.string, "--json").stdout)
    partial = json.loads(run_track("show", b.string, info["id"], "--json").stdout)
    assert COPYING_TAG in partial["tags"] and partial["status"] == "running"
    lengths = {s["name"]: s["last"]["step"] for s in partial["sequences"]}
    assert len(lengths) < len(names) or min(lengths.values()) < steps - 1, lengths
    again = subprocess.run(command[:-1], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"updated  {run.id} -> {info['id']}")
    assert [i.id for i in b.backend.list_runs()] == [info["id"]]
    for origin, reader in b.readers(info["id"]):
        assert run_differences(a.backend.read_run(run.id), reader) == [], origin
        assert COPYING_TAG not in reader.tags and reader.status is Status.FINISHED, origin
    if b.kind == "mlflow":  # each point stored once, not once per attempt
        for name in names:
            rows = _mlflow_rows(b, info["id"], name)
            assert sorted(row.step for row in rows) == list(range(steps)), name
    skipped = subprocess.run(command[:-1], capture_output=True, text=True, timeout=600)
    assert skipped.returncode == 0 and skipped.stdout.startswith("skipped")


# -- the track command on real stores --------------------------------------------------------


def run_track(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_track_command(), *arguments], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("kind", ["aim", "mlflow"])
def test_track_runs_and_show(make_store: Callable[[str], Store], tmp_path: Path, kind: str) -> None:
    store = make_store(kind)
    run_id = write_run(store, tmp_path, scalars=50)
    with track.start_run(store.backend, experiment="other", name="second") as other:
        other.track(3.5, "loss", step=9)
    table = run_track("runs", store.string)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "EXPERIMENT",
        "STATUS",
        "START",
        "DURATION",
        "SEQUENCES",
    ]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells[run_id][1:4] == ["original", "copying", "failed"]
    assert cells[run_id][-1] == "6"  # loss, acc, odd, samples, notes, weights
    assert cells[other.id][1:4] == ["second", "other", "finished"] and cells[other.id][-1] == "1"
    only = run_track("runs", store.string, "--experiment", "other", "--json")
    assert [entry["id"] for entry in json.loads(only.stdout)] == [other.id]
    page = run_track("show", store.string, run_id)
    assert page.returncode == 0, page.stderr
    text = page.stdout
    assert "status:      failed" in text and "error:       ValueError: diverged" in text
    assert "archived:    yes" in text and "tags:        baseline, lr=0.01, sweep:3" in text
    assert 'hparams.optimizer.name = "adam"' in text and "seed = 7" in text
    loss = next(line for line in text.splitlines() if line.strip().startswith("loss "))
    assert loss.split() == ["loss", "-", "scalar", "50", "49", "0", repr(1 / 50)]
    assert "image 6x8 RGB 'i2'" in text and "text 'hello ✓'" in text
    assert "model/weights.bin" in text
    document = json.loads(run_track("show", store.string, run_id, "--json").stdout)
    assert document["params"]["hparams"]["layers"] == [64, 32]
    acc = next(s for s in document["sequences"] if s["name"] == "acc")
    assert acc["context"] == {"fold": 1, "subset": "val"} and acc["last"]["value"] == 40
    missing = run_track("show", store.string, "0123456789abcdef01234567")
    assert missing.returncode == cli.EXIT_NO_SUCH_RUN
    assert "0123456789abcdef01234567" in missing.stderr


def test_track_copy_between_real_stores(make_store: Callable[[str], Store], tmp_path: Path) -> None:
    a, b = make_store("mlflow"), make_store("aim")
    run_id = write_run(a, tmp_path, scalars=100)
    with track.start_run(a.backend, experiment="elsewhere") as other:
        other.track(1.0, "loss")
    copied = run_track("copy", a.string, b.string, "--experiment", "copying")
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.startswith(f"created  {run_id} -> ") and copied.stderr == ""
    (info,) = b.backend.list_runs()
    assert_same(a.backend.read_run(run_id), b, info.id)
    by_id = run_track("copy", a.string, b.string, "--run", other.id)
    assert by_id.returncode == 0 and by_id.stdout.startswith(f"created  {other.id}")
    assert len(b.backend.list_runs()) == 2
    missing = run_track("copy", a.string, b.string, "--run", "f" * 32)
    assert missing.returncode == cli.EXIT_NO_SUCH_RUN and "f" * 32 in missing.stderr


def test_track_copy_lists_what_the_destination_cannot_hold(
    make_store: Callable[[str], Store],
) -> None:
    a, b = make_store("mlflow"), make_store("aim")
    with track.start_run(a.backend) as run:
        run.track(track.Distribution(bin_edges=[0.0, 1.0, 3.0], counts=[1.0, 2.0]), "uneven")
        run.track(1.0, "loss")
    result = run_track("copy", a.string, b.string)
    assert result.returncode == cli.EXIT_INCOMPLETE
    assert f"not copied from run {run.id}: sequence 'uneven' (1 values)" in result.stderr


@pytest.mark.parametrize(
    "down",
    [
        lambda port: f"mlflow:http://127.0.0.1:{port}",
        lambda port: f"aim://127.0.0.1:{port}",
    ],
    ids=["mlflow-server", "aim-server"],
)
def test_a_server_that_is_down_exits_4(
    make_store: Callable[[str], Store], down: Callable[[int], str]
) -> None:
    backend = down(free_port())
    for command in (["runs", backend], ["show", backend, "abc"]):
        result = run_track(*command)
        assert result.returncode == cli.EXIT_UNREACHABLE, result
        assert "cannot reach" in result.stderr and "127.0.0.1" in result.stderr
        assert "Traceback" not in result.stderr
    store = make_store("mlflow")
    with track.start_run(store.backend) as run:
        run.track(1.0, "loss")
    for source, dest in [(store.string, backend), (backend, store.string)]:
        result = run_track("copy", source, dest)
        assert result.returncode == cli.EXIT_UNREACHABLE, result
        assert "cannot reach" in result.stderr and "Traceback" not in result.stderr


def test_copy_to_servers_and_back(
    make_store: Callable[[str], Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow sqlite -> an aim server -> an MLflow server, read back equal."""
    # A loaded machine: the MLflow server may take more than the default 10 s to answer.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    from track_aim.testing import aim_server
    from track_mlflow.testing import mlflow_server

    a = make_store("mlflow")
    run_id = write_run(a, tmp_path, scalars=150)
    original = a.backend.read_run(run_id)
    with (
        aim_server(tmp_path / "aim-server") as aim_url,
        mlflow_server(tmp_path / "mlflow-server") as ml,
    ):
        artifacts = (tmp_path / "aim-artifacts").as_uri()
        aim_backend = track.get_backend(f"{aim_url}?artifacts_uri={artifacts}")
        assert Capability.REMOTE in aim_backend.capabilities
        there = copy_run(run_id, a.backend, aim_backend)
        assert there.complete, there
        assert run_differences(original, aim_backend.read_run(there.dest_id)) == []
        mlflow_backend = track.get_backend(f"mlflow:{ml.url}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            back = copy_run(there.dest_id, aim_backend, mlflow_backend)
        assert back.complete, back
        assert run_differences(original, mlflow_backend.read_run(back.dest_id)) == []
        assert copy_run(there.dest_id, aim_backend, mlflow_backend).action is CopyAction.SKIPPED
