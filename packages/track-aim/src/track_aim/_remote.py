"""An Aim server: its health check, and one shared read connection per server and process.

Readers (``track.open_run``, ``list_runs``, ``track copy`` ...) share one Aim client per server
address in a process, so that opening many runs does not start a client (two threads, a
connection) for each. Every read opens its own trees and releases them when it is done
(``_aim_private.ReadSession``); the client itself holds nothing on the server.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import attrs
from aim.sdk.repo import Repo

from track_aim import _aim_private as private
from track_aim._errors import AimServerUnavailableError


def check_server(address: str, timeout: float) -> None:
    """Raise AimServerUnavailableError unless the Aim server at ``aim://HOST:PORT`` answers."""
    host_port = address[len("aim://") :]
    url = f"http://{host_port}/status/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (OSError, urllib.error.URLError) as error:
        problem = str(getattr(error, "reason", error))
    host, _, port = host_port.rpartition(":")
    raise AimServerUnavailableError(
        f"cannot reach the Aim server at {address} ({problem}); start it with "
        f"`aim init --repo DIR && aim server --repo DIR --host {host} --port {port}`"
    )


def is_connection_error(error: BaseException) -> bool:
    """An error of the network stack under Aim's client (requests, urllib3, websockets)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    module = type(error).__module__ or ""
    return module.startswith(("requests", "urllib3", "websockets"))


def open_remote_repo(address: str, connect_timeout: float) -> Repo:
    """A private Aim client of the server at ``address`` (not Aim's pooled one)."""
    check_server(address, connect_timeout)
    try:
        repo = Repo(address)
    except Exception as error:
        raise AimServerUnavailableError(
            f"cannot connect to the Aim server at {address}: {error}"
        ) from error
    private.forget_remote(repo)
    return repo


@attrs.define
class _ReadClient:
    repo: Repo | None = None
    lock: threading.Lock = attrs.field(factory=threading.Lock)


_clients: dict[str, _ReadClient] = {}
_clients_lock = threading.Lock()
#: Clients inherited by a forked child: kept referenced (never used, never finalized there).
_inherited: list[Any] = []


def _forget_after_fork() -> None:
    global _clients_lock
    private.forget_inherited_cleanups()
    _inherited.extend(client.repo for client in _clients.values() if client.repo is not None)
    _clients.clear()
    _clients_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _still_known(repo: Repo) -> bool:
    """Whether the server still knows this client (it forgets every client when restarted)."""
    try:
        private.server_repo_path(repo)
    except Exception as error:
        if private.is_stale_client_error(error) or is_connection_error(error):
            return False
        raise
    return True


@contextlib.contextmanager
def read_session(address: str, connect_timeout: float) -> Iterator[private.ReadSession]:
    """A read session on the process's shared client of the server at ``address``.

    A connection error drops the shared client (the next read connects anew) and raises
    AimServerUnavailableError.
    """
    with _clients_lock:
        client = _clients.setdefault(address, _ReadClient())
    with client.lock:
        check_server(address, connect_timeout)
        if client.repo is not None and not _still_known(client.repo):
            private.abandon_remote(client.repo, None)  # the server restarted since
            client.repo = None
        if client.repo is None:
            client.repo = open_remote_repo(address, connect_timeout)
        repo = client.repo
        session = private.ReadSession(repo)
        try:
            yield session
        except Exception as error:
            if not is_connection_error(error):
                raise
            client.repo = None
            session.discard()  # nothing to release on a server that is gone
            private.abandon_remote(repo, None)
            raise AimServerUnavailableError(
                f"lost the Aim server at {address} while reading: {error}"
            ) from error
        finally:
            session.close()
