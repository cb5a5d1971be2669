"""Import of TensorBoard event files: every run directory under a log dir becomes one track run.

Event files are read with the ``tensorboard`` package's own reader (``EventFileLoader`` and the
plugin ``EventAccumulator``, which turn every summary, old or new style, into its plugin's
tensor form). Re-running an import does not duplicate: each imported run holds the param
``tensorboard`` (its source directory and a SHA-256 of its event files); a source whose files
did not change is skipped, one whose files grew gets only the points it does not hold yet.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

import track_core as track
from track_core import Image, Text, TrackError
from track_tensorboard import convert
from track_tensorboard.names import Namer, NamesOption

PARAM_KEY = "tensorboard"
#: Most seconds an import waits for its backend to store one run's values.
WAIT_SECONDS = 600.0
IMPORT_TAG = "tensorboard-import"
TEXT_SUFFIX = "/text_summary"  # what torch's and tensorboardX's add_text append to the tag
#: Plugins whose data track holds; others (audio, pr_curves, mesh, ...) are counted as skipped.
PLUGINS = ("scalars", "histograms", "images", "text", "hparams")


class EventFileError(TrackError):
    """An event file that cannot be read, or a log dir that does not exist."""


@attrs.frozen
class Value:
    """One value read from an event file, in track's terms."""

    name: str
    context: Mapping[str, Any]
    step: int
    wall_time: float
    value: Any


@attrs.frozen
class RunData:
    """What one run directory holds."""

    path: Path
    values: list[Value]
    params: dict[str, Any]
    skipped: dict[str, int]  # plugin -> values not imported
    files: list[Path]


@attrs.frozen
class RunImport:
    """What the import did with one run directory."""

    source: str
    name: str
    run_id: str | None
    action: str  # "created", "updated", "unchanged" or "failed"
    values: int = 0
    error: str | None = None
    skipped: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen
class ImportReport:
    runs: tuple[RunImport, ...]

    @property
    def values(self) -> int:
        return sum(run.values for run in self.runs)

    @property
    def failed(self) -> tuple[RunImport, ...]:
        return tuple(run for run in self.runs if run.action == "failed")


def _is_event_file(name: str) -> bool:
    return "tfevents" in name


def find_run_dirs(logdir: str | os.PathLike[str]) -> list[Path]:
    """The directories under ``logdir`` (itself included) that hold event files, sorted."""
    root = Path(logdir)
    if not root.exists():
        raise EventFileError(f"log dir {str(root)!r} does not exist")
    if not root.is_dir():
        raise EventFileError(f"log dir {str(root)!r} is not a directory")
    found = []
    for folder, _, files in os.walk(root):
        if any(_is_event_file(name) for name in files):
            found.append(Path(folder))
    return sorted(found)


def _event_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _is_event_file(p.name))


def check_event_file(path: Path) -> None:
    """Raise EventFileError unless ``path`` reads as an event file (at least one record)."""
    from tensorboard.backend.event_processing import event_file_loader

    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
        first = next(iter(event_file_loader.EventFileLoader(str(path)).Load()), None)
    except OSError as error:
        raise EventFileError(f"cannot read event file {str(path)!r}: {error}") from None
    except Exception as error:
        raise EventFileError(
            f"cannot read event file {str(path)!r}: {type(error).__name__}: {error}"
        ) from None
    if first is None and size > 0:
        raise EventFileError(
            f"cannot read event file {str(path)!r}: not a TensorBoard event file "
            f"({size} bytes, no record could be read)"
        )


def _accumulator(folder: Path) -> Any:
    from tensorboard.backend.event_processing import plugin_event_accumulator

    accumulator = plugin_event_accumulator.EventAccumulator(
        str(folder),
        size_guidance={plugin_event_accumulator.TENSORS: 0},  # every value, no sampling
        tensor_size_guidance={plugin: 0 for plugin in PLUGINS},
        purge_orphaned_data=False,
    )
    accumulator.Reload()
    return accumulator


def hparams_of(content: bytes) -> dict[str, Any] | None:
    """The hparams of an hparams plugin's session-start content (None for other contents)."""
    from tensorboard.plugins.hparams import metadata

    try:
        info = metadata.parse_session_start_info_plugin_data(content)
    except Exception:  # session end info, experiment info
        return None
    params: dict[str, Any] = {}
    for key, value in info.hparams.items():
        kind = value.WhichOneof("kind")
        if kind is not None:
            params[key] = getattr(value, kind)
    return params


