"""Real processes end in every way a training process ends; nothing tracked is lost.

The child tracks to an on-disk backend (Aim's local repository, MLflow on sqlite), then exits
normally, raises, gets SIGTERM or gets SIGKILL. The parent reads the run back through the backend.
Each case runs twice: with the backend's calls in a writer thread, and in a writer process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import track_core as track

BACKENDS = ["aim", "mlflow"]
WRITERS = ["thread", "process"]

CHILD = textwrap.dedent(
    """
    import faulthandler, os, signal, sys, time
    import track_core as track

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a hung child's stacks, on demand

    backend, mode, count, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    run = track.start_run(backend, experiment="ends", name=mode,
                          writer=track.WriterOptions(flush_interval=0.05))
    run["hparams"] = {"mode": mode}
    for step in range(count):
        run.track(step * 0.5, "loss", step=step, context={"subset": "train"})
    with open(ready, "w") as marker:
        marker.write(f"{run.id} {run.writer_pid}")
    if mode == "exit":
        sys.exit(0)
    if mode == "raise":
        raise RuntimeError("the training diverged")
    if mode == "wait":  # the parent sends a signal
        time.sleep(60)
    if mode.startswith("busy"):  # SIGTERM arrives while track() is being called in a tight loop
        import signal, threading
        delay = int(mode.split("-")[1]) / 1000
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM)).start()
        for step in range(count, count + 200_000):
            run.track(step * 0.5, "loss", step=step, context={"subset": "train"})
        time.sleep(60)
    """
)


def backend_string(name: str, folder: Path) -> str:
    if name == "aim":
        return f"aim:{folder / 'aim-repo'}"
    return f"mlflow:sqlite:///{folder / 'mlflow.db'}"


def start_child(
    backend: str, mode: str, count: int, folder: Path, writer: str
) -> tuple[subprocess.Popen[str], Path]:
    ready = folder / f"ready-{mode}"
    env = dict(
        os.environ,
        TRACK_SPOOL_DIR=str(folder / "spool"),
        PYTHONUNBUFFERED="1",
        TRACK_WRITER_PROCESS="on" if writer == "process" else "off",
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend, mode, str(count), str(ready)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return child, ready


def wait_for(path: Path, child: subprocess.Popen[str], timeout: float = 120) -> tuple[str, int]:
    """The run id and the writer's PID, once the child wrote them."""
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if child.poll() is not None and not path.exists():
            raise AssertionError(
                f"child ended early:\n{child.stdout.read() if child.stdout else ''}"
            )
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("child did not get ready")
        time.sleep(0.05)
    run_id, writer_pid = path.read_text().split()
    return run_id, int(writer_pid)


