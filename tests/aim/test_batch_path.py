"""track_aim's direct batch path stores exactly what Aim's own ``Run.track`` stores.

The same values (metrics in several contexts and batches, ints turning a sequence into Aim's
"number", steps out of order and tracked again, NaN and infinities, epochs, images among the
metrics, a resumed run) go once through track into one repo and once through ``aim.Run.track``
into another, with the same timestamps. Then Aim's own readers must return the same from both
(every value, step, epoch, timestamp and context; the sequence info Aim keeps in the meta tree:
first / last value and step, min, max, dtype), and the RocksDB records of both runs' series and
sequence metadata must be byte for byte the same.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aim
import aim.sdk.tracker
import aimrocks
import numpy as np
import pytest
from aim.storage.treeviewproxy import ProxyTree
from aim_storage import open_aim_run

import track_core as track
from track_aim import _aim_private as private
from track_aim import _writer as private_writer
from track_aim._convert import to_aim
from track_aim.testing import AimServer
from track_core.backend import RunSpec, TrackedPoint
from track_core.context import Context
from track_core.status import Status
from track_core.values import Image, ValueKind

T0 = 1_750_000_000.0

#: (value, name, step, epoch, context, timestamp), in the order tracked.
Row = tuple[Any, str, int, int | None, dict[str, Any], float]


def _image(seed: int) -> Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return Image(pixels, caption=f"sample {seed}")


def session_one() -> list[Row]:
    rows: list[Row] = []
    clock = iter(T0 + 0.001 * i for i in range(1_000_000))
    for step in range(1_300):  # more than one batch of the core (1000 points)
        epoch = step // 500
        for subset in ("train", "val"):
            rows.append((1.0 / (step + 1), "loss", step, epoch, {"subset": subset}, next(clock)))
        if step % 10 == 0:
            for layer in range(40):
                rows.append(
                    (float(layer - step), f"layer{layer}/grad", step // 10, None, {}, next(clock))
                )
        if step % 100 == 0:
            rows.append(
                (_image(step), "samples", step // 100, epoch, {"subset": "val"}, next(clock))
            )
    # ints first, then floats: Aim turns the sequence's dtype into "number"
    for step, value in enumerate([3, -7, 2, 0.5, -9.25, 11]):
        rows.append((value, "acc", step, None, {"subset": "train", "fold": 1}, next(clock)))
    # steps out of order, one tracked again (Aim overwrites), non-finite values
    for step, value in [(5, 0.1), (3, 0.3), (7, 0.7), (7, 0.77), (6, math.nan), (9, math.inf)]:
        rows.append((value, "lr", step, 0, {}, next(clock)))
    rows.append((-math.inf, "lr", 10, 0, {}, next(clock)))
    return rows


def session_two() -> list[Row]:
    """After the run is resumed: existing sequences go on, a new one starts."""
    rows: list[Row] = []
    for step in range(1_300, 1_450):
        rows.append((0.5 / (step + 1), "loss", step, 3, {"subset": "train"}, T0 + 5000 + step))
    rows.append((0.01, "lr", 2, 0, {}, T0 + 7000))  # below last_step: last stays
    rows.append((42, "late", 0, None, {"subset": "test"}, T0 + 7001))
    return rows


class _FrozenClock:
    """Stands in for the ``datetime`` module in aim.sdk.tracker: ``Run.track`` stamps each value
    with ``datetime.datetime.now(pytz.utc).timestamp()``, here the timestamp the row gives."""

    def __init__(self) -> None:
        self.now = 0.0
        clock = self

        class _Moment:
            def timestamp(self) -> float:
                return clock.now

        class _DateTime:
            @staticmethod
            def now(tz: object = None) -> _Moment:
                return _Moment()

        self.datetime = _DateTime


def raw_aim(repo: str, sessions: list[list[Row]], monkeypatch: pytest.MonkeyPatch) -> str:
    clock = _FrozenClock()
    monkeypatch.setattr(aim.sdk.tracker, "datetime", clock)
    run_hash = None
    for rows in sessions:
        run = aim.Run(
            run_hash=run_hash,
            repo=repo,
            system_tracking_interval=None,
            log_system_params=False,
            capture_terminal_logs=False,
        )
        run_hash = run.hash
        for value, name, step, epoch, context, timestamp in rows:
            clock.now = timestamp
            run.track(to_aim(value), name=name, step=step, epoch=epoch, context=context)
        run.close()
    monkeypatch.undo()
    assert run_hash is not None
    return str(run_hash)


def with_track(backend: str, sessions: list[list[Row]]) -> str:
    run_id = None
    for rows in sessions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", track.TrackWarning)  # NaN and infinity are said
            # a loaded machine can take longer than the default 15 s to store a session
            options = track.WriterOptions(close_timeout=600.0)
            with track.start_run(backend, run_id=run_id, writer=options) as run:
                for value, name, step, epoch, context, timestamp in rows:
                    run.track(
                        value, name, step=step, epoch=epoch, context=context, timestamp=timestamp
                    )
        assert run.pending == 0, "the session was not stored before the next one"
        run_id = run.id
    assert run_id is not None
    return run_id


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def read_through_aim(repo: Path, run_hash: str) -> dict[str, Any]:
    """Everything Aim's own readers return about the run's sequences."""
    stored = open_aim_run(repo, run_hash)
    sequences: dict[Any, Any] = {}
    for metric in stored.metrics():
        steps, (values, epochs, timestamps) = metric.data.numpy()
        key = ("metric", metric.name, tuple(sorted(metric.context.to_dict().items())))
        sequences[key] = {
            "steps": steps.tolist(),
            "values": [float(v) for v in values],
            "epochs": epochs.tolist(),
            "timestamps": timestamps.tolist(),
            "first_step": metric.first_step(),
            "last_step": metric.last_step(),
        }
    for name, context, _ in stored.iter_sequence_info_by_type("aim.image"):
        images = stored.get_image_sequence(name, context)
        key = ("images", name, tuple(sorted(context.to_dict().items())))
        sequences[key] = {
            step: (image.caption, private.image_png(image), epoch, timestamp)
            for step, (image, epoch, timestamp) in _image_items(images)
        }
    info = stored.meta_run_tree.collect("traces")
    return {
        "sequences": sequences,
        "traces": info,
        "typed_traces": stored.meta_run_tree.collect("typed_traces"),
        "contexts": stored.meta_run_tree.collect("contexts"),
    }


def _counted(sent: Counter[str], name: str, method: Any) -> Any:
    def counted(self: Any, *args: Any) -> Any:
        sent[name] += 1
        if name == "update":
            sent["update values"] += len(args[1])
        return method(self, *args)

    return counted


def _image_items(images: Any) -> Iterator[tuple[int, tuple[Any, Any, Any]]]:
    steps, (values, epochs, timestamps) = images.data.items_list()
    assert steps
    for step, value, epoch, timestamp in zip(steps, values, epochs, timestamps, strict=True):
        yield step, (value, epoch, timestamp)


def stored_records(repo: Path, run_hash: str) -> dict[str, dict[bytes, bytes]]:
    """The RocksDB records of the run's series and of its sequences' metadata, with the run's
    hash taken out of the keys (the two runs have different hashes)."""
    hash_bytes = run_hash.encode()
    records = {}
    for name in ("seqs", "meta"):
        db = aimrocks.DB(
            str(repo / ".aim" / name / "chunks" / run_hash), aimrocks.Options(), read_only=True
        )
        iterator = db.iteritems()
        iterator.seek_to_first()
        items = {key.replace(hash_bytes, b"<run>"): value for key, value in iterator}
        if name == "meta":  # the run's params, end time and props are not the sequences'
            items = {
                key: value
                for key, value in items.items()
                if any(part in key for part in (b"\xfetraces", b"\xfecontexts", b"typed_traces"))
            }
        records[name] = items
        del iterator, db
    return records


@pytest.mark.parametrize("where", ["local", "server"])
@pytest.mark.parametrize("direct", [True, False], ids=["direct-batches", "per-value-fallback"])
def test_the_batch_path_stores_what_run_track_stores(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    direct: bool,
    where: str,
) -> None:
    """Locally: one RocksDB write batch per batch; to a server: one ``update`` instruction per
    array and sequence in each message. On an unknown Aim version: Aim's per-value path."""
    assert private.direct_batches(), "the direct batch path is off for this Aim version"
    if where == "local":
        raw_dir, track_dir = tmp_path / "raw", tmp_path / "track"
        raw_at, track_at = str(raw_dir), f"aim:{track_dir}"
    else:
        server: AimServer = request.getfixturevalue("server")
        raw_dir = track_dir = server.repo_dir
        raw_at = track_at = server.url
    sessions = [session_one(), session_two()]
    raw_hash = raw_aim(raw_at, sessions, monkeypatch)  # undoes its patches when done
    if not direct:  # as on an Aim version the direct path does not know
        monkeypatch.setattr(private, "_direct_batches", False)
    sent = Counter[str]()
    for method in ("update", "__setitem__"):
        monkeypatch.setattr(ProxyTree, method, _counted(sent, method, getattr(ProxyTree, method)))
    assert private.direct_batches() is direct
    track_hash = with_track(track_at, sessions)
    monkeypatch.undo()
    if where == "server":
        metric_values = sum(type(row[0]) is not Image for session in sessions for row in session)
        if direct:  # every metric value in one update per array, of several values each
            assert sent["update values"] == 4 * metric_values
            assert sent["update"] < sent["update values"]
        else:
            assert sent["update"] == 0
            assert sent["__setitem__"] >= 4 * metric_values

    raw, tracked = read_through_aim(raw_dir, raw_hash), read_through_aim(track_dir, track_hash)
    assert raw["sequences"].keys() == tracked["sequences"].keys()
    assert (
        len(raw["sequences"]) == 2 + 40 + 1 + 1 + 1 + 1
    )  # loss x2, layers, samples, acc, lr, late
    for key, expected in raw["sequences"].items():
        assert _same(tracked["sequences"][key], expected), key
    assert _same(tracked["traces"], raw["traces"])
    assert tracked["typed_traces"] == raw["typed_traces"]
    assert tracked["contexts"] == raw["contexts"]

    raw_records = stored_records(raw_dir, raw_hash)
    track_records = stored_records(track_dir, track_hash)
    assert len(raw_records["seqs"]) > 4 * 2 * 1_300
    assert track_records == raw_records