def _hparams(accumulator: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    try:
        contents = accumulator.PluginTagToContent("hparams")
    except KeyError:
        return params
    for content in contents.values():
        params.update(hparams_of(content) or {})
    return params


@attrs.frozen
class Merged:
    """A sub-directory that belongs to its parent's run: the one ``add_hparams`` makes (named by a
    timestamp) or one of ``add_scalars`` (torch's ``<main tag>_<sub tag>``, tensorboardX's
    ``<main tag>/<sub tag>``, holding the main tag only)."""

    path: Path
    sub_tag: str | None = None  # add_scalars' sub tag; None for an hparams directory


def read_run_dir(
    folder: Path, namer: Namer, merged: Iterable[Merged] = (), load: Any = None
) -> RunData:
    """Every value of one run directory and of the sub-directories merged into it."""
    from tensorboard.util import tensor_util

    load = load or _accumulator
    files: list[Path] = []
    values: list[Value] = []
    params: dict[str, Any] = {}
    skipped: dict[str, int] = {}
    for source in (Merged(folder), *merged):
        source_files = _event_files(source.path)
        for path in source_files:
            check_event_file(path)
        files.extend(source_files)
        accumulator = load(source.path)
        params.update(_hparams(accumulator))
        for tag in accumulator.Tags().get("tensors", []):
            plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
            events = accumulator.Tensors(tag)
            if plugin not in PLUGINS or plugin == "hparams":
                if plugin != "hparams":
                    skipped[plugin or "tensor"] = skipped.get(plugin or "tensor", 0) + len(events)
                continue
            base = (
                tag[: -len(TEXT_SUFFIX)] if plugin == "text" and tag.endswith(TEXT_SUFFIX) else tag
            )
            if source.sub_tag is not None:
                name, context = namer.series(base, source.sub_tag)
            else:
                name, context = namer(base)
            for event in events:
                array = tensor_util.make_ndarray(event.tensor_proto)
                for value, extra in _values(plugin, array, tag):
                    values.append(
                        Value(
                            name,
                            {**context, **extra},
                            int(event.step),
                            float(event.wall_time),
                            value,
                        )
                    )
    return RunData(folder, values, params, skipped, files)


def _values(plugin: str, array: Any, tag: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    if plugin == "scalars":
        yield float(array.item()) if array.size == 1 else float(array.ravel()[0]), {}
    elif plugin == "histograms":
        if array.size:
            yield convert.stored_histogram(array, tag), {}
    elif plugin == "images":
        encoded = list(array.ravel()[2:])
        for index, png in enumerate(encoded):
            yield Image.from_png(bytes(png)), ({"index": index} if len(encoded) > 1 else {})
    elif plugin == "text":
        parts = [
            item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
            for item in array.ravel()
        ]
        yield Text("\n".join(parts)), {}


def content_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _group(dirs: list[Path], load: Any) -> list[tuple[Path, list[Merged]]]:
    """Run dirs with the sub-directories of their own writer merged into them (see Merged)."""
    as_set = set(dirs)
    groups: dict[Path, list[Merged]] = {}
    for folder in dirs:
        owner = next((p for p in folder.parents if p in as_set), None)
        merged = _merged(folder, owner, load) if owner is not None else None
        if owner is not None and merged is not None:
            groups.setdefault(owner, []).append(merged)
        else:
            groups.setdefault(folder, [])
    return sorted(groups.items())


def _merged(folder: Path, owner: Path, load: Any) -> Merged | None:
    relative = folder.relative_to(owner).as_posix()
    try:
        float(relative)
    except ValueError:
        pass
    else:
        return Merged(folder)
    try:
        accumulator = load(folder)
        tags = accumulator.Tags().get("tensors", [])
        plugins = {accumulator.SummaryMetadata(tag).plugin_data.plugin_name for tag in tags}
    except Exception:  # read again, and reported, as a run of its own
        return None
    if len(tags) == 1 and plugins == {"scalars"}:
        main = tags[0].replace("/", "_")
        for prefix in (main + "_", main + "/"):  # torch's layout, tensorboardX's
            if relative.startswith(prefix) and "/" not in relative[len(prefix) :]:
                return Merged(folder, relative[len(prefix) :])
    return None


def _existing(backend: Any, experiment: str | None, name: str, source: str) -> Any:
    for info in backend.list_runs(experiment):
        if info.name != name:
            continue
        stored = backend.read_run(info.id)
        data = stored.params.get(PARAM_KEY)
        if isinstance(data, Mapping) and data.get("source") == source:
            return stored
    return None


def import_logdir(
    logdir: str | os.PathLike[str],
    to: str,
    experiment: str | None = None,
    *,
    names: NamesOption = True,
    progress: bool | None = None,
    on_run: Callable[[RunImport], None] | None = None,
) -> ImportReport:
    """Import every run directory under ``logdir`` into the backend ``to``.

    A run is named after its directory relative to ``logdir`` (the log dir's own name for event
    files directly in it), tagged ``tensorboard-import``, in ``experiment``. ``progress``: a
    progress bar on stderr (tqdm when installed); None shows one when stderr is a terminal.
    A directory that cannot be read is reported (``action="failed"``) and the others go on.
    """
    root = Path(logdir)
    cache: dict[Path, Any] = {}

    def load(folder: Path) -> Any:
        if folder not in cache:
            cache.clear()  # one directory's values in memory at a time (plus the one grouped)
            cache[folder] = _accumulator(folder)
        return cache[folder]

    groups = _group(find_run_dirs(root), load)
    if not groups:
        raise EventFileError(f"log dir {str(root)!r} holds no TensorBoard event files")
    backend = track.get_backend(to)
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(len(groups), show)
    results = []
    try:
        for folder, merged in groups:
            result = _import_one(root, folder, merged, to, backend, experiment, names, load)
            results.append(result)
            bar.advance(result)
            if on_run is not None:
                on_run(result)
    finally:
        bar.close()
    return ImportReport(tuple(results))


def _import_one(
    root: Path,
    folder: Path,
    merged: list[Merged],
    to: str,
    backend: Any,
    experiment: str | None,
    names: NamesOption,
    load: Any,
) -> RunImport:
    relative = folder.relative_to(root).as_posix()
    name = root.resolve().name if relative == "." else relative
    source = str(folder.resolve())
    try:
        data = read_run_dir(folder, Namer(names), merged, load)
        digest = content_hash(data.files)
    except EventFileError as error:
        return RunImport(source, name, None, "failed", error=str(error))
    stored = _existing(backend, experiment, name, source)
    if stored is not None and stored.params[PARAM_KEY].get("sha256") == digest:
        return RunImport(source, name, stored.id, "unchanged", skipped=data.skipped)
    held: dict[tuple[str, Any], set[int]] = {}
    if stored is not None:
        for info in stored.sequences():
            held[(info.name, info.context)] = {
                p.step for p in stored.points(info.name, info.context)
            }
    run = track.start_run(
        to,
        experiment=experiment,
        name=None if stored is not None else name,
        tags=None if stored is not None else [IMPORT_TAG],
        run_id=None if stored is None else stored.id,
        # an import waits for its backend: values are not left in a spool after 15 s
        writer=track.WriterOptions(close_timeout=WAIT_SECONDS),
    )
    written = 0
    problems: list[str] = []
    try:
        if stored is None and data.params:
            run["hparams"] = data.params
        elif data.params:
            run["hparams"] = {**dict(stored.params.get("hparams") or {}), **data.params}
        for item in data.values:
            if held:
                steps = held.get((item.name, track.Context.of(item.context)))
                if steps is not None and item.step in steps:
                    continue
            try:
                run.track(
                    item.value,
                    item.name,
                    step=item.step,
                    context=item.context,
                    timestamp=item.wall_time if item.wall_time > 0 else None,
                )
                written += 1
            except (TypeError, ValueError) as error:
                if len(problems) < 5:
                    problems.append(f"{item.name} step {item.step}: {error}")
        if not run.flush(timeout=WAIT_SECONDS):
            # no "tensorboard" param: a later import of this directory starts over
            run.close(track.Status.FAILED, "the backend did not take every value")
            return RunImport(
                source,
                name,
                run.id,
                "failed",
                values=written,
                error=f"the backend did not take every value within {WAIT_SECONDS:.0f} s; what "
                "is left is in track's spool (python -m track_core replay)",
            )
        run[PARAM_KEY] = {"source": source, "sha256": digest, "files": len(data.files)}
    except BaseException as error:
        run.close(track.Status.FAILED, error)
        raise
    run.close()
    if problems:
        warnings.warn(
            f"track-tensorboard: {source}: values not imported: {'; '.join(problems)}",
            track.TrackWarning,
            stacklevel=3,
        )
    return RunImport(
        source,
        name,
        run.id,
        "updated" if stored is not None else "created",
        values=written,
        skipped=data.skipped,
    )


class _Progress:
    """tqdm when installed, else a one-line counter; nothing unless shown."""

    def __init__(self, total: int, show: bool) -> None:
        self._bar: Any = None
        self._show = show
        self._total = total
        self._done = 0
        self._values = 0
        if show:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, unit="run", desc="importing", file=sys.stderr)

    def advance(self, result: RunImport) -> None:
        self._done += 1
        self._values += result.values
        if self._bar is not None:
            self._bar.set_postfix(values=self._values, refresh=False)
            self._bar.update(1)
        elif self._show:
            print(
                f"\rimporting: {self._done}/{self._total} runs, {self._values} values",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._show:
            print(file=sys.stderr)
