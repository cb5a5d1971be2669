"""A real ``mlflow server`` (and a real PostgreSQL under it) for tests, benchmarks and fault tests.

    with mlflow_server(tmp_path) as server:
        backend = create_backend(server.url)
        server.stop()      # the server is gone: writes fail fast
        server.restart()   # same port, same database, same artifacts
        server.kill()      # SIGKILL, no clean shutdown

    with postgres_server() as postgres, mlflow_server(tmp_path, store_uri=postgres.uri) as server:
        ...                # MLflow as a team runs it: its runs in PostgreSQL

The server listens on 127.0.0.1 only, on a free port, serves artifacts (``--serve-artifacts``),
and is stopped by its PID (SIGTERM, which stops its workers too, then SIGKILL after a timeout).
``mlflow_server(tmp, admin=("admin", "a-password"))`` runs MLflow's basic-auth app
(``--app-name basic-auth``, which needs ``mlflow[auth]``): every request must then carry a user
name and password, and the admin user is made with that password.

``postgres_server()`` runs Debian's ``postgresql`` (``/usr/lib/postgresql/<version>/bin``),
installing it with apt-get when it is missing and this runs as root (else it raises
``PostgresUnavailable``, saying why). PostgreSQL refuses to run as root, so as root the server
runs as the system user ``trackpg`` (made with ``useradd`` when missing), through ``runuser``.
Its data directory is a throwaway directory under the system's temporary directory, its port a
free one on 127.0.0.1; it has one database, ``mlflow``, owned by the role ``track`` with a random
password, and it is stopped and its directory removed at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs

from track_core.testing.ports import free_port, port_is_free

__all__ = ["MlflowServer", "Postgres", "PostgresUnavailable", "mlflow_server", "postgres_server"]

_START_TIMEOUT = 300.0  # a busy machine has needed more than 120 s


@attrs.define
class MlflowServer:
    """A running ``mlflow server`` process (see ``mlflow_server``)."""

    directory: Path
    port: int
    workers: int = 2
    #: ``(user name, password)`` of the admin of a basic-auth server; None: no authentication.
    admin: tuple[str, str] | None = attrs.field(default=None, repr=False)
    #: The server's ``--backend-store-uri``; None: a sqlite file in ``directory``.
    store_uri: str | None = attrs.field(default=None, kw_only=True, repr=False)
    _process: subprocess.Popen[bytes] | None = None
    _log: object = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend_store_uri(self) -> str:
        if self.store_uri is not None:
            return self.store_uri
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

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (no clean shutdown), then reap them."""
        pid = self.pid
        if pid is None:
            raise RuntimeError("the mlflow server is not running")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop()


@contextlib.contextmanager
def mlflow_server(
    directory: str | os.PathLike[str],
    workers: int = 2,
    admin: tuple[str, str] | None = None,
    store_uri: str | None = None,
) -> Iterator[MlflowServer]:
    """Run ``mlflow server`` on 127.0.0.1 with its artifacts (and, without ``store_uri``, its
    sqlite store) in ``directory``; yield it running.

    ``server.url`` is its address; ``server.stop()`` / ``restart()`` / ``kill()`` for fault
    tests; ``admin=(user, password)`` runs the basic-auth app with that admin; ``store_uri``
    (``postgres.uri``) puts its runs in that database.
    """
    server = MlflowServer(Path(directory), free_port(), workers, admin, store_uri=store_uri)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- PostgreSQL ------------------------------------------------------------------------------
PG_USER = "trackpg"  # the system user the server runs as when this runs as root
DB_USER = "track"  # the database's role, as a team's server would have
DB_NAME = "mlflow"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be run here; the message says why."""


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _install_postgres() -> None:
    """Install Debian's postgresql, or raise PostgresUnavailable saying why it could not be."""
    if os.geteuid() != 0:
        raise PostgresUnavailable("PostgreSQL is not installed and this does not run as root")
    if shutil.which("apt-get") is None:
        raise PostgresUnavailable("PostgreSQL is not installed and there is no apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "postgresql"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            output = (done.stderr or done.stdout)[-2000:]
            raise PostgresUnavailable(f"{' '.join(command)} failed: {output}")


def _ensure_user() -> None:
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )


@attrs.define
class Postgres:
    """A running PostgreSQL server with one database, ``mlflow``, owned by the role ``track``
    (see ``postgres_server``)."""

    bin: Path
    directory: Path
    port: int
    password: str = attrs.field(repr=False)
    as_user: list[str] = attrs.field(factory=list)  # ["runuser", "-u", "trackpg", "--"] as root

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def uri(self) -> str:
        """The SQLAlchemy URI ``mlflow server --backend-store-uri`` takes. The driver is named:
        SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, earlier versions as psycopg2."""
        return f"postgresql+psycopg2://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{DB_NAME}"

    def run(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            log = self.directory / "postgres.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}\n{tail}")
        return done.stdout

    def init(self) -> None:
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        self._give(password_file)
        self.run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            DB_USER,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        password_file.unlink()

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
        self.run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "postgres.log"),
            "-w",
            "-t",
            "180",
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self) -> None:
        env = dict(os.environ, PGPASSWORD=self.password)
        command = [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port)]
        done = subprocess.run(
            [*command, "-U", DB_USER, DB_NAME],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"createdb failed: {done.stdout}{done.stderr}")

    def connect(self) -> object:
        """A psycopg2 connection to the ``mlflow`` database, to look at what MLflow stored."""
        import psycopg2  # type: ignore[import-untyped]

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=DB_USER, password=self.password, dbname=DB_NAME
        )

    def _give(self, path: Path) -> None:
        if self.as_user:
            shutil.chown(path, PG_USER, PG_USER)


@contextlib.contextmanager
def postgres_server(install: bool = True) -> Iterator[Postgres]:
    """Run a throwaway PostgreSQL server on 127.0.0.1; yield it running (see the module's
    docstring). ``install=False``: raise PostgresUnavailable instead of running apt-get."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        if not install:
            raise PostgresUnavailable("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
        _install_postgres()
        bin_dir = _postgres_bin()
        if bin_dir is None:
            raise PostgresUnavailable(
                "apt-get installed postgresql, but there is no /usr/lib/postgresql/*/bin/initdb"
            )
    as_user: list[str] = []
    if os.geteuid() == 0:
        _ensure_user()
        as_user = ["runuser", "-u", PG_USER, "--"]
    directory = Path(tempfile.mkdtemp(prefix="track-postgres-"))
    server = Postgres(bin_dir, directory, free_port(), secrets.token_hex(12), as_user)
    if as_user:
        shutil.chown(directory, PG_USER, PG_USER)
    try:
        server.init()
        server.start()
        try:
            server.create_database()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
