"""track_mlflow.testing's MlflowServer, as backend authors' tests use it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from track_core.testing.ports import free_port
from track_mlflow.testing import MlflowServer


def _open_files(under: Path) -> list[str]:
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listdir itself used, closed since
            continue
    return sorted(link for link in links if link.startswith(str(under)))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list open files")
def test_a_server_that_fails_to_start_says_why_and_leaves_no_file_open(tmp_path: Path) -> None:
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "mlflow.db").write_bytes(b"not a database " * 100)  # the server exits on it
    server = MlflowServer(directory, free_port())
    with pytest.raises(RuntimeError, match="exited while starting") as raised:
        server.start(timeout=300)
    assert "not a database" in str(raised.value)  # the server log's tail says why
    assert not server.running and server.pid is None
    assert _open_files(tmp_path) == []
