"""Reading a Detectron2 ``EventStorage`` incrementally, without disturbing its other readers.

Scalars: ``storage.histories()`` holds every value put, with the iteration it was put at
(``HistoryBuffer.values()`` is a list of ``(value, iteration)``). The reader remembers, per name,
the last iteration it wrote, and at each read logs what came after it: each value once, at its own
iteration, however often it reads. A name that got no new value is not logged again (the usual
hooks re-log ``storage.latest()`` at every step). When a name was put several times in one
iteration, the value of that iteration is what ``storage.latest()`` / metrics.json show for it.

Smoothing: for names put with ``smoothing_hint=True`` the value logged at an iteration is the one
Detectron2's ``JSONWriter`` (metrics.json) and ``TensorboardXWriter`` would write had they written
at that iteration: ``latest_with_smoothing_hint(window_size)`` of the *installed* Detectron2 as of
that iteration. Detectron2 has taken the median over two trailing windows: the last
``window_size`` values (v0.6), and the values put in the last ``window_size`` iterations (later
versions, ``count_samples``). The reader asks ``latest_with_smoothing_hint`` of a scratch storage
of the storage's own class, once, on a probe history where the two differ, and computes that
median itself (numpy's median, bit for bit); a class that matches neither (a subclass with a rule
of its own) is asked for each value, on a scratch storage holding the history up to it.
``window_size=1`` logs the raw values.

Histograms: ``put_histogram`` makes ``bins`` equal-width bins between the tensor's min and max
(``torch.histc``) and records float32 ``torch.linspace`` edges, which are equal-width only to
float32 precision. The reader rebuilds the exact edges from min, max and the bin count (when the
recorded ones agree with them to float32 precision), and when the run's backend cannot hold that
many bins (``Backend.check_value`` refuses it; Aim holds at most 512) it merges adjacent bins by
the smallest integer factor that the backend accepts: every merged count is the exact sum of the
counts it replaces (when the bin count is not a multiple of the factor, empty bins are added past
the maximum, so the last bin ends slightly above it).

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


def _equal_width_edges(low: float, high: float, bins: int) -> list[float]:
    """``bins + 1`` exact equal-width edges from ``low`` to ``high`` (the last one is ``high``)."""
    span = high - low
    return [low + span * i / bins for i in range(bins)] + [high]


def histogram_to_distribution(params: dict[str, Any]) -> track.Distribution:
    """A ``put_histogram`` record (``add_histogram_raw`` keywords) as a track Distribution.

    Detectron2 bins equal-width between min and max and records float32 edges; when the recorded
    edges agree with the exact ones to float32 precision, the exact edges are used (what a
    backend that stores equal-width bins, such as Aim, can hold). Other edges are kept as given.
    """
    low = float(params["min"])
    high = float(params["max"])
    counts = [float(c) for c in params["bucket_counts"]]
    limits = [float(x) for x in params["bucket_limits"]]
    bins = len(counts)
    if not bins or high <= low:
        # A constant tensor: every sample in one bin around the value.
        return track.Distribution(bin_edges=[low - 0.5, low + 0.5], counts=[float(sum(counts))])
    exact = _equal_width_edges(low, high, bins)
    width = (high - low) / bins
    tolerance = 1e-2 * width + 1e-6 * max(abs(low), abs(high))
    if len(limits) == bins and all(
        abs(given - edge) <= tolerance for given, edge in zip(limits, exact[1:], strict=True)
    ):
        return track.Distribution(bin_edges=exact, counts=counts)
    edges = [low, *limits]
    if any(b <= a for a, b in itertools.pairwise(edges)):
        return track.Distribution(bin_edges=[low, high], counts=[float(sum(counts))])
    return track.Distribution(bin_edges=edges, counts=counts)


def merge_bins(value: track.Distribution, factor: int) -> track.Distribution:
    """``value`` with every ``factor`` adjacent equal-width bins merged into one.

    Counts stay exact (each is the sum of the ones it replaces). When the bin count is not a
    multiple of ``factor``, the last merged bin takes empty bins past the end, so the range ends
    up to ``factor - 1`` old bin widths above the old maximum.
    """
    counts = value.counts
    bins = len(counts)
    if factor <= 1:
        return value
    merged = [sum(counts[i : i + factor]) for i in range(0, bins, factor)]
    low, high = value.range
    width = (high - low) / bins
    new_bins = len(merged)
    top = high if new_bins * factor == bins else low + width * new_bins * factor
    return track.Distribution(bin_edges=_equal_width_edges(low, top, new_bins), counts=merged)


def _accepts(backend: Any, value: track.Distribution) -> bool:
    try:
        backend.check_value(value)
    except (ValueError, TypeError):
        return False
    return True


def fit_to_backend(backend: Any, value: track.Distribution) -> tuple[track.Distribution, int]:
    """``value`` as ``backend`` can store it, and the merge factor used (1: as it is).

    Asks the backend's own ``check_value``; if it refuses the value, finds the smallest integer
    factor whose merged distribution it accepts (fewer bins are accepted wherever more are).
    Returns ``(value, 1)`` when no factor helps (the caller's ``run.track`` then says why).
    """
    check = getattr(backend, "check_value", None)
    if check is None or _accepts(backend, value):
        return value, 1
    bins = len(value.counts)
    if bins < 2 or not _accepts(backend, merge_bins(value, bins)):
        return value, 1
    low, high = 1, bins  # refused at low, accepted at high
    while high - low > 1:
        middle = (low + high) // 2
        if _accepts(backend, merge_bins(value, middle)):
            high = middle
        else:
            low = middle
    return merge_bins(value, high), high


def _median(values: list[float]) -> float:
    """numpy's median of finite floats, bit for bit (the mean of the middle two for even n)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


#: The two trailing windows Detectron2's ``latest_with_smoothing_hint`` has taken the median
#: over: the last ``window_size`` values (v0.6: ``HistoryBuffer.median(window_size)``), and the
#: values put in the last ``window_size`` iterations (later: ``count_samples``).
LAST_VALUES = "values"
LAST_ITERATIONS = "iterations"

#: The rule each storage class was found to follow (None: neither; its API is called per value).
_RULES: dict[type, str | None] = {}


def _window_start(rule: str, data: list[Any], index: int, window: int) -> int:
    if rule == LAST_VALUES:
        return max(0, index - window + 1)
    newest = data[index][1]
    first = index
    while first > 0 and data[first - 1][1] > newest - window:
        first -= 1
    return first


#: Probe histories (value, iteration) and window size: where the two rules give different medians.
_PROBE_WINDOW = 3
_PROBE = ((1.0, 0), (2.0, 1), (4.0, 2), (50.0, 10), (60.0, 10), (70.0, 11), (9.0, 30))


def _probe_rule(make_storage: Callable[[Any], Any], storage: Any) -> str | None:
    """Which rule ``latest_with_smoothing_hint`` of ``storage``'s class follows, found by asking
    it on a scratch storage after each value of a probe history; None if neither matches."""
    try:
        scratch = make_storage(storage)
        answers = []
        for value, iteration in _PROBE:
            scratch.iter = iteration
            scratch.put_scalar("probe", value)
            answers.append(float(scratch.latest_with_smoothing_hint(_PROBE_WINDOW)["probe"][0]))
    except Exception as error:
        logger.info("track-detectron2: could not probe the smoothing rule: %s", error)
        return None
    data = list(_PROBE)
    for rule in (LAST_VALUES, LAST_ITERATIONS):
        expected = [
            _median([v for v, _ in data[_window_start(rule, data, i, _PROBE_WINDOW) : i + 1]])
            for i in range(len(data))
        ]
        if expected == answers:
            return rule
    return None


def _raw(data: list[Any], start: int, n: int) -> list[tuple[float, int]]:
    """``(value, iteration)`` of each iteration of ``data[start:n]``: its last value."""
    return [
        (float(value), int(iteration))
        for index, (value, iteration) in enumerate(data[start:n], start)
        if index + 1 >= n or data[index + 1][1] != iteration
    ]


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
    #: The last iteration of a training (not evaluation) scalar tracked.
    last_train_iteration: int | None = attrs.field(default=None, init=False)
    _scratch_type: Any = attrs.field(default=None, init=False)
    _bin_factors: dict[int, int] = attrs.field(factory=dict, init=False)

    # -- scalars ----------------------------------------------------------------------------
    def write_scalars(self, run: track.Run, storage: Any) -> int:
        """Track every scalar value put since the last call; return how many."""
        hints = storage.smoothing_hints()
        window = self.window_size
        last_iter = self._last_iter
        mapper = self.mapper
        written = 0
        # A trainer with async_write_metrics puts scalars from its executor thread meanwhile:
        # iterate over a copy, and read each history only up to the length it had.
        for key, buffer in list(storage.histories().items()):
            data = buffer.values()
            n = len(data)
            if not n:
                continue
            last = last_iter.get(key, -1)
            if data[n - 1][1] <= last:
                continue
            start = n - 1
            while start > 0 and data[start - 1][1] > last:
                start -= 1
            if window > 1 and hints.get(key, True):
                values = self._smoothed(storage, key, data, start, n)
            else:
                values = _raw(data, start, n)
            target = mapper(key)
            for value, iteration in values:
                run.track(value, target.name, step=iteration, context=target.context)
                written += 1
            if values and not target.is_eval:
                top = values[-1][1]
                if self.last_train_iteration is None or top > self.last_train_iteration:
                    self.last_train_iteration = top
            last_iter[key] = int(data[n - 1][1])
        return written

    def _smoothed(
        self, storage: Any, key: str, data: list[Any], start: int, n: int
    ) -> list[tuple[float, int]]:
        """``(value, iteration)`` for each iteration of ``data[start:n]``, smoothed as the
        installed Detectron2's ``latest_with_smoothing_hint`` smooths it as of that iteration."""
        window = self.window_size
        rule = self._rule_of(storage)
        out: list[tuple[float, int]] = []
        if rule is None:
            return self._smoothed_by_api(storage, key, data, start, n)
        for index in range(start, n):
            iteration = data[index][1]
            if index + 1 < n and data[index + 1][1] == iteration:
                continue  # the iteration's value once all of its values are in
            first = _window_start(rule, data, index, window)
            values = [v for v, _ in data[first : index + 1]]
            if any(v != v for v in values):  # NaN: numpy's median, through the API
                out.extend(self._smoothed_by_api(storage, key, data, index, index + 1))
                continue
            out.append((_median(values), int(iteration)))
        return out

    def _rule_of(self, storage: Any) -> str | None:
        kind = type(storage)
        if kind not in _RULES:
            _RULES[kind] = _probe_rule(self._scratch_storage, storage)
            if _RULES[kind] is None:
                logger.info(
                    "track-detectron2: %s smooths by a rule of its own: each value is smoothed "
                    "by its latest_with_smoothing_hint",
                    kind.__qualname__,
                )
        return _RULES[kind]

    def _smoothed_by_api(
        self, storage: Any, key: str, data: list[Any], start: int, n: int
    ) -> list[tuple[float, int]]:
        """Each value through ``latest_with_smoothing_hint`` of a scratch storage of the
        storage's class that holds the history up to that iteration (its last ``window_size``
        values and the values of its last ``window_size`` iterations before the first one)."""
        window = self.window_size
        first_iteration = data[start][1]
        seed = start
        while seed > 0 and (start - seed < window or data[seed - 1][1] > first_iteration - window):
            seed -= 1
        scratch = self._scratch_storage(storage)
        put = scratch.put_scalar
        for value, iteration in data[seed:start]:
            scratch.iter = iteration
            put(key, value)
        out: list[tuple[float, int]] = []
        for index in range(start, n):
            value, iteration = data[index]
            scratch.iter = iteration
            put(key, value)
            if index + 1 < n and data[index + 1][1] == iteration:
                continue
            smoothed = scratch.latest_with_smoothing_hint(window)[key][0]
            out.append((float(smoothed), int(iteration)))
        return out

    def _scratch_storage(self, storage: Any) -> Any:
        """An empty storage of ``storage``'s class (its own smoothing rule); Detectron2's
        ``EventStorage`` for a subclass that cannot be made without arguments."""
        kind = self._scratch_type
        if kind is None:
            kind = type(storage)
            try:
                kind()
            except Exception:
                from detectron2.utils.events import EventStorage  # type: ignore[import-untyped]

                kind = EventStorage
            self._scratch_type = kind
        return kind()

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
                    functools.partial(self._distribution, run, params),
                )
            self._hist_taken = len(current)
        return written

    def _distribution(self, run: track.Run, params: dict[str, Any]) -> track.Distribution:
        """The histogram as the run's backend can hold it (re-binned where it must be)."""
        value = histogram_to_distribution(params)
        backend = getattr(run, "backend", None)
        if backend is None or not value.is_uniform:
            return value  # merging is for equal-width bins; the backend says what it refuses
        bins = len(value.counts)
        factor = self._bin_factors.get(bins)
        if factor is not None:
            return merge_bins(value, factor)
        fitted, factor = fit_to_backend(backend, value)
        self._bin_factors[bins] = factor
        if factor > 1:
            logger.info(
                "track-detectron2: the %s backend holds fewer than %d bins: histograms of %d "
                "bins are stored with every %d adjacent bins merged (%d bins, counts exact)",
                getattr(backend, "name", "run's"),
                bins,
                bins,
                factor,
                len(fitted.counts),
            )
        return fitted

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
