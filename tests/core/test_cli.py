"""The installed ``track`` script, run as users run it (a subprocess), on the memory backend.

A memory store lives in one process, so the commands that read runs another process wrote are
tested against Aim and MLflow in tests/resilience/test_copy_backends.py; here: the commands, the
errors and their exit codes, and the commands handed to ``python -m track_core``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import track_core as track
from track_core import cli
from track_core.memory import memory_store


def track_command() -> str:
    beside = Path(sys.executable).with_name("track")
    found = str(beside) if beside.exists() else shutil.which("track")
    assert found, "the track console script is not installed (pip install -e packages/track-core)"
    return found


def run_track(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [track_command(), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_documents_the_exit_codes() -> None:
    result = run_track("--help")
    assert result.returncode == 0
    for code, words in [
        (cli.EXIT_UNKNOWN_BACKEND, "unknown backend"),
        (cli.EXIT_UNREACHABLE, "cannot be reached"),
        (cli.EXIT_NO_SUCH_RUN, "no run with that id"),
        (cli.EXIT_INCOMPLETE, "cannot hold"),
    ]:
        assert f"  {code}  " in result.stdout and words in result.stdout
    for command in ("backends", "runs", "show", "copy", "spools", "replay"):
        assert command in result.stdout


def test_backends_lists_what_python_m_track_core_lists() -> None:
    result = run_track("backends")
    assert result.returncode == 0
    assert "memory\ttrack_core.memory:create_backend" in result.stdout.splitlines()
    module = subprocess.run(
        [sys.executable, "-m", "track_core", "backends"], capture_output=True, text=True
    )
    assert module.returncode == 0 and module.stdout == result.stdout


def test_an_unknown_backend_exits_3_and_names_the_installed_ones() -> None:
    for command in (["runs", "nosuch"], ["show", "nosuch", "abc"], ["copy", "nosuch", "memory"]):
        result = run_track(*command)
        assert result.returncode == cli.EXIT_UNKNOWN_BACKEND, result
        assert "no track backend named 'nosuch'" in result.stderr
        assert "installed: memory" in result.stderr
        assert result.stdout == ""


def test_a_malformed_backend_string_exits_3() -> None:
    result = run_track("runs", "memory?color=blue")
    assert result.returncode == cli.EXIT_UNKNOWN_BACKEND
    assert "bad backend string 'memory?color=blue'" in result.stderr
    assert "takes no options" in result.stderr


def test_a_missing_run_exits_5() -> None:
    result = run_track("show", "memory", "no-such-run")
    assert result.returncode == cli.EXIT_NO_SUCH_RUN
    assert "no run with id 'no-such-run'" in result.stderr
    copying = run_track("copy", "memory", "memory:other", "--run", "no-such-run", "other-run")
    assert copying.returncode == cli.EXIT_NO_SUCH_RUN
    assert "has no run no-such-run, other-run" in copying.stderr


def test_a_bad_command_line_exits_2() -> None:
    same = run_track("copy", "memory", "memory:default")
    assert same.returncode == cli.EXIT_USAGE and "the same store" in same.stderr
    assert run_track().returncode == cli.EXIT_USAGE
    assert run_track("runs").returncode == cli.EXIT_USAGE
    assert run_track("frobnicate").returncode == cli.EXIT_USAGE


def test_no_runs_is_said_on_stderr() -> None:
    result = run_track("runs", "memory", "--experiment", "none-here")
    assert result.returncode == 0 and result.stdout == ""
    assert "no runs in experiment 'none-here' on memory:default" in result.stderr
    as_json = run_track("runs", "memory", "--json")
    assert as_json.returncode == 0 and as_json.stdout.strip() == "[]"


def test_runs_and_show_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """The table and the run page (the memory store is this process's: main() called here)."""
    location = f"memory:cli-{uuid.uuid4().hex}"
    with track.start_run(location, experiment="demo", name="first", tags=["x"]) as run:
        run["hparams"] = {"lr": 0.1, "opt": {"name": "adam"}}
        for step in range(5):
            run.track(0.5 * step, "loss", step=step, epoch=step // 2, context={"subset": "train"})
        run.track(track.Text("done"), "notes")
    assert cli.main(["runs", location]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "EXPERIMENT",
        "STATUS",
        "START",
        "DURATION",
        "SEQUENCES",
    ]
    row = lines[1].split()
    assert row[:4] == [run.id, "first", "demo", "finished"] and row[-1] == "2"
    assert cli.main(["show", location, run.id]) == 0
    page = capsys.readouterr().out
    assert f"id:          {run.id}" in page and "status:      finished" in page
    assert "tags:        x" in page
    assert "hparams.lr = 0.1" in page and 'hparams.opt.name = "adam"' in page
    loss = next(line for line in page.splitlines() if line.strip().startswith("loss"))
    assert loss.split() == ["loss", "{subset='train'}", "scalar", "5", "4", "2", "2.0"]
    assert "text 'done'" in page


def test_copy_in_process_reports_each_run(capsys: pytest.CaptureFixture[str]) -> None:
    source, dest = f"memory:cli-{uuid.uuid4().hex}", f"memory:cli-{uuid.uuid4().hex}"
    with track.start_run(source) as run:
        for step in range(10):
            run.track(float(step), "loss")
    assert cli.main(["copy", source, dest]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"created  {run.id} -> ") and "10 points" in out
    assert cli.main(["copy", source, dest]) == 0
    assert capsys.readouterr().out.startswith(f"skipped  {run.id} -> ")
    assert len(memory_store(dest.split(":", 1)[1]).runs) == 1


SPOOLING_SCRIPT = """
import warnings
import track_core as track
from track_core.memory import memory_store

warnings.simplefilter("ignore")
run = track.start_run("memory:cli", writer=track.WriterOptions(close_timeout=0.5))
memory_store("cli").unavailable = True  # the backend goes down: what is tracked is spooled
for step in range(20):
    run.track(float(step), "loss")
run.close()
"""


def test_spools_and_replay_are_python_m_track_cores(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    env = {"TRACK_SPOOL_DIR": str(spool_dir)}
    subprocess.run(
        [sys.executable, "-c", SPOOLING_SCRIPT],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=120,
    )
    pending = [str(path) for path in track.pending_spools(spool_dir)]
    assert len(pending) == 1
    listed = run_track("spools", "--dir", str(spool_dir))
    assert listed.returncode == 0 and listed.stdout.splitlines() == pending
    module = subprocess.run(
        [sys.executable, "-m", "track_core", "spools", "--dir", str(spool_dir)],
        capture_output=True,
        text=True,
    )
    assert module.stdout == listed.stdout
    # A memory run lives in one process: the replay fails, the same way through both commands.
    replayed = run_track("replay", *pending, env=env)
    module = subprocess.run(
        [sys.executable, "-m", "track_core", "replay", *pending],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert replayed.returncode == module.returncode == 1
    assert "not replayed" in replayed.stderr and "no run with id" in replayed.stderr
    assert replayed.stderr == module.stderr
