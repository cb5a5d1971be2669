"""The durable spool: what a backend has not taken yet, kept on disk in tracking order.

A spool file is a header frame then item frames; each frame is a 4-byte big-endian length and a
pickle. The header names the backend and the run, so ``replay`` can finish the job later
(``python -m track_core replay PATH``). Appends are fsync'ed: a crash loses nothing appended.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

_LENGTH = struct.Struct(">I")
SPOOL_SUFFIX = ".spool"
FORMAT_VERSION = 1


def default_spool_dir() -> Path:
    configured = os.environ.get("TRACK_SPOOL_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "track" / "spool"


@attrs.frozen
class SpoolHeader:
    backend: str
    run_id: str
    version: int = FORMAT_VERSION


@attrs.define
class Spool:
    """An append-only spool file for one run."""

    path: Path
    header: SpoolHeader
    _items: int = 0

    @property
    def items(self) -> int:
        """Items appended by this process and not yet cleared."""
        return self._items

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, items: list[Any]) -> None:
        if not items:
            return
        new = not self.path.exists()
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as stream:
            if new:
                _write_frame(stream, attrs.asdict(self.header))
            _write_frame(stream, items)
            stream.flush()
            os.fsync(stream.fileno())
        self._items += len(items)

    def frames(self) -> Iterator[list[Any]]:
        """The item frames, in order."""
        _, frames = read_spool(self.path)
        return frames

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self._items = 0


def _write_frame(stream: Any, payload: object) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)


def _read_frames(path: Path) -> Iterator[Any]:
    with open(path, "rb") as stream:
        while True:
            prefix = stream.read(_LENGTH.size)
            if len(prefix) < _LENGTH.size:
                return  # end, or a frame cut short by a crash: everything before it is whole
            (length,) = _LENGTH.unpack(prefix)
            data = stream.read(length)
            if len(data) < length:
                return
            yield pickle.loads(data)


def read_spool(path: Path) -> tuple[SpoolHeader, Iterator[list[Any]]]:
    """The header and the item frames of a spool file."""
    frames = _read_frames(path)
    try:
        header = SpoolHeader(**next(frames))
    except StopIteration:
        raise ValueError(f"{path} is empty or not a track spool file") from None
    if header.version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has spool format {header.version}; this track reads {FORMAT_VERSION}"
        )
    return header, frames
