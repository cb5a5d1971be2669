"""The epochs of scalar sequences, kept in one artifact per run instead of one metric per sequence.

MLflow's metric rows have a step, a timestamp and a value: no epoch. track used to store each
sequence's epochs in a companion metric ``<key> :: epoch``, which doubled the keys a user scrolls
through in MLflow's UI (37 of 74 in a spaCy training). Now they are in ``track/epochs.json``:

    {"format": 1, "sequences": {"<metric key>": [[first_step, epoch], ...]}}

Each pair starts a range: a point of that sequence at step ``s`` has the epoch of the last pair
whose ``first_step <= s`` (``null``: no epoch), and none before the first pair. A sequence without
epochs has no entry. Epochs change rarely, so the file is small and is written again only in a
batch where an epoch changes (once per epoch in a training loop), not in every batch.

Runs written the old way keep their companion metrics, which the readers still read; a resumed
old run goes on writing companion metrics for the sequences that have one.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs

EPOCHS_ARTIFACT: Final = "track/epochs.json"
FORMAT: Final = 1


@attrs.define
class EpochRanges:
    """The epochs of one sequence (see the module doc). ``high`` is the highest step written:
    ranges past it hold no point yet, so a new epoch there needs one pair, not two."""

    starts: list[int] = attrs.field(factory=list)
    epochs: list[int | None] = attrs.field(factory=list)
    high: int = -1

    def at(self, step: int) -> int | None:
        index = bisect.bisect_right(self.starts, step) - 1
        return None if index < 0 else self.epochs[index]

    def assign(self, step: int, epoch: int | None) -> bool:
        """Record that the point at ``step`` has ``epoch``; True if the ranges changed."""
        starts = self.starts
        if starts and step >= starts[-1] and self.epochs[-1] == epoch:  # the usual case
            if step > self.high:
                self.high = step
            return False
        old = self.at(step)
        high = self.high
        if step > high:
            self.high = step
        if old == epoch:
            return False
        # Points after ``step`` that exist keep their epoch.
        if step + 1 <= high:
            index = bisect.bisect_left(starts, step + 1)
            if index == len(starts) or starts[index] != step + 1:
                starts.insert(index, step + 1)
                self.epochs.insert(index, old)
        index = bisect.bisect_left(starts, step)
        if index < len(starts) and starts[index] == step:
            self.epochs[index] = epoch
        else:
            starts.insert(index, step)
            self.epochs.insert(index, epoch)
        self._drop_redundant()
        return True

    def _drop_redundant(self) -> None:
        starts: list[int] = []
        epochs: list[int | None] = []
        previous: int | None = None
        for start, epoch in zip(self.starts, self.epochs, strict=True):
            if epoch != previous:
                starts.append(start)
                epochs.append(epoch)
                previous = epoch
        self.starts, self.epochs = starts, epochs

    def to_json(self) -> list[list[int | None]]:
        return [[start, epoch] for start, epoch in zip(self.starts, self.epochs, strict=True)]


@attrs.define
class EpochWriter:
    """The epochs a run writer has written: which keys have them, and whether the artifact
    must be written again. ``companion`` holds the keys of an old run that keep their
    ``<key> :: epoch`` metric."""

    ranges: dict[str, EpochRanges] = attrs.field(factory=dict)
    companion: frozenset[str] = frozenset()
    #: The highest step of keys that have no epoch yet.
    _high: dict[str, int] = attrs.field(factory=dict)
    #: The ranges changed since the artifact was last written.
    dirty: bool = False

    @classmethod
    def resume(
        cls, document: Mapping[str, EpochRanges], high: Mapping[str, int], companion: frozenset[str]
    ) -> EpochWriter:
        ranges = dict(document)
        for key, step in high.items():
            if key in ranges:
                ranges[key].high = max(ranges[key].high, step, ranges[key].starts[-1])
        return cls(ranges, companion, {k: v for k, v in high.items() if k not in ranges})

    def note(self, key: str, step: int, epoch: int | None) -> None:
        """Record the epoch of a scalar point (a key in ``companion`` is not noted)."""
        found = self.ranges.get(key)
        if found is None:
            if epoch is None:
                if step > self._high.get(key, -1):
                    self._high[key] = step
                return
            found = self.ranges[key] = EpochRanges(high=self._high.pop(key, -1))
        if found.assign(step, epoch):
            self.dirty = True

    def document(self) -> bytes:
        data = {
            "format": FORMAT,
            "sequences": {key: ranges.to_json() for key, ranges in sorted(self.ranges.items())},
        }
        return json.dumps(data, separators=(",", ":")).encode()


def parse_document(data: bytes) -> dict[str, EpochRanges]:
    """The ranges of each key in a ``track/epochs.json`` (ValueError if it is not one)."""
    document: Any = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{EPOCHS_ARTIFACT} is not in format {FORMAT}")
    result: dict[str, EpochRanges] = {}
    for key, pairs in document["sequences"].items():
        starts = [int(start) for start, _ in pairs]
        epochs = [None if epoch is None else int(epoch) for _, epoch in pairs]
        result[key] = EpochRanges(starts, epochs, max(starts, default=-1))
    return result
