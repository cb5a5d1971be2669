"""Spool format 2: exact round trips without pickle, bounded frames, damage found and reported,
format 1 read without running code, replay that loses and duplicates nothing, a full disk.

Every test writes and reads real files; the full-disk test mounts a 64 KiB tmpfs where the
machine allows it (root), and otherwise injects ENOSPC at the write (the skip reason says so).
"""

from __future__ import annotations

import errno
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import track_core as track
from track_core import _spool as spool_module
from track_core.__main__ import main as cli
from track_core._spool import (
    FRAME_MARKER,
    MAX_FRAME_ITEMS,
    Spool,
    SpoolHeader,
    decode_item,
    decode_payload,
    encode_item,
    encode_items,
    read_spool,
)
from track_core._writer import Operation
from track_core.backend import RunSpec
from track_core.context import Context
from track_core.discovery import get_backend
from track_core.errors import SpoolDamagedWarning, SpoolFormatError, SpoolWriteWarning
from track_core.memory import MemoryBackend, MemoryStore
from track_core.status import Status
from track_core.values import Distribution, Image, Text, ValueKind


def point(step: int, name: str = "loss", context: Any = None, value: Any = None) -> tuple[Any, ...]:
    return (
        name,
        Context.of(context),
        ValueKind.SCALAR,
        step,
        step // 10,
        1_700_000_000.0 + step / 8,
        float(step) / 3 if value is None else value,
    )


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down; floats equal bit for bit (NaN, -0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) in (tuple, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is Context:
        return a == b and same(a.to_dict(), b.to_dict())
    if type(a) is Operation:
        return a.method == b.method and same(a.args, b.args)
    if type(a) is Distribution:
        return same(a.bin_edges, b.bin_edges) and same(a.counts, b.counts)
    return bool(a == b)


def write_spool(path: Path, batches: list[list[Any]], run_id: str = "run-1") -> Spool:
    spool = Spool(path, SpoolHeader("memory:spool-tests", run_id))
    for batch in batches:
        spool.append(batch)
    return spool


def read_all(path: Path) -> tuple[list[Any], spool_module.SpoolDamage]:
    _, frames = read_spool(path)
    items = [item for frame in frames for item in frame]
    return items, frames.damage


def frame_starts(data: bytes) -> list[int]:
    """Offsets of the frames of an undamaged file (by their markers; payloads are ASCII)."""
    starts, position = [], data.find(FRAME_MARKER)
    while position >= 0:
        starts.append(position)
        position = data.find(FRAME_MARKER, position + 1)
    return starts


NAN_WITH_PAYLOAD = struct.unpack(">d", bytes.fromhex("fff8000000000123"))[0]


def test_every_kind_of_item_round_trips_exactly(tmp_path: Path) -> None:
    image = Image(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), caption="caption ✓")
    items: list[Any] = [
        point(0, value=float("nan")),
        point(1, value=NAN_WITH_PAYLOAD),
        point(2, value=float("inf")),
        point(3, value=float("-inf")),
        point(4, value=-0.0),
        point(5, value=2**63 - 1),
        point(6, value=2**70),
        point(7, value=-(2**80) - 1),
        point(8, value=5e-324),
        point(9, value=1.7976931348623157e308),
        point(2**63 - 1, value=0.1),
        point(11, context={"big": 2**70, "neg": -(2**64)}),
        (
            "img",
            Context({"i": 1, "f": 0.5, "b": True, "n": None, "s": "x"}),
            ValueKind.IMAGE,
            0,
            None,
            1.0,
            image,
        ),
        ("txt", Context(), ValueKind.TEXT, 0, None, 2.0, Text('line\nnext \u2603 \x00 "q"')),
        (
            "dist",
            Context(),
            ValueKind.DISTRIBUTION,
            0,
            3,
            3.0,
            Distribution(bin_edges=[-1.5, -0.0, 0.25, 1e300], counts=[0.0, 2.0, 1.5]),
        ),
        Operation(
            "set_params",
            (
                {
                    "lr": 0.1,
                    "nested": {
                        "list": [1, 2.5, None, True, "s", {"deep": float("nan")}],
                        "big": 2**100,
                        "neg0": -0.0,
                    },
                },
            ),
        ),
        Operation("set_tags", (frozenset({"a", "b c", "ü"}),)),
        Operation("set_name", ("name",)),
        Operation("set_description", ("multi\nline",)),
        Operation("set_archived", (True,)),
        Operation("log_artifact", ("/tmp/model.pt", "model/model.pt")),
        Operation("close", (Status.FAILED, "ValueError: boom")),
        Operation("close", (Status.FINISHED, None)),
        Operation(
            "future_op",
            (
                Path("/a/b"),
                (1, "t"),
                b"\x00\xff",
                {1: "int key"},
                {3, 4},
                RunSpec("exp", "n", None, frozenset({"t"})),
            ),
        ),
    ]
    for item in items:
        line = encode_item(item)
        assert b"\n" not in line and line.isascii()
        assert same(decode_item(line), item), item
    fast = encode_items(items)  # the writer's path: same bytes
    assert fast == [encode_item(item) for item in items]
    assert all(same(a, b) for a, b in zip(decode_payload(b"\n".join(fast)), items, strict=True))
    path = tmp_path / "all.spool"
    write_spool(path, [items[:5], items[5:]])
    read, damage = read_all(path)
    assert not damage and damage.lost_items == 0
    assert len(read) == len(items) and all(same(a, b) for a, b in zip(read, items, strict=True))
    assert type(read[0]) is tuple  # what apply_items takes as a whole point
    assert read[12][6].png == image.png and read[12][6].pixels() == image.pixels()