def test_an_aim_version_the_path_does_not_know_is_said_once(tmp_path: Path) -> None:
    with pytest.warns(private.AimVersionWarning, match="Aim 3.30.0") as caught:
        assert not private.direct_batches("3.30.0")
    assert len(caught) == 1
    assert private.direct_batches()  # the installed one is known, and said nothing


def test_wide_steps_to_a_server_go_one_sequence_per_message(
    server: AimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training that logs many metrics a step outruns an Aim server (sustained load: 1000
    metrics x 10 steps/s). The backend declares a batch of 25 such steps, so that a batch the
    server fell behind on holds several values of each sequence: sent grouped by sequence, each
    message carries one sequence's values as one ``update`` per array and one summary, where
    batches of one step (the core's default 1000 points) sent one value per sequence."""
    metrics, steps = 1000, private_writer.REMOTE_CHUNK
    backend = track.get_backend(server.url)
    assert backend.batch_size >= metrics * steps  # type: ignore[attr-defined]
    assert track.get_backend(f"aim:{server.repo_dir}").batch_size == 1000  # type: ignore[attr-defined]

    def wide_steps(first: int, count: int) -> list[TrackedPoint]:
        return [
            TrackedPoint(
                f"layer{index:04d}", Context(), ValueKind.SCALAR, step, None, T0 + step,
                step + index / 1e4,
            )
            for step in range(first, first + count)
            for index in range(metrics)
        ]  # fmt: skip

    writer = backend.create_run(RunSpec(experiment="wide"))
    writer.write_points(wide_steps(0, 1))  # the sequences' first values (their info is new)
    batch = wide_steps(1, steps)
    assert len(batch) <= backend.batch_size  # type: ignore[attr-defined]
    sent = Counter[str]()
    for method in ("update", "__setitem__"):
        monkeypatch.setattr(ProxyTree, method, _counted(sent, method, getattr(ProxyTree, method)))
    writer.write_points(batch)
    monkeypatch.undo()
    writer.close(Status.FINISHED, None)
    # four arrays per sequence, each one update of all the sequence's values in the batch
    assert sent["update"] == 4 * metrics
    assert sent["update values"] == 4 * metrics * steps
    # the summary (last, last_step, max) once per sequence, not once per value
    assert sent["__setitem__"] == 3 * metrics
    stored = backend.read_run(writer.id)
    for index in (0, 499, 999):
        read = stored.points(f"layer{index:04d}", Context())
        assert [point.step for point in read] == list(range(steps + 1))
        assert [point.value for point in read] == [step + index / 1e4 for step in range(steps + 1)]
