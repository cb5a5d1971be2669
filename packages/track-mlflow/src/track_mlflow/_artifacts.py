"""One run's artifact files: written and read through the MLflow client, or, for a client with
credentials of its own, through the tracking server's artifact API (``_compat.ServedArtifacts``)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from track_mlflow._compat import ServedArtifacts

#: What reading a missing artifact raises (``requests``' errors are OSErrors).
MISSING_ARTIFACT_ERRORS = (MlflowException, OSError)


@attrs.define
class RunArtifacts:
    """The artifacts of the run ``run_id``. ``served`` is set for runs whose artifacts the
    tracking server serves to a client with credentials of its own."""

    _client: MlflowClient
    _run_id: str
    _served: ServedArtifacts | None = None

    def put(self, files: Mapping[str, bytes]) -> None:
        """Write ``files`` (artifact path -> bytes); one ``log_artifacts`` call through a client."""
        if not files:
            return
        with tempfile.TemporaryDirectory(prefix="track-mlflow-") as tmp:
            for relative, data in files.items():
                path = Path(tmp, *relative.split("/"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            if self._served is None:
                self._client.log_artifacts(self._run_id, tmp)
                return
            for relative in files:
                directory, _, _ = relative.rpartition("/")
                self._served.upload(Path(tmp, *relative.split("/")), directory or None)

    def put_file(self, local_file: Path, directory: str | None) -> None:
        """Write ``local_file`` as ``directory/<its name>``."""
        if self._served is None:
            self._client.log_artifact(self._run_id, str(local_file), directory)
        else:
            self._served.upload(local_file, directory)

    def entries(self, path: str | None = None) -> list[tuple[str, bool]]:
        """``(path, is_dir)`` of what is directly under ``path``."""
        if self._served is not None:
            return self._served.list(path)
        return [
            (info.path, info.is_dir) for info in self._client.list_artifacts(self._run_id, path)
        ]

    def files(self, path: str | None = None) -> list[str]:
        """Every artifact file under ``path`` (recursively), sorted."""
        result: list[str] = []
        pending = [path]
        while pending:
            for entry, is_dir in self.entries(pending.pop()):
                if is_dir:
                    pending.append(entry)
                else:
                    result.append(entry)
        return sorted(result)

    def read(self, path: str) -> bytes:
        """The bytes of the file ``path``; raises one of ``MISSING_ARTIFACT_ERRORS`` if missing."""
        if self._served is not None:
            return self._served.read(path)
        with tempfile.TemporaryDirectory(prefix="track-mlflow-") as tmp:
            local = self._client.download_artifacts(self._run_id, path, tmp)
            return Path(local).read_bytes()

    def read_dir(self, path: str) -> dict[str, bytes]:
        """The files under the directory ``path``, by name relative to it ({} if there is none)."""
        if self._served is not None:
            try:
                return {name[len(path) + 1 :]: self._served.read(name) for name in self.files(path)}
            except MISSING_ARTIFACT_ERRORS:
                return {}
        with tempfile.TemporaryDirectory(prefix="track-mlflow-") as tmp:
            try:
                local = Path(self._client.download_artifacts(self._run_id, path, tmp))
            except MISSING_ARTIFACT_ERRORS:
                return {}
            if not local.is_dir():
                return {}
            return {
                file.relative_to(local).as_posix(): file.read_bytes()
                for file in local.rglob("*")
                if file.is_file()
            }
