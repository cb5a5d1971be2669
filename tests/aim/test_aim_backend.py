"""Aim specifics: options, how status and errors land in Aim, what Aim cannot store, remote."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import aim
import pytest
from aim.sdk.types import QueryReportMode
from aim.storage.context import Context as AimContext
from aim_storage import AimStorageReader, open_aim_run

import track_core as track
from track_aim import create_backend
from track_aim.testing import AimServer
from track_core.backend import Capability


def test_options_from_the_string_and_from_keywords(tmp_path: Path) -> None:
    from_string = track.get_backend(f"aim:{tmp_path / 'a'}?system_metrics=false&timeout=5")
    from_keywords = track.get_backend(f"aim:{tmp_path / 'a'}", system_metrics=False, timeout=5)
    assert from_string.location == from_keywords.location
    assert Capability.REMOTE not in from_string.capabilities
    with pytest.raises(TypeError, match="valid options are"):
        track.get_backend(f"aim:{tmp_path / 'a'}?colour=blue")


def test_a_run_looks_native_in_aim(tmp_path: Path) -> None:
    backend = f"aim:{tmp_path / 'repo'}"
    with track.start_run(
        backend, experiment="native", name="r1", description="d", tags=["t"]
    ) as run:
        run["hparams"] = {"lr": 0.1, "model": {"depth": 50}}
        for step in range(3):
            run.track(step * 0.5, "loss", step=step, epoch=0, context={"subset": "train"})
            run.track(step * 0.25, "loss", step=step, epoch=0, context={"subset": "val"})
    stored = open_aim_run(tmp_path / "repo", run.id)
    assert stored.experiment == "native" and stored.name == "r1" and stored.description == "d"
    assert stored["hparams"] == {"lr": 0.1, "model": {"depth": 50}}
    assert list(stored.tags) == ["t"]
    metrics = {(m.name, m.context.to_dict()["subset"]) for m in stored.metrics()}
    assert metrics == {("loss", "train"), ("loss", "val")}
    val = stored.get_metric("loss", AimContext({"subset": "val"}))
    steps, (values, _, _) = val.data.numpy()
    assert list(steps) == [0, 1, 2] and list(values) == [0.0, 0.25, 0.5]


def test_a_failed_run_records_status_and_error_where_aim_users_can_query_them(
    tmp_path: Path,
) -> None:
    backend = f"aim:{tmp_path / 'repo'}"
    with pytest.raises(FloatingPointError):
        with track.start_run(backend) as run:
            run.track(1.0, "loss")
            raise FloatingPointError("Loss became infinite or NaN at iteration=7")
    reader = AimStorageReader(open_aim_run(tmp_path / "repo", run.id))
    assert reader.status is track.Status.FAILED
    assert reader.error is not None and "iteration=7" in reader.error
    assert not reader.run.active  # Aim's own end time is set: the run is not left "in progress"
    # in Aim's hidden system params (not listed among the run's params in Aim's UI), and found
    # by the query a user types in Aim's search bar
    query = 'run["__system_params"]["track"]["status"] == "failed"'
    found = (
        aim.Repo(str(tmp_path / "repo"))
        .query_runs(query, report_mode=QueryReportMode.DISABLED)
        .iter_runs()
    )
    assert [hit.run.hash for hit in found] == [run.id]
    assert "__track__" not in reader.run[...]


def test_what_aim_cannot_store_is_refused_before_anything_is_queued(tmp_path: Path) -> None:
    with track.start_run(f"aim:{tmp_path / 'repo'}") as run:
        with pytest.raises(ValueError, match="reserved"):
            run.track(1.0, "__logs")
        run.track(12.5, "__system__cpu")  # Aim's own system-metric names are the sampler's
        with pytest.raises(ValueError, match="reserved"):
            run.track(1.0, "loss", context={"__internal": 1})
        with pytest.raises(ValueError, match="equal-width bins"):
            run.track(track.Distribution(bin_edges=[0, 1, 3], counts=[1, 2]), "weights")
        run.track(1.0, "loss")
    assert [
        p.value
        for p in track.open_run(run.id, f"aim:{tmp_path / 'repo'}").sequence("loss").points()
    ] == [1.0]


def test_an_unreachable_server_is_a_clear_error_at_start() -> None:
    # (by default the core starts the run offline instead: tests/resilience)
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:9.*aim server --repo"):
        track.start_run(
            "aim://127.0.0.1:9?connect_timeout=1",
            writer=track.WriterOptions(start_offline=False),
        )


@pytest.mark.server
def test_the_server_going_away_mid_run_warns_and_does_not_crash(private_server: AimServer) -> None:
    options = track.WriterOptions(flush_interval=0.05, close_timeout=1)
    run = track.start_run(private_server.url, writer=options)
    run.track(1.0, "loss")
    assert run.flush(timeout=30)
    private_server.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 200):
            run.track(float(step), "loss")
        run.close()
    categories = {w.category for w in caught}
    assert track.BackendUnavailableWarning in categories
    assert track.DataNotWrittenWarning in categories  # the rest waits in the spool, said once


def test_create_backend_defaults_to_the_aim_repo_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = create_backend()
    run = track.start_run(backend)
    run.track(1.0, "x")
    run.close()
    assert (tmp_path / ".aim").is_dir()


def _track_raw_and_through_track(location: str) -> tuple[str, str]:
    """The same values (going up and down, ints and floats, two contexts, gaps in the steps)
    tracked by aim.Run.track one by one and by track in batches."""
    import gc
    import math

    import aim

    def values() -> list[tuple[float | int, str, int, dict[str, str]]]:
        out: list[tuple[float | int, str, int, dict[str, str]]] = []
        for step in range(0, 2_600, 1):
            out.append((math.sin(step / 7) * step, "loss", step, {"subset": "train"}))
            if step % 3 == 0:
                out.append((step // 3 % 17, "count", step * 2, {"subset": "val"}))
        return out

    raw = aim.Run(repo=location, system_tracking_interval=None, log_system_params=False)
    for value, name, step, context in values():
        raw.track(value, name=name, step=step, epoch=step // 100, context=context)
    raw_hash = raw.hash
    raw.close()
    del raw
    gc.collect()  # Aim releases a server's resources in finalizers: while the server is up
    options = track.WriterOptions(flush_interval=0.05)
    with track.start_run(
        f"aim:{location}" if "://" not in location else location, writer=options
    ) as run:
        for index, (value, name, step, context) in enumerate(values()):
            run.track(value, name, step=step, epoch=step // 100, context=context)
            if index == 1_200:
                run.flush()  # a batch boundary in the middle of a sequence
    return raw_hash, run.id


def _summaries(stored: object) -> dict[object, object]:
    traces = stored.meta_run_tree["traces"]  # type: ignore[attr-defined]
    return {
        (stored.idx_to_ctx(ctx_id).to_dict()["subset"], name): summary  # type: ignore[attr-defined]
        for ctx_id, by_name in traces.items()
        for name, summary in by_name.items()
    }


@pytest.mark.parametrize("where", ["local", "server"])
def test_batches_store_what_aim_run_track_stores(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """track writes a batch with one summary write per sequence (last, max, min ...) where
    aim.Run.track rewrites them at every value: the stored runs must be the same."""
    if where == "local":
        repo_dir, location = tmp_path / "repo", str(tmp_path / "repo")
    else:
        server: AimServer = request.getfixturevalue("server")
        repo_dir, location = server.repo_dir, server.url
    raw_hash, track_hash = _track_raw_and_through_track(location)
    raw, tracked = open_aim_run(repo_dir, raw_hash), open_aim_run(repo_dir, track_hash)
    raw_summaries, track_summaries = _summaries(raw), _summaries(tracked)
    assert set(raw_summaries) == {("train", "loss"), ("val", "count")}
    assert track_summaries == raw_summaries
    assert raw_summaries["train", "loss"]["last_step"] == 2_599  # type: ignore[index]
    for subset, name in raw_summaries:
        context = AimContext({"subset": subset})
        raw_steps, (raw_values, raw_epochs, _) = raw.get_metric(name, context).data.numpy()
        steps, (values, epochs, _) = tracked.get_metric(name, context).data.numpy()
        assert list(steps) == list(raw_steps) and list(values) == list(raw_values)
        assert list(epochs) == list(raw_epochs)


def test_aims_system_params_hold_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Aim's ``log_system_params`` stores the environment and argv, masking only variables named
    like secret/key/token/password: track redacts what Aim would store as it is."""
    monkeypatch.setenv("TRACK_BACKEND", "mlflow:http://alice:s3cr3t-env@tracking:5000")
    monkeypatch.setenv("DATABASE_URL", "postgresql://bob:pg-s3cr3t@db/runs")
    monkeypatch.setenv("PLAIN_SETTING", "kept as it is")
    monkeypatch.setattr("sys.argv", ["train.py", "--uri", "https://carol:argv-s3cr3t@host/x"])
    location = tmp_path / "repo"
    with track.start_run(f"aim:{location}?log_system_params=true") as run:
        run.track(1.0, "loss", step=0)
    system = open_aim_run(location, run.id)["__system_params"]
    stored = repr(system)
    for secret in ("s3cr3t-env", "pg-s3cr3t", "argv-s3cr3t"):
        assert secret not in stored
    assert system["env_variables"]["PLAIN_SETTING"] == "kept as it is"
    assert "tracking:5000" in system["env_variables"]["TRACK_BACKEND"]
    assert system["arguments"][:2] == ["train.py", "--uri"] and "host/x" in system["arguments"][2]
    assert system["packages"]  # the rest of what Aim logs is kept