def wait_until_gone(pid: int, timeout: float = 120) -> None:
    """Wait for a process that is not our child (a writer process whose parent was killed)."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"the writer process {pid} is still running")


def read_back(backend: str, run_id: str) -> track.RunView:
    return track.open_run(run_id, backend)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("exit", track.Status.FINISHED),
        ("raise", track.Status.FAILED),
        ("wait", track.Status.KILLED),
    ],
)
def test_exit_exception_and_sigterm_lose_nothing_and_record_the_status(
    name: str, mode: str, status: track.Status, writer: str, tmp_path: Path
) -> None:
    backend = backend_string(name, tmp_path)
    count = 2000
    child, ready = start_child(backend, mode, count, tmp_path, writer)
    run_id, writer_pid = wait_for(ready, child)
    assert (writer_pid != child.pid) is (writer == "process")
    if mode == "wait":
        child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=120)
    expected_code = {"exit": 0, "raise": 1, "wait": -signal.SIGTERM}[mode]
    assert child.returncode == expected_code, output
    stored = read_back(backend, run_id)
    points = stored.sequence("loss", {"subset": "train"}).points()
    assert [p.step for p in points] == list(range(count))
    assert [p.value for p in points] == [s * 0.5 for s in range(count)]
    assert stored.status is status
    assert stored["hparams"] == {"mode": mode}
    if mode == "raise":
        assert stored.error is not None and "the training diverged" in stored.error
    assert not list((tmp_path / "spool").glob("*.spool"))


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("name", BACKENDS)
def test_sigkill_keeps_everything_before_the_last_flush_interval(
    name: str, writer: str, tmp_path: Path
) -> None:
    backend = backend_string(name, tmp_path)
    child, ready = start_child(backend, "wait", 1500, tmp_path, writer)
    run_id, writer_pid = wait_for(ready, child)
    time.sleep(1.0)  # many flush intervals (0.05 s) after the last track()
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    if writer == "process":  # it outlives the training process, writes what it has, closes
        wait_until_gone(writer_pid)
    stored = read_back(backend, run_id)
    points = stored.sequence("loss", {"subset": "train"}).points()
    assert [p.step for p in points] == list(range(1500))
    assert stored["hparams"] == {"mode": "wait"}
    if writer == "process":
        assert stored.status is track.Status.KILLED
        assert stored.error is not None and "ended without closing the run" in stored.error


@pytest.mark.parametrize("name", BACKENDS)
def test_a_killed_writer_process_is_replaced_and_nothing_is_lost(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(tmp_path / "spool"))
    backend = backend_string(name, tmp_path)
    options = track.WriterOptions(process="on", flush_interval=0.05, retry_initial=0.05)
    with pytest.warns(track.BackendUnavailableWarning):  # the failed batch, then "is back"
        run = track.start_run(backend, experiment="ends", writer=options)
        first = run.writer_pid
        for step in range(3000):
            run.track(step * 0.5, "loss", step=step)
            if step == 1000:
                run.flush()
                os.kill(first, signal.SIGKILL)
        assert run.flush(timeout=120)
        second = run.writer_pid
        run.close()
    assert second not in (first, os.getpid())
    stored = read_back(backend, run.id)
    points = stored.sequence("loss").points()
    assert [p.step for p in points] == list(range(3000))
    assert [p.value for p in points] == [s * 0.5 for s in range(3000)]
    assert stored.status is track.Status.FINISHED
    assert not list((tmp_path / "spool").glob("*.spool"))


def test_a_writer_process_does_not_run_an_unguarded_training_script_again(tmp_path: Path) -> None:
    # multiprocessing's spawn would import __main__ again; the writer process must not.
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import track_core as track

            with open(sys.argv[2], "a") as log:
                log.write("started\\n")
            run = track.start_run(sys.argv[1], writer=track.WriterOptions(process="on"))
            for step in range(100):
                run.track(float(step), "loss", step=step)
            run.close()
            print(run.id, run.writer_pid)
            """
        )
    )
    backend = backend_string("mlflow", tmp_path)
    log = tmp_path / "started.log"
    result = subprocess.run(
        [sys.executable, str(script), backend, str(log)],
        cwd=tmp_path,
        env=dict(os.environ, TRACK_SPOOL_DIR=str(tmp_path / "spool")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "started\n"
    run_id = result.stdout.split()[-2]
    assert len(read_back(backend, run_id).sequence("loss").points()) == 100


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("name", BACKENDS)
def test_sigterm_in_the_middle_of_track_calls_does_not_hang(
    name: str, writer: str, tmp_path: Path
) -> None:
    """The SIGTERM handler closes the run on the thread it interrupted, possibly inside track():
    it must not wait for a lock that thread holds. Nothing tracked before is lost."""
    backend = backend_string(name, tmp_path)
    for attempt, delay_ms in enumerate([5, 13, 29]):
        folder = tmp_path / f"attempt-{attempt}"
        folder.mkdir()
        child, ready = start_child(backend, f"busy-{delay_ms}", 100, folder, writer)
        try:
            output, _ = child.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGUSR1)  # faulthandler prints every thread's stack
            time.sleep(2)
            child.kill()
            output, _ = child.communicate(timeout=30)
            raise AssertionError(
                f"the child hung after SIGTERM (attempt {attempt}); its threads:\n{output}"
            ) from None
        assert child.returncode == -signal.SIGTERM, output
        run_id, _ = ready.read_text().split()
        stored = read_back(backend, run_id)
        steps = [p.step for p in stored.sequence("loss", {"subset": "train"}).points()]
        assert len(steps) >= 100 and steps == list(range(len(steps)))
        assert stored.status is track.Status.KILLED
        assert not list((folder / "spool").glob("*.spool"))
