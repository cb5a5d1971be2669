"""A backend's writes in a child process (``WriterOptions(process="on")`` or ``"auto"``).

With the writer in a thread, a backend SDK's Python work (Aim's encoding and RocksDB calls,
MLflow's SQLAlchemy) holds the GIL that the training thread needs between its tensor operations.
In a child process that work runs beside training instead of interleaved with it. Only the
backend calls move: validation, the queue, batching, retries and the spool stay in the training
process (``writer.py``), and ``ProcessRunWriter`` is the ``RunWriter`` they call.

The child is ``python -m track_core._writer_process``, started with ``subprocess`` rather than
``multiprocessing``, whose spawn start method imports the user's ``__main__`` again (an unguarded
training script would train twice). The two talk over a socket pair with
``multiprocessing.connection.Connection`` (pickled messages); the backend string travels over it,
never on a command line, because it may hold credentials.

The child ignores SIGINT and SIGTERM: the training process decides how the run ends and says so.
If the training process disappears without closing the run (SIGKILL), the child writes what it
was handed, closes the run KILLED and exits.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from track_core.backend import RunSpec, SequenceInfo, TrackedPoint
from track_core.errors import WriterProcessError
from track_core.params import Param
from track_core.status import Status

#: Seconds a new writer process may take to import its backend and open the run.
START_TIMEOUT = 300.0
#: Seconds the writer process may take to exit after it closed the run.
EXIT_TIMEOUT = 30.0


def can_run_in_process(options: Mapping[str, Any]) -> str | None:
    """Why a writer process cannot be used here (None when it can)."""
    if os.name != "posix":
        return "writer processes need a POSIX system"
    try:
        pickle.dumps(dict(options))
    except Exception as error:
        return f"the backend options cannot be sent to another process ({error})"
    return None


class ProcessRunWriter:
    """A RunWriter whose calls run in a child process on a backend made from the same string."""

    def __init__(self, spec: str, options: Mapping[str, Any], run: RunSpec | str) -> None:
        self._spec = spec
        self._options = dict(options)
        self._cwd = os.getcwd()  # relative locations mean the same to a restarted process
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._id = self._start(run)

    @property
    def id(self) -> str:
        return self._id

    @property
    def pid(self) -> int | None:
        """The writer process's PID (None while there is none)."""
        return self._process.pid if self._process is not None else None

    # -- RunWriter ---------------------------------------------------------------------------
    def sequences(self) -> Sequence[SequenceInfo]:
        return self._call("sequences")  # type: ignore[no-any-return]

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        self._call("write_points", list(points))

    def set_params(self, params: Mapping[str, Param]) -> None:
        self._call("set_params", dict(params))

    def set_name(self, name: str) -> None:
        self._call("set_name", name)

    def set_description(self, description: str) -> None:
        self._call("set_description", description)

    def set_tags(self, tags: frozenset[str]) -> None:
        self._call("set_tags", tags)

    def set_archived(self, archived: bool) -> None:
        self._call("set_archived", archived)

    def log_artifact(self, path: str, name: str) -> None:
        self._call("log_artifact", path, name)

    def close(self, status: Status, error: str | None) -> None:
        self._call("close", status, error)
        with self._lock:
            self._stop(wait=EXIT_TIMEOUT)

    # -- the conversation --------------------------------------------------------------------
    def _start(self, run: RunSpec | str) -> str:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "track_core._writer_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
            )
        except OSError as error:
            ours.close()
            raise WriterProcessError(f"could not start a track writer process: {error}") from error
        finally:
            theirs.close()
        connection = Connection(ours.detach())
        self._process, self._connection = process, connection
        message = {"sys_path": list(sys.path), "spec": self._spec, "options": self._options}
        try:
            connection.send({**message, "run": run})
            if not connection.poll(START_TIMEOUT):
                raise WriterProcessError(
                    f"the track writer process did not open its run within {START_TIMEOUT:.0f} s"
                )
            kind, value = connection.recv()
        except (EOFError, OSError) as error:
            self._stop(wait=EXIT_TIMEOUT)
            raise WriterProcessError(
                f"the track writer process ended while opening its run ({error!r}); "
                "its error output above says why"
            ) from error
        except WriterProcessError:
            self._stop(wait=0)
            raise
        if kind == "error":
            self._stop(wait=EXIT_TIMEOUT)
            raise value
        return str(value)

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            if self._connection is None:  # the last one died: a new one resumes the run
                self._start(self._id)
            connection = self._connection
            assert connection is not None
            try:
                connection.send((method, args))
                kind, value = connection.recv()
            except (EOFError, OSError) as error:
                code = self._process.poll() if self._process is not None else None
                self._stop(wait=0)
                raise WriterProcessError(
                    f"the track writer process of run {self._id} ended (exit code {code}) "
                    f"during {method}; the values are kept and a new process will retry"
                ) from error
        if kind == "error":
            raise value
        return value

    def _stop(self, wait: float) -> None:
        connection, process = self._connection, self._process
        self._connection = self._process = None
        if connection is not None:
            connection.close()
        if process is not None:
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _portable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else a RuntimeError that names it."""
    try:
        copy = pickle.loads(pickle.dumps(error))
        if isinstance(copy, BaseException):
            return copy
    except Exception:
        pass
    return RuntimeError(f"{type(error).__module__}.{type(error).__qualname__}: {error}")


def serve(descriptor: int) -> int:
    """The writer process: open the run, then carry out calls until it is closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    connection = Connection(descriptor)
    start = connection.recv()
    sys.path[:] = start["sys_path"]
    from track_core.discovery import get_backend

    try:
        backend = get_backend(start["spec"], **start["options"])
        run = start["run"]
        writer = backend.create_run(run) if isinstance(run, RunSpec) else backend.resume_run(run)
    except Exception as error:
        connection.send(("error", _portable(error)))
        return 1
    connection.send(("ok", writer.id))
    closed = False
    try:
        while not closed:
            try:
                method, args = connection.recv()
            except (EOFError, OSError):
                break
            try:
                value = getattr(writer, method)(*args)
            except Exception as error:
                connection.send(("error", _portable(error)))
                continue
            closed = method == "close"
            connection.send(("ok", value))
    finally:
        if not closed:  # the training process went away without closing the run
            writer.close(Status.KILLED, "the training process ended without closing the run")
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1])))