def test_log_system_params_without_pkg_resources_is_a_clear_error(tmp_path: Path) -> None:
    """Aim needs pkg_resources (gone from setuptools 81) to log system params: said at once."""
    code = (
        "import sys; sys.modules['pkg_resources'] = None\n"
        "import track_core as track\n"
        "try:\n"
        f"    track.get_backend('aim:{tmp_path / 'repo'}?log_system_params=true')\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "setuptools<81" in result.stdout and "log_system_params" in result.stdout


def test_a_copied_run_keeps_its_start_and_end_times_in_aim(tmp_path: Path) -> None:
    """A run copied into Aim starts and ends when the source run did (Aim's own
    ``Run.creation_time`` / ``end_time``); copied back to memory, they come back exactly."""
    from track_core.copying import copy_run
    from track_core.memory import MemoryBackend, MemoryStore

    source = MemoryBackend(MemoryStore(), "aim-times-source")
    with track.start_run(source, enabled=True, experiment="times") as run:
        run.track(1.0, "loss", step=0)
    stored = source.store.runs[run.id]
    stored.created_at, stored.ended_at = 1_600_000_000.123456, 1_600_007_200.654321
    backend = create_backend(str(tmp_path / "repo"))
    there = copy_run(run.id, source, backend)
    assert there.complete, there
    aim_run = open_aim_run(tmp_path / "repo", there.dest_id)
    assert aim_run.creation_time == pytest.approx(1_600_000_000.123456, abs=1e-6)
    assert aim_run.end_time == pytest.approx(1_600_007_200.654321, abs=1e-6)
    assert not aim_run.active
    (listed,) = backend.list_runs("times")
    assert listed.created_at == pytest.approx(1_600_000_000.123456, abs=1e-6)
    assert listed.ended_at == pytest.approx(1_600_007_200.654321, abs=1e-6)
    back_to = MemoryBackend(MemoryStore(), "aim-times-back")
    back = copy_run(there.dest_id, backend, back_to)
    returned = back_to.store.runs[back.dest_id]
    assert returned.created_at == pytest.approx(1_600_000_000.123456, abs=1e-6)
    assert returned.ended_at == pytest.approx(1_600_007_200.654321, abs=1e-6)


def test_a_run_written_by_track_has_aims_own_times(tmp_path: Path) -> None:
    backend = create_backend(str(tmp_path / "repo"))
    with track.start_run(backend, enabled=True) as run:
        run.track(1.0, "loss", step=0)
    aim_run = open_aim_run(tmp_path / "repo", run.id)
    reader = backend.read_run(run.id)
    assert (reader.created_at, reader.ended_at) == (aim_run.creation_time, aim_run.end_time)
    assert aim_run.creation_time < aim_run.end_time


def test_runs_with_the_old_status_param_still_read(tmp_path: Path) -> None:
    """Runs written before the status block moved under ``__system_params`` kept it in the
    top-level param ``__track__``: still read, and not listed among the run's params."""
    repo = tmp_path / "repo"
    aim.Repo.from_path(str(repo), init=True)
    old = aim.Run(repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    old["hparams"] = {"lr": 0.1}
    old["__track__"] = {"status": "failed", "error": "Traceback: old"}
    old_hash = old.hash
    old.close()
    reader = create_backend(str(repo)).read_run(old_hash)
    assert reader.status is track.Status.FAILED
    assert reader.error == "Traceback: old"
    assert dict(reader.params) == {"hparams": {"lr": 0.1}}


def test_a_reader_sees_props_changed_by_another_process_since_its_first_read(
    tmp_path: Path,
) -> None:
    """Aim's structured DB keeps a SQLAlchemy session per thread whose identity map queries do not
    refresh: a long-lived process that read a run once must still see its later archive flag,
    name and tags (written here by aim.Run in another process, which can open the run only
    because the ended run no longer holds its RocksDB lock in this process)."""
    repo = tmp_path / "repo"
    backend = track.get_backend(f"aim:{repo}")
    with track.start_run(backend, name="before", tags=["a"]) as run:
        run.track(1.0, "loss")
    first = backend.read_run(run.id)
    assert (first.archived, first.name, first.tags) == (False, "before", frozenset({"a"}))
    script = (
        "import aim, sys\n"
        "run = aim.Run(sys.argv[2], repo=sys.argv[1])\n"
        "run.archived = True\n"
        "run.name = 'after'\n"
        "run.add_tag('b')\n"
        "run.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(repo), run.id], check=True)
    again = backend.read_run(run.id)
    assert (again.archived, again.name, again.tags) == (True, "after", frozenset({"a", "b"}))


def test_reading_a_location_without_a_repo_finds_nothing_and_creates_nothing(
    tmp_path: Path,
) -> None:
    """``track runs aim:./typo`` and ``track show`` must not leave a new ``.aim`` behind."""
    typo = tmp_path / "typo"
    for command, code in ((["runs", f"aim:{typo}"], 0), (["show", f"aim:{typo}", "abc"], None)):
        result = subprocess.run(
            [str(Path(sys.executable).with_name("track")), *command],
            capture_output=True,
            text=True,
        )
        if code is not None:
            assert result.returncode == code, result.stderr
        else:
            assert result.returncode != 0 and "no Aim repo" in result.stderr, result.stderr
    backend = track.get_backend(f"aim:{typo}")
    assert backend.list_runs() == []
    with pytest.raises(KeyError, match="no Aim repo"):
        backend.read_run("abc")
    assert not typo.exists()
    with track.start_run(backend) as run:  # writing creates the repo, as before
        run.track(1.0, "loss")
    assert (typo / ".aim").is_dir() and [info.id for info in backend.list_runs()] == [run.id]
