"""A real PostgreSQL server and an ``mlflow server`` on it, as a team runs MLflow.

PostgreSQL is Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``). When its
binaries are missing and the tests run as root (CI on a fresh machine), the fixture installs it
with apt-get; otherwise it skips, saying why. PostgreSQL refuses to run as root, so as root the
server runs as the user ``trackpg`` (made with ``useradd`` when missing), through ``runuser``.
Its data directory is a throwaway directory under the system's temporary directory (pytest's
own is private to root), its port a free one on 127.0.0.1, and it is stopped at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from track_core.testing.ports import free_port
from track_mlflow.testing import MlflowServer

PG_USER = "trackpg"  # the system user the server runs as when the tests run as root
DB_USER = "track"  # the database's role, as a team's server would have
DB_NAME = "mlflow"


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _install_postgres() -> str | None:
    """Install Debian's postgresql; None when done, else why it could not be."""
    if os.geteuid() != 0:
        return "PostgreSQL is not installed and the tests do not run as root to install it"
    if shutil.which("apt-get") is None:
        return "PostgreSQL is not installed and there is no apt-get to install it"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "postgresql"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {(done.stderr or done.stdout)[-2000:]}"
    return None


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
    """A running PostgreSQL server with one database, ``mlflow``, owned by the role ``track``."""

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
        import psycopg2

        connection = psycopg2.connect(self._dsn("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            connection.close()

    def connect(self) -> object:
        """A psycopg2 connection to the ``mlflow`` database, to look at what MLflow stored."""
        import psycopg2

        return psycopg2.connect(self._dsn(DB_NAME))

    def _dsn(self, database: str) -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={DB_USER} password={self.password} "
            f"dbname={database}"
        )

    def _give(self, path: Path) -> None:
        if self.as_user:
            shutil.chown(path, PG_USER, PG_USER)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        reason = _install_postgres()
        if reason is not None:
            pytest.skip(reason)
        bin_dir = _postgres_bin()
        if bin_dir is None:
            pytest.skip("apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb")
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


@attrs.define
class PostgresMlflowServer(MlflowServer):
    """``mlflow server`` with its runs in PostgreSQL (the artifacts stay under ``directory``)."""

    store_uri: str = attrs.field(default="", kw_only=True, repr=False)

    @property
    def backend_store_uri(self) -> str:
        return self.store_uri

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (no clean shutdown), then reap them."""
        pid = self.pid
        assert pid is not None, "the server is not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, 9)
        deadline = time.monotonic() + 30
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop()


@pytest.fixture
def mlflow_on_postgres(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresMlflowServer]:
    server = PostgresMlflowServer(
        tmp_path_factory.mktemp("mlflow-server"), free_port(), workers=2, store_uri=postgres.uri
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
