"""Test support: run a real ``aim server`` on 127.0.0.1 for tests, benchmarks and fault tests.

    from track_aim.testing import aim_server

    with aim_server(tmp_path / "repo") as server:      # server == "aim://127.0.0.1:PORT"
        run = track_core.start_run(server)
        ...
        server.stop()       # kill it (the whole process group); the port is then free
        server.restart()    # the same repo, the same port

``aim server`` runs its work in a uvicorn child that survives a SIGTERM of its parent, so the
server is started in its own session (process group) and the whole group is killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from track_core.testing.ports import free_port, port_is_free

__all__ = ["AimServer", "aim_server", "init_repo"]

#: How long a starting server may take to answer (a loaded 2-core machine is slow to start one).
START_TIMEOUT = 90.0


def _aim_command() -> list[str]:
    beside = Path(sys.executable).with_name("aim")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("aim")
    if found:
        return [found]
    return [sys.executable, "-c", "from aim.cli.cli import cli_entry_point; cli_entry_point()"]


def _answers(port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status/", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


class AimServer(str):
    """``aim://127.0.0.1:PORT`` (usable as a backend string) that can stop and restart."""

    repo_dir: Path
    port: int
    log_path: Path
    _process: subprocess.Popen[bytes] | None

    def __new__(cls, repo_dir: Path, port: int, log_path: Path) -> AimServer:
        server = super().__new__(cls, f"aim://127.0.0.1:{port}")
        server.repo_dir = repo_dir
        server.port = port
        server.log_path = log_path
        server._process = None
        return server

    @property
    def url(self) -> str:
        return str(self)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if self.running:
            return
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is taken: cannot start the aim server on it")
        command = _aim_command()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    *command,
                    "server",
                    "--repo",
                    str(self.repo_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--yes",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._kill_group()
                raise RuntimeError(
                    f"aim server exited with {self._process.returncode}; log:\n{self._log_tail()}"
                )
            if _answers(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"aim server did not answer within {timeout:g} s; log:\n{self._log_tail()}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Kill the server's whole process group (SIGKILL) and wait until the port is free."""
        if self._process is None:
            return
        self._kill_group()
        deadline = time.monotonic() + timeout
        while not port_is_free(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the aim server's port {self.port} is still taken after stop")
            time.sleep(0.1)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop, then start on the same repo and port."""
        self.stop()
        self.start(timeout)

    def _kill_group(self) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        self._process = None

    def _log_tail(self, size: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-size:]
        return ""


def init_repo(repo_dir: Path | str) -> Path:
    """``aim init`` (skipped if the repo exists)."""
    path = Path(repo_dir)
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [*_aim_command(), "init", "--repo", str(path), "--skip-if-exists"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return path


@contextlib.contextmanager
def aim_server(repo_dir: Path | str | None = None, port: int | None = None) -> Iterator[AimServer]:
    """Run ``aim init`` + ``aim server`` on 127.0.0.1 and a free port; yield ``aim://...``.

    On exit the server's whole process group is killed and the port checked free.
    """
    with contextlib.ExitStack() as stack:
        if repo_dir is None:
            repo_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="aim-server-"))
        path = init_repo(repo_dir)
        log_path = path / "aim-server.log"
        server = AimServer(path, port if port is not None else free_port(), log_path)
        server.start()
        try:
            yield server
        finally:
            server.stop()
