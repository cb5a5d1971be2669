"""Reading a Detectron2 ``EventStorage`` incrementally, without disturbing its other readers.

Scalars: ``storage.histories()`` holds every value put, with the iteration it was put at
(``HistoryBuffer.values()`` is a list of ``(value, iteration)``). The reader remembers, per name,
the last iteration it wrote, and at each read logs what came after it: each value once, at its own
iteration, however often it reads. A name that got no new value is not logged again (the usual
hooks re-log ``storage.latest()`` at every step). For names put with ``smoothing_hint=True`` the
value logged is the median of the last ``window_size`` values as of that iteration, which is what
Detectron2's ``JSONWriter`` (metrics.json) and ``TensorboardXWriter`` compute with
``latest_with_smoothing_hint(window_size)``; ``window_size=1`` logs the raw values. When a name was
put several times in one iteration, the last value counts (as in ``storage.latest()``).

Images (``storage._vis_data``) and histograms (``storage._histograms``) are read without
clearing them: ``TensorboardXWriter`` clears them after writing them, and owns that. The reader
keeps a reference to the list it last read and how many entries of it it has taken; a list
replaced by ``clear_images()`` / ``clear_histograms()`` is a new list, read from its start. So
that nothing put between two reads is lost when another writer clears first, ``attach(storage)``
wraps that storage object's ``clear_images`` / ``clear_histograms`` (on the instance, not the
class) to read what is new just before they clear; ``detach`` removes the wrappers.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable
from typing import Any

import attrs

import track_core as track
from track_detectron2.names import TRAIN_CONTEXT, NameMapper

logger = logging.getLogger(__name__)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    middle = n // 2
    if n % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def histogram_to_distribution(params: dict[str, Any]) -> track.Distribution:
    """A ``put_histogram`` record (``add_histogram_raw`` keywords) as a track Distribution."""
    low = float(params["min"])
    high = float(params["max"])
    counts = [float(c) for c in params["bucket_counts"]]
    limits = [float(x) for x in params["bucket_limits"]]
    edges = [low, *limits]
    if high <= low or any(b <= a for a, b in itertools.pairwise(edges)):
        # A constant tensor: every sample in one bin around the value.
        return track.Distribution(bin_edges=[low - 0.5, low + 0.5], counts=[float(sum(counts))])
    return track.Distribution(bin_edges=edges, counts=counts)


@attrs.define
class StorageReader:
    """Turns what is new in an ``EventStorage`` into ``run.track`` calls."""

    mapper: NameMapper
    window_size: int = 20
    log_images: bool = True
    log_histograms: bool = True
    _last_iter: dict[str, int] = attrs.field(factory=dict, init=False)
    _vis_list: list[Any] | None = attrs.field(default=None, init=False)
    _vis_taken: int = attrs.field(default=0, init=False)
    _hist_list: list[Any] | None = attrs.field(default=None, init=False)
    _hist_taken: int = attrs.field(default=0, init=False)
    _attached: Any = attrs.field(default=None, init=False)
    _warned: set[str] = attrs.field(factory=set, init=False)

    # -- scalars ----------------------------------------------------------------------------
    def write_scalars(self, run: track.Run, storage: Any) -> int:
        """Track every scalar value put since the last call; return how many."""
        hints = storage.smoothing_hints()
        window = self.window_size
        last_iter = self._last_iter
        mapper = self.mapper
        written = 0
        for key, buffer in storage.histories().items():
            data = buffer.values()
            n = len(data)
            if not n:
                continue
            last = last_iter.get(key, -1)
            if data[-1][1] <= last:
                continue
            start = n - 1
            while start > 0 and data[start - 1][1] > last:
                start -= 1
            smooth = window > 1 and hints.get(key, True)
            target = mapper(key)
            for index in range(start, n):
                value, iteration = data[index]
                if index + 1 < n and data[index + 1][1] == iteration:
                    continue  # several values in one iteration: the last one counts
                if smooth:
                    value = _median([v for v, _ in data[max(0, index - window + 1) : index + 1]])
                run.track(float(value), target.name, step=int(iteration), context=target.context)
                written += 1
            last_iter[key] = int(data[-1][1])
        return written

    # -- images and histograms --------------------------------------------------------------
    def write_media(self, run: track.Run, storage: Any) -> int:
        """Track images and histograms put since the last call (without clearing them)."""
        written = 0
        if self.log_images:
            current = storage._vis_data
            if current is not self._vis_list:
                self._vis_list, self._vis_taken = current, 0
            for name, image, iteration in current[self._vis_taken :]:
                written += self._track(run, name, iteration, functools.partial(track.Image, image))
            self._vis_taken = len(current)
        if self.log_histograms:
            current = storage._histograms
            if current is not self._hist_list:
                self._hist_list, self._hist_taken = current, 0
            for params in current[self._hist_taken :]:
                written += self._track(
                    run,
                    params["tag"],
                    params["global_step"],
                    functools.partial(histogram_to_distribution, params),
                )
            self._hist_taken = len(current)
        return written

    def _track(self, run: track.Run, name: str, iteration: int, make: Callable[[], object]) -> int:
        try:
            run.track(make(), name, step=int(iteration), context=TRAIN_CONTEXT)
        except Exception as error:  # a picture we cannot convert must not stop training
            if name not in self._warned:
                self._warned.add(name)
                logger.warning("track-detectron2: cannot track %r: %s", name, error)
            return 0
        return 1

    # -- not losing media to other writers ---------------------------------------------------
    def attach(self, storage: Any, run: track.Run) -> None:
        """Read new images/histograms just before anyone clears them from ``storage``."""
        if self._attached is storage:
            return
        self.detach()
        original_images = storage.clear_images
        original_histograms = storage.clear_histograms

        def clear_images() -> None:
            try:
                self.write_media(run, storage)
            finally:
                original_images()

        def clear_histograms() -> None:
            try:
                self.write_media(run, storage)
            finally:
                original_histograms()

        storage.clear_images = clear_images
        storage.clear_histograms = clear_histograms
        self._attached = storage

    def detach(self) -> None:
        storage, self._attached = self._attached, None
        if storage is None:
            return
        for attribute in ("clear_images", "clear_histograms"):
            if attribute in vars(storage):
                delattr(storage, attribute)

    def write(self, run: track.Run, storage: Any) -> int:
        return self.write_scalars(run, storage) + self.write_media(run, storage)
