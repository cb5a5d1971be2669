"""A real ``mlflow server`` for tests, benchmarks and fault tests.

    with mlflow_server(tmp_path) as server:
        backend = create_backend(server.url)
        server.stop()      # the server is gone: writes fail fast
        server.restart()   # same port, same database, same artifacts

The server listens on 127.0.0.1 only, on a free port, serves artifacts (``--serve-artifacts``),
and is stopped by its PID (SIGTERM, which stops its workers too, then SIGKILL after a timeout).
``mlflow_server(tmp, admin=("admin", "a-password"))`` runs MLflow's basic-auth app
(``--app-name basic-auth``, which needs ``mlflow[auth]``): every request must then carry a user
name and password, and the admin user is made with that password.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs

from track_core.testing.ports import free_port, port_is_free

__all__ = ["MlflowServer", "mlflow_server"]

_START_TIMEOUT = 300.0  # a busy machine has needed more than 120 s


@attrs.define
class MlflowServer:
    """A running ``mlflow server`` process (see ``mlflow_server``)."""

    directory: Path
    port: int
    workers: int = 2
    #: ``(user name, password)`` of the admin of a basic-auth server; None: no authentication.
    admin: tuple[str, str] | None = attrs.field(default=None, repr=False)
    _process: subprocess.Popen[bytes] | None = None
    _log: object = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend_store_uri(self) -> str:
        return f"sqlite:///{self.directory / 'mlflow.db'}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        if self.running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        while not port_is_free(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {self.port} is still in use")
            time.sleep(0.2)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            (self.directory / "artifacts").as_uri(),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        log = open(self.directory / "server.log", "ab")
        env = dict(os.environ)
        env.pop("MLFLOW_TRACKING_URI", None)
        if self.admin is not None:
            command += ["--app-name", "basic-auth"]
            config = self.directory / "basic_auth.ini"
            config.write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = sqlite:///{self.directory / 'basic_auth.db'}\n"
                f"admin_username = {self.admin[0]}\nadmin_password = {self.admin[1]}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                # Each check of a password costs a PBKDF2 hash (most of a request's time).
                "auth_cache_ttl_seconds = 300\n"
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", "track-mlflow-tests")
        self._log = log
        try:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            log.close()
            self._log = None
            raise
        while True:
            if self._process.poll() is not None:
                tail = (self.directory / "server.log").read_text(errors="replace")[-3000:]
                self.stop()  # closes the log and ends workers left in its session
                raise RuntimeError(f"mlflow server exited while starting:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not answer /health within {timeout} s")
            time.sleep(0.3)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL of its process group)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        # Workers that outlived their parent are in its session (it was started in a new one).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self._process = None
        log = self._log
        if log is not None:
            log.close()  # type: ignore[attr-defined]
            self._log = None
        deadline = time.monotonic() + timeout
        while not port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self, timeout: float = _START_TIMEOUT) -> None:
        """Start again on the same port, with the same database and artifacts."""
        self.stop()
        self.start(timeout)


@contextlib.contextmanager
def mlflow_server(
    directory: str | os.PathLike[str], workers: int = 2, admin: tuple[str, str] | None = None
) -> Iterator[MlflowServer]:
    """Run ``mlflow server`` on 127.0.0.1 with its store in ``directory``; yield it running.

    ``server.url`` is its address; ``server.stop()`` / ``server.restart()`` for fault tests;
    ``admin=(user, password)`` runs the basic-auth app with that admin.
    """
    server = MlflowServer(Path(directory), free_port(), workers, admin)
    server.start()
    try:
        yield server
    finally:
        server.stop()
