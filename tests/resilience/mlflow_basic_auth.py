"""A real ``mlflow server --app-name basic-auth`` on 127.0.0.1 for the credential tests.

MLflow's basic-auth app needs Flask-WTF (``mlflow[auth]``); :func:`basic_auth_available` says
whether it is installed. The admin user and its password are made up for each server; users are
created through the server's own REST API (``/api/2.0/mlflow/users/create``).

    with basic_auth_server(tmp_path) as server:
        server.create_user("alice", "s3cret-alice")
        start_run(f"mlflow:{server.url_with('alice', 's3cret-alice')}")
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from track_core.testing.ports import free_port, port_is_free

START_TIMEOUT = 120.0


def basic_auth_available() -> bool:
    return importlib.util.find_spec("flask_wtf") is not None


class BasicAuthServer:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.admin = ("admin", secrets.token_hex(12))
        self._secret_key = secrets.token_hex(16)
        self._process: subprocess.Popen[bytes] | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "auth.ini").write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{self.directory / 'basic_auth.db'}\n"
            f"admin_username = {self.admin[0]}\n"
            f"admin_password = {self.admin[1]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, username: str, password: str) -> str:
        return f"http://{username}:{password}@127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def request(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> tuple[int, Any]:
        """A REST call as ``auth`` (None: anonymous); returns the status and the JSON body."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="GET")
        if data is not None:
            request.method = "POST"
            request.add_header("Content-Type", "application/json")
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def create_user(self, username: str, password: str) -> None:
        status, body = self.request(
            "/api/2.0/mlflow/users/create",
            {"username": username, "password": password},
            auth=self.admin,
        )
        if status != 200:
            raise RuntimeError(f"cannot create MLflow user {username!r}: {status} {body}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if self.running:
            return
        deadline = time.monotonic() + timeout
        while not port_is_free(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {self.port} is still in use")
            time.sleep(0.2)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_"))
        }
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(self.directory / "auth.ini")
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = self._secret_key
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{self.directory / 'mlflow.db'}",
            "--artifacts-destination",
            (self.directory / "artifacts").as_uri(),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        with open(self.directory / "server.log", "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=env,
                start_new_session=True,
            )
        while True:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"mlflow server exited while starting:\n{self.log[-3000:]}")
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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self._process = None
        deadline = time.monotonic() + timeout
        while not port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)


@contextlib.contextmanager
def basic_auth_server(directory: str | os.PathLike[str]) -> Iterator[BasicAuthServer]:
    server = BasicAuthServer(Path(directory), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