def test_the_file_is_json_lines_another_language_can_read(tmp_path: Path) -> None:
    """No pickle: the header and every item are strict JSON (no NaN tokens), a program in any
    language can parse them with the layout in the core README."""
    import json
    import zlib

    path = tmp_path / "plain.spool"
    write_spool(path, [[point(1, value=float("nan")), Operation("set_name", ("x",))]])
    data = path.read_bytes()
    assert data.startswith(b"\x89track-spool\r\n\x1a\n")
    version, length = struct.unpack_from(">HI", data, 16)
    assert version == 2
    header = json.loads(data[22 : 22 + length])
    assert header == {
        "backend": "memory:spool-tests",
        "run_id": "run-1",
        "kind": "spool",
        "meta": {},
    }
    (crc,) = struct.unpack_from(">I", data, 22 + length)
    assert crc == zlib.crc32(data[16 : 22 + length])
    frames, items, _ = struct.unpack_from(">QQI", data, 26 + length)
    assert (frames, items) == (1, 2)
    frame = 46 + length
    marker, index, count, size, payload_crc, _ = struct.unpack_from(">4sIIIII", data, frame)
    assert (marker, index, count) == (FRAME_MARKER, 0, 2)
    payload = data[frame + 24 : frame + 24 + size]
    assert zlib.crc32(payload) == payload_crc and frame + 24 + size == len(data)

    def strict(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    lines = [json.loads(line, parse_constant=strict) for line in payload.split(b"\n")]
    assert lines[0][:2] == ["p", "loss"] and lines[0][7]["$"] == "float"
    assert lines[1] == ["o", "set_name", ["x"]]


def test_frames_are_bounded_in_items_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.spool"
    write_spool(path, [[point(step) for step in range(2500)]])
    data = path.read_bytes()
    counts = [struct.unpack_from(">4sIII", data, start)[2] for start in frame_starts(data)]
    assert counts == [MAX_FRAME_ITEMS, MAX_FRAME_ITEMS, 500]
    texts = [
        ("t", Context(), ValueKind.TEXT, step, None, 1.0, Text("x" * 400_000)) for step in range(7)
    ]
    bytes_path = tmp_path / "bytes.spool"
    write_spool(
        bytes_path, [texts, [("t", Context(), ValueKind.TEXT, 7, None, 1.0, Text("y" * 3_000_000))]]
    )
    data = bytes_path.read_bytes()
    sizes = [struct.unpack_from(">4sIIII", data, start)[3] for start in frame_starts(data)]
    assert len(sizes) == 5  # 2 + 2 + 2 + 1 texts of 400 kB, then the 3 MB one alone
    assert max(sizes[:4]) <= spool_module.MAX_FRAME_BYTES
    read, damage = read_all(bytes_path)
    assert not damage and [item[3] for item in read] == list(range(8))


def build_small_spool(path: Path) -> tuple[list[list[Any]], bytes]:
    batches = [
        [point(step) for step in range(start, start + 4)] + [Operation("set_name", (f"n{start}",))]
        for start in range(0, 24, 4)
    ]
    write_spool(path, batches)
    return batches, path.read_bytes()


def test_truncation_at_every_offset_keeps_every_whole_frame_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    """Cut the file at every byte past its header (frame boundaries, inside frame headers,
    inside payloads): every whole frame before the cut is read, once; the lost count is exact,
    and the steps of lost points are reported where the cut frame's bytes still parse."""
    batches, data = build_small_spool(tmp_path / "original.spool")
    starts = frame_starts(data)
    assert len(starts) == len(batches) == 6
    total = sum(len(batch) for batch in batches)
    cut_path = tmp_path / "cut.spool"
    for cut in range(starts[0], len(data) + 1):
        cut_path.write_bytes(data[:cut])
        read, damage = read_all(cut_path)
        whole = sum(1 for start in [*starts[1:], len(data)] if start <= cut)
        expected = [item for batch in batches[:whole] for item in batch]
        assert len(read) == len(expected) and all(
            same(a, b) for a, b in zip(read, expected, strict=True)
        )
        if cut == len(data):
            assert not damage
            continue
        assert damage, f"a cut at {cut} went unnoticed"
        assert damage.exact and damage.lost_items == total - len(expected), cut
        lost_points = {step for steps in damage.lost_steps.values() for step in steps}
        assert lost_points <= {step for step in range(len(expected) // 5 * 4, 24)}
        if cut in starts:
            assert "frame boundary" in damage.regions[0].reason
    for cut in range(starts[0]):
        cut_path.write_bytes(data[:cut])
        with pytest.raises(SpoolFormatError):
            read_all(cut_path)


def test_a_flipped_bit_anywhere_in_the_frames_loses_exactly_its_frame(tmp_path: Path) -> None:
    batches, data = build_small_spool(tmp_path / "original.spool")
    starts = frame_starts(data)
    ends = [*starts[1:], len(data)]
    flipped = tmp_path / "flipped.spool"
    for position in range(starts[0], len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 1 << (position % 8)
        flipped.write_bytes(bytes(damaged))
        read, damage = read_all(flipped)
        hit = next(
            i for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if s <= position < e
        )
        expected = [item for i, batch in enumerate(batches) if i != hit for item in batch]
        assert len(read) == len(expected) and all(
            same(a, b) for a, b in zip(read, expected, strict=True)
        ), position
        assert damage.exact and damage.lost_items == len(batches[hit]), position
        assert len(damage.regions) == 1 and damage.regions[0].start == starts[hit]


def test_a_damaged_header_is_refused_rather_than_guessed(tmp_path: Path) -> None:
    _, data = build_small_spool(tmp_path / "original.spool")
    path = tmp_path / "bad-header.spool"
    for position in range(16, 40):  # the version, length and JSON of the header
        damaged = bytearray(data)
        damaged[position] ^= 0x04
        path.write_bytes(bytes(damaged))
        with pytest.raises(SpoolFormatError, match=r"header|format"):
            read_spool(path)
    path.write_bytes(b"")
    with pytest.raises(SpoolFormatError, match="not a track spool"):
        read_spool(path)
    path.write_bytes(b"hello, world")
    with pytest.raises(SpoolFormatError, match="not a track spool"):
        read_spool(path)


def test_reading_resynchronises_after_a_frame_cut_short_mid_file(tmp_path: Path) -> None:
    """A crash mid-append leaves a partial frame; the same run's next process appends after it.
    Reading skips the partial frame, finds the next marker and reads on."""
    path = tmp_path / "resumed.spool"
    write_spool(path, [[point(step) for step in range(10)]])
    partial = tmp_path / "partial.spool"
    write_spool(partial, [[point(step) for step in range(10, 20)]])
    frame = partial.read_bytes()[frame_starts(partial.read_bytes())[0] :]
    with open(path, "ab") as stream:
        stream.write(frame[: len(frame) // 2])  # the crash
    write_spool(path, [[point(step) for step in range(20, 30)]])  # a later process resumes
    read, damage = read_all(path)
    assert [item[3] for item in read] == [*range(10), *range(20, 30)]
    assert damage.lost_items == 10 and damage.regions[0].reason == "frame cut short"
    assert set(damage.lost_steps[("loss", Context())]) <= set(range(10, 20))
    assert damage.lost_steps[("loss", Context())]  # the first half of the frame still parses


def test_an_unknown_item_is_reported_not_run(tmp_path: Path) -> None:
    """Reading builds data only: an item it does not know is damage, never code."""
    path = tmp_path / "odd.spool"
    write_spool(path, [[point(0)], [point(1)]])
    data = path.read_bytes()
    starts = frame_starts(data)
    import zlib

    payload = b'["o","__init__",[{"$":"call","v":"os.system"}]]'
    head = struct.pack(">4sIIII", FRAME_MARKER, 1, 1, len(payload), zlib.crc32(payload))
    forged = data[: starts[1]] + head + struct.pack(">I", zlib.crc32(head)) + payload
    path.write_bytes(forged)
    read, damage = read_all(path)
    assert [item[3] for item in read] == [0]
    assert damage.lost_items == 1 and "undecodable" in damage.regions[0].reason
    with pytest.raises(ValueError, match="unknown tag"):
        decode_item(b'["o","set_name",[{"$":"call","v":"os.system"}]]')
    with pytest.raises(ValueError, match="operation name"):
        decode_item(b'["o","__class__",[]]')
    with pytest.raises(ValueError, match="not spool data"):
        decode_item(b'["p","x",{},"scalar",1,null,NaN,1.0]')


@pytest.fixture
def memory() -> MemoryBackend:
    backend = get_backend(f"memory:spool-{uuid.uuid4().hex}")
    assert isinstance(backend, MemoryBackend)
    return backend


def new_run(backend: MemoryBackend) -> str:
    writer = backend.create_run(RunSpec("spool-tests", "replayed"))
    return writer.id


def steps_of(backend: MemoryBackend, run_id: str, name: str = "loss") -> list[int]:
    return [p.step for p in backend.read_run(run_id).points(name, Context())]


def test_replay_writes_every_intact_item_reports_the_loss_and_keeps_the_file(
    tmp_path: Path, memory: MemoryBackend
) -> None:
    run_id = new_run(memory)
    path = tmp_path / "run.spool"
    spool = Spool(path, SpoolHeader(memory.location, run_id))
    for start in range(0, 5000, 1000):
        spool.append([point(step) for step in range(start, start + 1000)])
    spool.append([Operation("set_tags", (frozenset({"replayed"}),))])
    data = path.read_bytes()
    starts = frame_starts(data)
    damaged = bytearray(data)
    damaged[starts[2] + 500] ^= 0xFF  # frame 2: steps 2000-2999
    path.write_bytes(bytes(damaged))
    with pytest.warns(SpoolDamagedWarning) as caught:
        written = track.replay(path, memory)
    [warning] = [w.message for w in caught if isinstance(w.message, SpoolDamagedWarning)]
    assert written == 4001
    assert steps_of(memory, run_id) == [*range(2000), *range(3000, 5000)]
    assert memory.read_run(run_id).tags == {"replayed"}
    assert warning.lost_items == 1000 and warning.exact and warning.written == 4001
    lost = warning.lost_steps[("loss", Context())]
    assert set(lost) <= set(range(2000, 3000)) and len(lost) >= 900  # one line broke
    assert "2000-" in str(warning) and str(path) in str(warning)
    assert not path.exists() and warning.path == path.with_name("run.spool.damaged")
    assert Path(warning.path).read_bytes() == bytes(damaged)
    assert track.pending_spools(tmp_path) == []
    assert track.pending_spools(tmp_path, damaged=True) == [Path(warning.path)]


def test_replaying_twice_stores_nothing_twice(tmp_path: Path, memory: MemoryBackend) -> None:
    """What a replay killed halfway and run again does: the file is deleted only after the
    last item is stored, and a second pass over items already stored keeps one of each."""
    run_id = new_run(memory)
    path = tmp_path / "run.spool"
    write_spool(path, [[point(step) for step in range(3000)]], run_id=run_id)
    copy = tmp_path / "again.spool"
    shutil.copy(path, copy)
    assert track.replay(path, memory) == 3000
    assert track.replay(copy, memory) == 3000
    assert steps_of(memory, run_id) == list(range(3000))


def test_cli_prints_what_was_lost_and_exits_2(
    tmp_path: Path, memory: MemoryBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = new_run(memory)
    backend = memory.location
    good, cut, junk = tmp_path / "good.spool", tmp_path / "cut.spool", tmp_path / "junk.spool"
    for path in (good, cut):
        spool = Spool(path, SpoolHeader(backend, run_id))
        spool.append([point(step) for step in range(100)])
        spool.append([point(step) for step in range(100, 200)])
    cut.write_bytes(cut.read_bytes()[: frame_starts(cut.read_bytes())[1] + 400])
    junk.write_bytes(b"not a spool")
    assert cli(["replay", str(good)]) == 0
    assert "200 item(s) written" in capsys.readouterr().out
    assert cli(["replay", str(cut)]) == 2
    out, err = capsys.readouterr()
    assert "100 item(s) written; DAMAGED: 100 item(s) lost" in out
    assert "loss {}: steps 100-" in err and "cut.spool.damaged" in err
    assert cli(["replay", str(junk)]) == 1
    assert "not a track spool" in capsys.readouterr().err
    assert junk.exists()  # left as it is
    assert steps_of(memory, run_id) == list(range(200))


def write_format1(path: Path, backend: str, run_id: str, frames: list[list[Any]]) -> None:
    """A spool file as track 0.1 wrote it: 4-byte big-endian lengths, each before a pickle.

    Track 0.1 kept ``Operation`` in the public module ``track_core.writer``, so its pickles name
    that module: the writer module is put back under its old name while pickling."""
    import track_core._writer

    sys.modules["track_core.writer"] = track_core._writer
    Operation.__module__ = "track_core.writer"
    try:
        with open(path, "wb") as stream:
            for payload in [{"backend": backend, "run_id": run_id, "version": 1}, *frames]:
                data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
                assert b"track_core._writer" not in data
                stream.write(struct.pack(">I", len(data)) + data)
    finally:
        Operation.__module__ = "track_core._writer"
        del sys.modules["track_core.writer"]


def test_format1_files_are_still_replayed(tmp_path: Path, memory: MemoryBackend) -> None:
    run_id = new_run(memory)
    path = tmp_path / "old.spool"
    items: list[Any] = [point(step, context={"subset": "val"}) for step in range(50)]
    items += [
        Operation("set_tags", (frozenset({"old"}),)),
        ("img", Context(), ValueKind.IMAGE, 0, None, 1.0, Image(np.zeros((2, 2), np.uint8))),
        Operation("close", (Status.KILLED, None)),
    ]
    write_format1(path, memory.location, run_id, [items[:20], items[20:]])
    header, frames = read_spool(path)
    assert (header.version, header.run_id) == (1, run_id)
    read = [item for frame in frames for item in frame]
    assert len(read) == len(items) and all(same(a, b) for a, b in zip(read, items, strict=True))
    assert track.replay(path, memory) == len(items)
    stored = memory.read_run(run_id)
    assert [p.step for p in stored.points("loss", Context(subset="val"))] == list(range(50))
    assert stored.tags == {"old"} and stored.status is Status.KILLED
    # a format 1 file cut short: the whole frames are replayed, the cut one reported
    write_format1(path, memory.location, run_id, [items[:20], items[20:]])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.warns(SpoolDamagedWarning, match="format 1") as caught:
        assert track.replay(path, memory) == 20
    [warning] = [w.message for w in caught if isinstance(w.message, SpoolDamagedWarning)]
    assert not warning.exact  # format 1 frames have no item counts


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_format1_pickle_that_would_run_code_is_refused(
    tmp_path: Path, memory: MemoryBackend
) -> None:
    run_id = new_run(memory)
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.spool"
    write_format1(path, memory.location, run_id, [[point(0)], [_Exploit(marker)], [point(1)]])
    with pytest.warns(SpoolDamagedWarning, match="refused: the frame names posix.system"):
        assert track.replay(path, memory) == 2
    assert not marker.exists()
    assert steps_of(memory, run_id) == [0, 1]
    write_format1(path, "x", "y", [])
    path.write_bytes(
        struct.pack(">I", len(pickle.dumps(_Exploit(marker)))) + pickle.dumps(_Exploit(marker))
    )
    with pytest.raises(SpoolFormatError, match="refused"):
        read_spool(path)
    assert not marker.exists()


def test_a_spool_of_200000_items_cut_at_60_percent_replays_every_whole_frame(
    tmp_path: Path, memory: MemoryBackend
) -> None:
    run_id = new_run(memory)
    path = tmp_path / "large.spool"
    spool = Spool(path, SpoolHeader(memory.location, run_id))
    contexts = [{"subset": "train"}, {"subset": "val"}]
    for start in range(0, 200_000, 5000):
        spool.append(
            [point(step // 2, context=contexts[step % 2]) for step in range(start, start + 5000)]
        )
    data = path.read_bytes()
    starts = frame_starts(data)
    assert len(starts) == 200
    cut = int(len(data) * 0.6)
    path.write_bytes(data[:cut])
    whole = sum(1 for start in starts[1:] if start <= cut)
    with pytest.warns(SpoolDamagedWarning) as caught:
        written = track.replay(path, memory)
    [warning] = [w.message for w in caught if isinstance(w.message, SpoolDamagedWarning)]
    assert written == whole * MAX_FRAME_ITEMS
    assert warning.lost_items == 200_000 - written and warning.exact
    stored = memory.read_run(run_id)
    for context in contexts:
        assert [p.step for p in stored.points("loss", Context(context))] == list(
            range(written // 2)
        )
        readable = warning.lost_steps[("loss", Context(context))]
        assert readable and min(readable) == written // 2  # the cut frame's first lines
    assert Path(warning.path).exists() and not path.exists()


def test_a_run_whose_spool_is_damaged_reports_it_and_keeps_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's own replay (backend back while the run is live) reports damage too."""
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(tmp_path / "spool"))
    backend = MemoryBackend(MemoryStore(), f"writer-{uuid.uuid4().hex}")
    options = track.WriterOptions(flush_interval=0.02, retry_initial=0.5, retry_max=0.5)
    run = track.start_run(backend, writer=options)
    backend.store.unavailable = True
    for step in range(3000):
        run.track(step, "loss")
    deadline = 200
    while True:
        spools = track.pending_spools(tmp_path / "spool")
        if spools and sum(len(f) for f in read_spool(spools[0])[1]) == 3000:
            break
        deadline -= 1
        assert deadline, "the values did not reach the spool"
        import time

        time.sleep(0.05)
    [path] = spools
    data = bytearray(path.read_bytes())
    data[frame_starts(bytes(data))[1] + 300] ^= 0x10  # steps 1000-1999
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend.store.unavailable = False
        assert run.flush(timeout=30)
        run.close()
    reports = [w.message for w in caught if isinstance(w.message, SpoolDamagedWarning)]
    assert len(reports) == 1 and reports[0].lost_items == 1000
    assert [p.step for p in backend.read_run(run.id).points("loss", Context())] == [
        *range(1000),
        *range(2000, 3000),
    ]
    assert Path(reports[0].path).exists() and not path.exists()


def _mount_tmpfs(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A 64 KiB tmpfs as the spool directory, or, where mounting is not allowed, ENOSPC injected
    at the spool's write."""
    folder = tmp_path / "small"
    if _mount_tmpfs(folder):
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    real_write = Spool._write

    def no_space(self: Spool, items: list[Any]) -> None:
        if len(items) > 100:
            raise OSError(errno.ENOSPC, "No space left on device (injected: mount not allowed)")
        real_write(self, items)

    monkeypatch.setattr(Spool, "_write", no_space)
    yield folder


def test_a_full_disk_warns_and_training_goes_on(
    full_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.path.ismount(full_disk):  # the real thing: a 64 KiB tmpfs
        stats = os.statvfs(full_disk)
        assert stats.f_blocks * stats.f_frsize <= 64 * 1024
    monkeypatch.setenv("TRACK_SPOOL_DIR", str(full_disk / "spool"))
    backend = MemoryBackend(MemoryStore(), f"full-{uuid.uuid4().hex}")
    options = track.WriterOptions(flush_interval=0.02, retry_initial=0.05, retry_max=0.2)
    run = track.start_run(backend, writer=options)
    backend.store.unavailable = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(20_000):  # about 1.5 MB of spool: far more than the disk holds
            run.track(step * 0.5, "loss", context={"subset": "train"})
        import time

        deadline = time.monotonic() + 30
        while not any(isinstance(w.message, SpoolWriteWarning) for w in caught):
            assert time.monotonic() < deadline, "no warning about the full disk"
            time.sleep(0.02)
        run.track(1.0, "after")  # training goes on
        backend.store.unavailable = False
        assert run.flush(timeout=60)
        run.close()
    [warning] = [w.message for w in caught if isinstance(w.message, SpoolWriteWarning)]
    assert "No space left on device" in str(warning) and "training goes on" in str(warning)
    stored = backend.read_run(run.id)
    assert [p.step for p in stored.points("loss", Context(subset="train"))] == list(range(20_000))
    assert [p.value for p in stored.points("after", Context())] == [1.0]
    assert not list((full_disk / "spool").glob("*.spool*"))


def test_a_spool_file_of_another_run_at_the_path_is_moved_aside_not_mixed(tmp_path: Path) -> None:
    path = tmp_path / "memory-run.spool"
    write_format1(path, "memory", "run", [[point(0)]])
    spool = write_spool(path, [[point(1)]], run_id="run")
    assert spool.items == 1
    aside = tmp_path / "memory-run.1.spool"
    assert read_spool(aside)[0].version == 1
    assert [item[3] for item in read_all(path)[0]] == [1]
    # the same run in a later process continues the file and its progress record
    write_spool(path, [[point(2)]], run_id="run")
    items, damage = read_all(path)
    assert [item[3] for item in items] == [1, 2] and not damage and damage.recorded_items == 2


def test_headers_name_their_kind(tmp_path: Path) -> None:
    path = tmp_path / "x.dead-letter"
    spool = Spool(path, SpoolHeader("memory", "run", kind="dead-letter", meta={"why": "refused"}))
    spool.append([point(0)])
    header, _ = read_spool(path)
    assert header.kind == "dead-letter" and header.meta == {"why": "refused"}
    with pytest.raises(ValueError, match="kind"):
        SpoolHeader("memory", "run", kind="other")
    with pytest.raises(TypeError, match="cannot hold"):
        encode_item(Operation("set_name", (object(),)))
    assert math.isnan(decode_item(encode_item(point(0, value=float("nan"))))[6])


def test_a_spool_whose_header_was_damaged_reports_what_it_held(tmp_path: Path) -> None:
    """The writer's own spool, its header overwritten: what it held is reported lost and the
    file kept, instead of the writer retrying a file it cannot read."""
    path = tmp_path / "run.spool"
    spool = write_spool(path, [[point(step) for step in range(30)]])
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    spool.append([point(30)])  # appended after the damage: lost with the rest
    frames = spool.frames()
    assert [item[3] for frame in frames for item in frame] == []
    assert frames.damage.lost_items == 31 and frames.damage.exact
    kept = spool.finish(frames.damage)
    assert kept == tmp_path / "run.spool.damaged" and kept.exists() and not path.exists()
    assert spool.items == 0 and not spool.exists()


def test_an_item_the_spool_cannot_encode_stays_in_memory_and_is_still_replayed(
    tmp_path: Path, memory: MemoryBackend
) -> None:
    run_id = new_run(memory)
    spool = Spool(tmp_path / "run.spool", SpoolHeader(memory.location, run_id))
    spool.append([point(0)])
    with pytest.warns(SpoolWriteWarning, match="a bug"):
        spool.append([point(1), Operation("set_name", (object(),)), point(2)])
    spool.append([point(3)])  # after it, in order
    assert spool.items == 5 and spool.exists()
    items = [item for frame in spool.frames() for item in frame]
    assert [item[3] if type(item) is tuple else item.method for item in items] == [
        0,
        1,
        "set_name",
        2,
        3,
    ]
