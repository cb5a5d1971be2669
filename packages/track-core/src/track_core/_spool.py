"""The durable spool: what a backend has not taken yet, kept on disk in tracking order.

Format 2 (this module writes it; the core README's "Spool format" section is its reference):

- A file header: the 16-byte magic ``b"\\x89track-spool\\r\\n\\x1a\\n"``, the version (u16), the
  length (u32) of a JSON object (``backend``, ``run_id``, ``kind``, ``meta``), that object, its
  CRC32 (u32, of the version, length and JSON bytes), then a progress record updated in place
  after every append: frames (u64), items (u64), CRC32 (u32) of those 16 bytes.
- Frames: ``b"\\x89TKF"``, the frame's index (u32), its item count (u32), its payload's length
  (u32), the payload's CRC32 (u32), the CRC32 of the 20 bytes before it (u32), then the payload:
  one ASCII JSON array per item, separated by ``\\n``. At most ``MAX_FRAME_ITEMS`` items or about
  ``MAX_FRAME_BYTES`` per frame, so one damaged frame loses little. Integers are big-endian.

Items are JSON arrays: ``["p", name, context, kind, step, epoch, timestamp, value]`` for a point,
``["o", method, [args...]]`` for an operation. Numbers outside JSON's safe forms, and every value
that is not a JSON number, string, bool, null or list, is a tagged object ``{"$": tag, ...}``.
Reading builds only track's own data classes from that data: nothing in a file is ever executed.

Reading skips a damaged frame (bad CRC, bad length, cut short), finds the next frame marker and
goes on; what could not be read is collected in a ``SpoolDamage``. Format 1 files (one pickle per
frame, track 0.1) are read with an unpickler that builds only track's own classes.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import mmap
import os
import pickle
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from typing import Any, ClassVar

import attrs

from track_core.backend import RunSpec
from track_core.context import Context
from track_core.errors import SpoolDamagedWarning, SpoolFormatError, SpoolWriteWarning
from track_core.status import Status
from track_core.values import Distribution, Image, Text, ValueKind

SPOOL_SUFFIX = ".spool"
DAMAGED_SUFFIX = ".damaged"
FORMAT_VERSION = 2
KINDS = ("spool", "dead-letter")

MAGIC = b"\x89track-spool\r\n\x1a\n"
FRAME_MARKER = b"\x89TKF"
_PREAMBLE = struct.Struct(">HI")  # version, header JSON length
_CRC = struct.Struct(">I")
_PROGRESS = struct.Struct(">QQI")  # frames, items, CRC32 of the two counts
_FRAME = struct.Struct(">4sIIIII")  # marker, index, items, payload length, payload CRC, header CRC
_COUNTS = struct.Struct(">QQ")
#: A frame holds at most this many items...
MAX_FRAME_ITEMS = 1000
#: ... and at most about this many payload bytes (an item bigger than that gets a frame of its own).
MAX_FRAME_BYTES = 1 << 20
_MAX_HEADER_BYTES = 1 << 20
_V1_LENGTH = struct.Struct(">I")
_INT64 = range(-(2**63), 2**63)


def default_spool_dir() -> Path:
    configured = os.environ.get("TRACK_SPOOL_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "track" / "spool"


def _check_kind(instance: object, attribute: object, value: str) -> None:
    if value not in KINDS:
        raise ValueError(f"a spool's kind is one of {KINDS}, got {value!r}")


@attrs.frozen
class SpoolHeader:
    """What a spool file is for: the backend string (without credentials), the run, and whether
    it holds items still to write (``"spool"``) or items a backend refused (``"dead-letter"``).
    ``meta`` is free JSON data for whoever writes the file; ``version`` the format it was read in.
    """

    backend: str
    run_id: str
    kind: str = attrs.field(default="spool", validator=_check_kind)
    meta: Mapping[str, Any] = attrs.field(factory=dict)
    version: int = FORMAT_VERSION


# -- items ---------------------------------------------------------------------------------------

#: attrs classes that operation arguments may hold, by the tag the file names them with.
_RECORDS: dict[str, type] = {}


def register_record(tag: str, cls: type) -> None:
    """Let spool files hold instances of the attrs class ``cls`` (as ``{"$": "record", "type":
    tag, "v": {field: value}}``); reading calls ``cls(**fields)``. For operation arguments that
    are data classes of track's own; the module that registers must be imported before reading."""
    if not attrs.has(cls):
        raise TypeError(f"{cls.__name__} is not an attrs class")
    _RECORDS[tag] = cls


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    return {"$": "float", "v": repr(value), "bits": f"{bits:016x}"}


def _int(value: int) -> Any:
    return value if value in _INT64 else {"$": "int", "hex": format(value, "x")}


def encode_value(value: Any) -> Any:
    """A value as JSON data: JSON's own types as they are, everything else tagged."""
    cls = type(value)
    if value is None or cls is str or cls is bool:
        return value
    if cls is int:
        return _int(value)
    if cls is float:
        return _float(value)
    if cls is list:
        return [encode_value(item) for item in value]
    if cls is dict:
        if all(type(key) is str for key in value):
            return {"$": "dict", "v": {key: encode_value(item) for key, item in value.items()}}
        return {
            "$": "dict",
            "items": [[encode_value(k), encode_value(v)] for k, v in value.items()],
        }
    if cls is tuple:
        return {"$": "tuple", "v": [encode_value(item) for item in value]}
    if cls is frozenset or cls is set:
        return {"$": cls.__name__, "v": [encode_value(item) for item in value]}
    if cls is Context:
        return {"$": "context", "v": {key: encode_value(item) for key, item in value.items()}}
    if cls is Status:
        return {"$": "status", "v": value.value}
    if cls is ValueKind:
        return {"$": "kind", "v": value.value}
    if cls is Text:
        return {"$": "text", "v": value.text}
    if cls is Image:
        return {
            "$": "image",
            "png": base64.b64encode(value.png).decode("ascii"),
            "width": value.width,
            "height": value.height,
            "mode": value.mode,
            "caption": value.caption,
        }
    if cls is Distribution:
        return {
            "$": "distribution",
            "bin_edges": [_float(edge) for edge in value.bin_edges],
            "counts": [_float(count) for count in value.counts],
        }
    if cls is bytes or cls is bytearray:
        return {"$": cls.__name__, "v": base64.b64encode(value).decode("ascii")}
    if isinstance(value, PurePath):
        return {"$": "path", "v": str(value)}
    if isinstance(value, bool):  # numpy bools and the like never get here; a bool subclass might
        return bool(value)
    for tag, record in _RECORDS.items():
        if cls is record:
            fields = {
                field.name: encode_value(getattr(value, field.name)) for field in attrs.fields(cls)
            }
            return {"$": "record", "type": tag, "v": fields}
    raise TypeError(
        f"a spool cannot hold a {cls.__module__}.{cls.__qualname__} ({value!r}); "
        "operation arguments are JSON-like data, paths, tags, statuses and track's values"
    )


def _decode_float(data: Any) -> float:
    if type(data) is float or type(data) is int:
        return float(data)
    if type(data) is dict and data.get("$") == "float":
        value: float = struct.unpack(">d", bytes.fromhex(data["bits"]))[0]
        return value
    raise ValueError(f"expected a float, got {data!r}")


def _new(cls: type, *fields: Any) -> Any:
    """An attrs instance with these fields as they are (an Image's PNG is not re-encoded)."""
    instance: Any = object.__new__(cls)
    instance.__attrs_init__(*fields)
    return instance


def _decode_tagged(data: dict[str, Any]) -> Any:
    tag = data.get("$")
    if tag == "float":
        return _decode_float(data)
    if tag == "int":
        return int(data["hex"], 16)
    if tag == "dict":
        if "v" in data:
            return {str(key): decode_value(item) for key, item in data["v"].items()}
        return {decode_value(key): decode_value(item) for key, item in data["items"]}
    if tag == "tuple":
        return tuple(decode_value(item) for item in data["v"])
    if tag == "frozenset":
        return frozenset(decode_value(item) for item in data["v"])
    if tag == "set":
        return {decode_value(item) for item in data["v"]}
    if tag == "context":
        return Context.of({str(key): decode_value(item) for key, item in data["v"].items()})
    if tag == "status":
        return Status(data["v"])
    if tag == "kind":
        return ValueKind(data["v"])
    if tag == "text":
        return Text(str(data["v"]))
    if tag == "image":
        return _new(
            Image,
            base64.b64decode(data["png"], validate=True),
            int(data["width"]),
            int(data["height"]),
            str(data["mode"]),
            str(data["caption"]),
        )
    if tag == "distribution":
        return _new(
            Distribution,
            tuple(_decode_float(edge) for edge in data["bin_edges"]),
            tuple(_decode_float(count) for count in data["counts"]),
        )
    if tag == "bytes":
        return base64.b64decode(data["v"], validate=True)
    if tag == "bytearray":
        return bytearray(base64.b64decode(data["v"], validate=True))
    if tag == "path":
        return Path(str(data["v"]))
    if tag == "record":
        record = _RECORDS.get(str(data["type"]))
        if record is None:
            raise ValueError(f"unknown record type {data['type']!r} (register_record it first)")
        return record(**{str(key): decode_value(item) for key, item in data["v"].items()})
    raise ValueError(f"unknown tag {tag!r}: a spool written by a newer track?")


def decode_value(data: Any) -> Any:
    """The value ``encode_value`` turned into ``data``."""
    cls = type(data)
    if cls is dict:
        return _decode_tagged(data)
    if cls is list:
        return [decode_value(item) for item in data]
    if data is None or cls in (str, bool, int, float):
        return data
    raise ValueError(f"not spool data: {data!r}")


_dumps = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode


def encode_item(item: Any) -> bytes:
    """One item as one line of ASCII JSON (no newline): a whole point tuple
    ``(name, context, kind, step, epoch, timestamp, value)`` or an ``Operation``."""
    if type(item) is tuple:
        if len(item) != 7:
            raise TypeError(f"a spooled point has 7 fields (TrackedPoint's), got {item!r}")
        name, context, kind, step, epoch, timestamp, value = item
        cls = type(value)
        data = [
            "p",
            name,
            {key: encode_value(entry) for key, entry in context.items()},
            kind.value,
            _int(step),
            None if epoch is None else _int(epoch),
            _float(timestamp) if type(timestamp) is float else encode_value(timestamp),
            _float(value) if cls is float else _int(value) if cls is int else encode_value(value),
        ]
    else:
        method = getattr(item, "method", None)
        if type(method) is not str:
            raise TypeError(f"a spool holds point tuples and Operations, got {item!r}")
        data = ["o", method, [encode_value(arg) for arg in item.args]]
    return _dumps(data).encode("ascii")


def encode_items(items: list[Any]) -> list[bytes]:
    """``encode_item`` of each item. Scalar points take a fast path that writes the same bytes:
    each sequence's JSON prefix once, then the numbers (``repr`` of a finite float is what
    ``json`` writes for it)."""
    prefixes: dict[tuple[str, int, int], str] = {}
    lines = []
    isfinite = math.isfinite
    for item in items:
        if type(item) is tuple and len(item) == 7:
            name, context, kind, step, epoch, timestamp, value = item
            cls = type(value)
            if (
                type(step) is int
                and step in _INT64
                and (epoch is None or (type(epoch) is int and epoch in _INT64))
                and type(timestamp) is float
                and isfinite(timestamp)
                and ((cls is float and isfinite(value)) or (cls is int and value in _INT64))
            ):
                key = (name, id(context), id(kind))  # alive while items is: ids are safe
                prefix = prefixes.get(key)
                if prefix is None:
                    head = ["p", name, {k: encode_value(v) for k, v in context.items()}, kind.value]
                    prefix = prefixes[key] = _dumps(head)[:-1] + ","
                epoch_text = "null" if epoch is None else str(epoch)
                text = f"{prefix}{step},{epoch_text},{timestamp!r},{value!r}]"
                lines.append(text.encode("ascii"))
                continue
        lines.append(encode_item(item))
    return lines


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not spool data")


_decode_json = json.JSONDecoder(parse_constant=_refuse_constant).decode
_KINDS = {kind.value: kind for kind in ValueKind}


def _load(line: bytes) -> Any:
    return _decode_json(line.decode("ascii"))


def decode_item(line: bytes) -> Any:
    """The item ``encode_item`` wrote (points as plain tuples, operations as ``Operation``)."""
    return _item(_load(line))


def decode_payload(payload: bytes) -> list[Any]:
    """The items of a frame's payload (one JSON document per line), in one JSON parse."""
    if not payload:
        return []
    # Lines hold no raw newline (JSON escapes them in strings): joined by commas, they are
    # the elements of one array.
    data = _decode_json("[" + payload.decode("ascii").replace("\n", ",") + "]")
    return [_item(entry) for entry in data]


def _item(data: Any) -> Any:
    if type(data) is not list or not data:
        raise ValueError("an item is a JSON array")
    if data[0] == "p" and len(data) == 8:
        _, name, context, kind, step, epoch, timestamp, value = data
        if type(name) is not str or type(context) is not dict:
            raise ValueError("a point's name is a string and its context an object")
        try:
            sequence_context = Context.of(context)  # cached for contexts seen before
        except TypeError:  # a tagged entry (an int beyond 64 bits, say)
            decoded = {str(key): decode_value(entry) for key, entry in context.items()}
            sequence_context = Context.of(decoded)
        return (
            name,
            sequence_context,
            _KINDS[kind] if kind in _KINDS else ValueKind(kind),
            step if type(step) is int else _decode_int(step),
            None if epoch is None else epoch if type(epoch) is int else _decode_int(epoch),
            timestamp if type(timestamp) is float else decode_value(timestamp),
            value if type(value) is float or type(value) is int else decode_value(value),
        )
    if data[0] == "o" and len(data) == 3:
        from track_core._writer import Operation  # the writer imports this module

        _, method, args = data
        if type(method) is not str or not method.isidentifier() or method.startswith("_"):
            raise ValueError(f"not an operation name: {method!r}")
        if type(args) is not list:
            raise ValueError("an operation's arguments are a JSON array")
        return Operation(method, tuple(decode_value(arg) for arg in args))
    raise ValueError(f"not a spool item: {str(data)[:80]}")


def _decode_int(data: Any) -> int:
    value = decode_value(data)
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {data!r}")
    return value


# -- damage --------------------------------------------------------------------------------------


@attrs.frozen
class DamagedRegion:
    """Bytes ``[start, end)`` of a spool file that could not be read, and why. ``frame`` and
    ``items`` are the frame's index and item count where its header was readable."""

    start: int
    end: int
    reason: str
    frame: int | None = None
    items: int | None = None


def _step_ranges(steps: list[int]) -> str:
    ordered = sorted(set(steps))
    parts = []
    for _, group in itertools.groupby(enumerate(ordered), lambda pair: pair[1] - pair[0]):
        run = [step for _, step in group]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    if len(parts) > 8:
        parts = [*parts[:4], "...", *parts[-3:]]
    return ", ".join(parts)


@attrs.define
class SpoolDamage:
    """What reading a spool file could not read. Complete once its frames were all read.

    ``intact_items`` were read whole; ``recorded_items`` is how many the file's progress record
    says were appended (None when that record is itself unreadable). ``lost_steps`` holds the
    steps of lost points by ``(name, context)``, and ``lost_operations`` the names of lost
    operations, as far as the damaged bytes could still be parsed."""

    path: Path
    regions: list[DamagedRegion] = attrs.field(factory=list)
    intact_items: int = 0
    recorded_items: int | None = None
    lost_steps: dict[tuple[str, Context], list[int]] = attrs.field(factory=dict)
    lost_operations: list[str] = attrs.field(factory=list)

    def __bool__(self) -> bool:
        return bool(self.regions)

    @property
    def lost_items(self) -> int:
        """Items lost: exact where ``exact`` is True, else at least this many."""
        known = sum(region.items or 0 for region in self.regions)
        if self.recorded_items is not None and self.recorded_items >= self.intact_items:
            return max(known, self.recorded_items - self.intact_items)
        return known

    @property
    def exact(self) -> bool:
        """Whether ``lost_items`` is the exact count (the progress record was readable, or every
        damaged frame's header was)."""
        if self.recorded_items is not None and self.recorded_items >= self.intact_items:
            return True
        return all(region.items is not None for region in self.regions)

    def describe(self) -> str:
        """One paragraph for people: how much was lost, where, and which points."""
        count = f"{self.lost_items}" if self.exact else f"at least {self.lost_items}"
        where = "; ".join(
            f"bytes {region.start}-{region.end}"
            + (
                f" (frame {region.frame}, {region.items} item(s))"
                if region.frame is not None
                else ""
            )
            + f": {region.reason}"
            for region in self.regions[:5]
        )
        if len(self.regions) > 5:
            where += f"; and {len(self.regions) - 5} more damaged region(s)"
        text = f"{count} item(s) could not be read ({where})"
        if self.lost_steps:
            sequences = [
                f"{name} {dict(context)}: steps {_step_ranges(steps)}"
                for (name, context), steps in list(self.lost_steps.items())[:10]
            ]
            text += "; lost points, where readable: " + "; ".join(sequences)
            if len(self.lost_steps) > 10:
                text += f"; and {len(self.lost_steps) - 10} more sequence(s)"
        if self.lost_operations:
            text += "; lost operations, where readable: " + ", ".join(self.lost_operations[:10])
        return text

    def warning(self, kept: Path | None, written: int) -> SpoolDamagedWarning:
        """The warning that reports this damage (``kept``: where the damaged file now is)."""
        message = f"track: spool file {self.path} is damaged: {self.describe()}. "
        message += f"{written} intact item(s) were written"
        if kept is not None:
            message += f"; the file is kept as {kept} (delete it once you have looked)"
        return SpoolDamagedWarning(
            message,
            path=kept or self.path,
            original=self.path,
            lost_items=self.lost_items,
            exact=self.exact,
            written=written,
            lost_steps={key: tuple(sorted(set(steps))) for key, steps in self.lost_steps.items()},
            lost_operations=tuple(self.lost_operations),
            regions=tuple((region.start, region.end, region.reason) for region in self.regions),
        )

    def _note(self, region: DamagedRegion, data: bytes = b"") -> None:
        self.regions.append(region)
        for line in data.split(b"\n"):
            _note_readable(self, line)


def _note_readable(damage: SpoolDamage, line: bytes) -> None:
    """Record what a line of a damaged frame names, where it still parses."""
    try:
        data = _load(line)
        if type(data) is not list or not data:
            return
        if data[0] == "p" and len(data) == 8 and type(data[1]) is str and type(data[4]) is int:
            context = Context.of({str(k): decode_value(v) for k, v in data[2].items()})
            damage.lost_steps.setdefault((data[1], context), []).append(data[4])
        elif data[0] == "o" and len(data) == 3 and type(data[1]) is str:
            damage.lost_operations.append(data[1][:64])
    except Exception:  # damaged bytes: whatever does not parse says nothing
        return


# -- reading -------------------------------------------------------------------------------------


class SpoolFrames(Iterator[list[Any]]):
    """The item frames of a spool file, in order; ``damage`` says what could not be read (it is
    complete once the iterator is exhausted). ``appends`` is the spool's append count when
    reading began (see ``Spool.appends``)."""

    def __init__(
        self,
        frames: Iterator[list[Any]],
        damage: SpoolDamage,
        appends: int = 0,
    ) -> None:
        self._frames = frames
        self.damage = damage
        self.appends = appends

    def __iter__(self) -> SpoolFrames:
        return self

    def __next__(self) -> list[Any]:
        return next(self._frames)


def _parse_header(data: bytes, path: Path) -> tuple[SpoolHeader, int, tuple[int, int] | None]:
    """The header, where frames start, and the progress record's counts (None if damaged)."""
    start = len(MAGIC)
    if len(data) < start + _PREAMBLE.size:
        raise SpoolFormatError(f"{path}: the spool header is cut short ({len(data)} bytes)")
    version, length = _PREAMBLE.unpack_from(data, start)
    if version != FORMAT_VERSION:
        raise SpoolFormatError(
            f"{path} has spool format {version}; this track reads formats 1 and {FORMAT_VERSION}: "
            "replay it with the track version that wrote it"
        )
    body = start + _PREAMBLE.size
    end = body + length
    if length > _MAX_HEADER_BYTES or len(data) < end + _CRC.size + _PROGRESS.size:
        raise SpoolFormatError(f"{path}: the spool header is damaged or cut short")
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(data[start:end]) != crc:
        raise SpoolFormatError(
            f"{path}: the spool header is damaged (checksum mismatch): its backend and run "
            "cannot be trusted, so nothing was replayed"
        )
    try:
        fields = _load(data[body:end])
        header = SpoolHeader(
            str(fields["backend"]),
            str(fields["run_id"]),
            str(fields.get("kind", "spool")),
            dict(fields.get("meta", {})),
            version,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise SpoolFormatError(f"{path}: unreadable spool header ({error})") from None
    slot = end + _CRC.size
    frames, items, counts_crc = _PROGRESS.unpack_from(data, slot)
    progress = (frames, items) if zlib.crc32(_COUNTS.pack(frames, items)) == counts_crc else None
    return header, slot + _PROGRESS.size, progress


def _header_bytes(header: SpoolHeader) -> bytes:
    fields = {
        "backend": header.backend,
        "run_id": header.run_id,
        "kind": header.kind,
        "meta": dict(header.meta),
    }
    body = json.dumps(fields, ensure_ascii=True, allow_nan=False, sort_keys=True).encode("ascii")
    checked = _PREAMBLE.pack(FORMAT_VERSION, len(body)) + body
    return MAGIC + checked + _CRC.pack(zlib.crc32(checked))


def _progress_bytes(frames: int, items: int) -> bytes:
    return _PROGRESS.pack(frames, items, zlib.crc32(_COUNTS.pack(frames, items)))


def _frames_v2(
    data: Any, start: int, damage: SpoolDamage, recorded_frames: int | None
) -> Iterator[list[Any]]:
    size = len(data)
    pos = start
    next_index = 0
    while pos < size:
        if size - pos < _FRAME.size:
            damage._note(DamagedRegion(pos, size, "cut short inside a frame header"))
            break
        marker, index, count, length, payload_crc, header_crc = _FRAME.unpack_from(data, pos)
        if marker != FRAME_MARKER or zlib.crc32(data[pos : pos + _FRAME.size - 4]) != header_crc:
            found = data.find(FRAME_MARKER, pos + 1)
            end = size if found < 0 else found
            damage._note(DamagedRegion(pos, end, "unreadable frame header"), data[pos:end])
            if found < 0:
                break
            pos = found
            continue
        body = pos + _FRAME.size
        if body + length > size:
            # Cut short (a crash or a full disk mid-write): frames appended later start at the
            # next marker, if any.
            found = data.find(FRAME_MARKER, body)
            end = size if found < 0 else found
            damage._note(DamagedRegion(pos, end, "frame cut short", index, count), data[body:end])
            if found < 0:
                break
            pos = found
            continue
        payload = data[body : body + length]
        if zlib.crc32(payload) != payload_crc:
            # Payloads are ASCII, so a marker inside this one starts a frame appended after
            # this one was cut short (a crash mid-write, then a resumed run): read on from it.
            found = data.find(FRAME_MARKER, body, body + length)
            end = body + length if found < 0 else found
            reason = "checksum mismatch" if found < 0 else "frame cut short"
            damage._note(DamagedRegion(pos, end, reason, index, count), data[body:end])
            pos = end
            continue
        try:
            items = decode_payload(payload)
            if len(items) != count:
                raise ValueError(f"{len(items)} items where the header says {count}")
        except Exception as error:
            damage._note(
                DamagedRegion(pos, body + length, f"undecodable: {error}", index, count), payload
            )
            pos = body + length
            continue
        pos = body + length
        next_index = max(next_index, index + 1)
        damage.intact_items += len(items)
        yield items
    if damage.regions:
        return
    missing_items = (damage.recorded_items or 0) - damage.intact_items
    if (recorded_frames is not None and recorded_frames > next_index) or missing_items > 0:
        damage._note(
            DamagedRegion(
                size,
                size,
                f"the file ends before frame(s) {next_index}-{(recorded_frames or 1) - 1} that its "
                "progress record counts (cut at a frame boundary?)",
                None,
                max(missing_items, 0) if damage.recorded_items is not None else None,
            )
        )


class _TrackUnpickler(pickle.Unpickler):
    """Builds format 1's objects, and nothing else: only track's own value classes may be named."""

    ALLOWED = frozenset(
        {
            ("track_core.context", "Context"),
            ("track_core.values", "ValueKind"),
            ("track_core.values", "Image"),
            ("track_core.values", "Text"),
            ("track_core.values", "Distribution"),
            ("track_core.status", "Status"),
            ("track_core.writer", "Operation"),
            ("builtins", "frozenset"),
            ("builtins", "set"),
        }
    )

    #: Modules that format 1 named by their public names before they became private.
    MOVED: ClassVar[Mapping[str, str]] = {"track_core.writer": "track_core._writer"}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused: the frame names {module}.{name}, which a track spool never holds"
            )
        return super().find_class(self.MOVED.get(module, module), name)


def _unpickle(data: bytes) -> Any:
    import io

    return _TrackUnpickler(io.BytesIO(data)).load()


def _frames_v1(data: Any, start: int, damage: SpoolDamage) -> Iterator[list[Any]]:
    size = len(data)
    pos = start
    while pos < size:
        if size - pos < _V1_LENGTH.size:
            damage._note(DamagedRegion(pos, size, "cut short inside a frame length"))
            return
        (length,) = _V1_LENGTH.unpack_from(data, pos)
        body = pos + _V1_LENGTH.size
        if body + length > size:
            damage._note(DamagedRegion(pos, size, "frame cut short (format 1: count unknown)"))
            return
        try:
            frame = _unpickle(bytes(data[body : body + length]))
            if type(frame) is not list:
                raise ValueError("a frame is a list")
        except Exception as error:
            # Format 1 has no frame markers: the next frame is where this one's length says.
            damage._note(DamagedRegion(pos, body + length, f"unreadable (format 1): {error}"))
            pos = body + length
            continue
        pos = body + length
        damage.intact_items += len(frame)
        yield frame


def _read_v1_header(data: Any, path: Path) -> tuple[SpoolHeader, int]:
    if len(data) < _V1_LENGTH.size:
        raise SpoolFormatError(f"{path} is empty or not a track spool file")
    (length,) = _V1_LENGTH.unpack_from(data, 0)
    try:
        fields = _unpickle(bytes(data[_V1_LENGTH.size : _V1_LENGTH.size + length]))
        header = SpoolHeader(str(fields["backend"]), str(fields["run_id"]), version=1)
        if fields.get("version") != 1:
            raise ValueError(f"version {fields.get('version')!r}")
    except Exception as error:
        raise SpoolFormatError(f"{path} is not a readable track spool file ({error})") from None
    return header, _V1_LENGTH.size + length


def _map(path: Path) -> Any:
    with open(path, "rb") as stream:
        if os.fstat(stream.fileno()).st_size == 0:
            return b""
        return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)


def read_spool(path: str | os.PathLike[str]) -> tuple[SpoolHeader, SpoolFrames]:
    """The header and the item frames of a spool file (format 2, or format 1 of track 0.1).

    Raises ``SpoolFormatError`` when the file is not a spool or its header is damaged (then
    nothing in it can be trusted to name the run). Damaged frames are skipped; the frames'
    ``damage`` says what was lost."""
    spool_path = Path(path)
    data = _map(spool_path)
    damage = SpoolDamage(spool_path)
    if data[: len(MAGIC)] == MAGIC:
        header, start, progress = _parse_header(data[: _MAX_HEADER_BYTES + 64], spool_path)
        if progress is None:
            damage.recorded_items = None
            recorded_frames = None
        else:
            recorded_frames, damage.recorded_items = progress
        return header, SpoolFrames(_frames_v2(data, start, damage, recorded_frames), damage)
    if len(data) > _V1_LENGTH.size and data[_V1_LENGTH.size] == 0x80:  # a pickle's PROTO opcode
        header, start = _read_v1_header(data, spool_path)
        return header, SpoolFrames(_frames_v1(data, start, damage), damage)
    raise SpoolFormatError(f"{spool_path} is empty or not a track spool file")


def keep_damaged(path: Path) -> Path:
    """Rename a damaged spool file out of the way of replays (``X.spool.damaged``, or
    ``X.spool.damaged.N``) and return its new path."""
    for number in itertools.count():
        target = path.with_name(path.name + DAMAGED_SUFFIX + (f".{number}" if number else ""))
        if not target.exists():
            os.replace(path, target)
            return target
    raise AssertionError("unreachable")


# -- writing -------------------------------------------------------------------------------------


def _pack_frames(lines: list[bytes], first_index: int) -> tuple[bytes, int]:
    chunks: list[bytes] = []
    index = first_index
    start = 0
    while start < len(lines):
        end, size = start, 0
        while end < len(lines) and end - start < MAX_FRAME_ITEMS:
            if end > start and size + len(lines[end]) + 1 > MAX_FRAME_BYTES:
                break
            size += len(lines[end]) + 1
            end += 1
        payload = b"\n".join(lines[start:end])
        head = _FRAME.pack(FRAME_MARKER, index, end - start, len(payload), zlib.crc32(payload), 0)[
            : _FRAME.size - 4
        ]
        chunks += [head, _CRC.pack(zlib.crc32(head)), payload]
        index += 1
        start = end
    return b"".join(chunks), index - first_index


@attrs.define
class Spool:
    """An append-only spool file for one run.

    When the disk refuses a write (full, read-only...), the items are kept in memory, in order,
    a ``SpoolWriteWarning`` says so once, and the next append tries the disk again."""

    path: Path
    header: SpoolHeader
    _items: int = 0
    _memory: list[Any] = attrs.field(factory=list, init=False)
    _frames_on_disk: int = attrs.field(default=0, init=False)
    _items_on_disk: int = attrs.field(default=0, init=False)
    _adopted: bool = attrs.field(default=False, init=False)
    _warned: bool = attrs.field(default=False, init=False)
    #: Appends so far: a reader compares it with ``SpoolFrames.appends`` to see new items.
    appends: int = attrs.field(default=0, init=False)

    @property
    def items(self) -> int:
        """Items appended by this process and not yet cleared (on disk or kept in memory)."""
        return self._items

    def exists(self) -> bool:
        return bool(self._memory) or self.path.exists()

    def append(self, items: list[Any]) -> None:
        if not items:
            return
        self._items += len(items)
        self.appends += 1
        pending = [*self._memory, *items] if self._memory else list(items)
        try:
            self._write(pending)
        except Exception as error:  # a full disk; or an item it cannot encode (a bug)
            self._memory = pending
            if not self._warned:
                self._warned = True
                cause = f"({error})" if isinstance(error, OSError) else f"(a bug: {error!r})"
                warnings.warn(
                    f"track: cannot write the spool file {self.path} {cause}; "
                    f"{len(pending)} item(s) are kept in memory, in order, and written to the "
                    "backend when it is back (or to the file when the disk has room); "
                    "training goes on",
                    SpoolWriteWarning,
                    stacklevel=2,
                )
            return
        self._memory = []
        self._warned = False

    def _adopt(self) -> None:
        """Before the first write of this object: continue a file of the same run, or move any
        other file at this path aside (it keeps the ``.spool`` suffix, so it is still replayed)."""
        self._adopted = True
        if not self.path.exists():
            return
        try:
            with open(self.path, "rb") as stream:
                start = stream.read(_MAX_HEADER_BYTES + 64)
            if start[: len(MAGIC)] != MAGIC:
                raise SpoolFormatError("not format 2")
            header, _, progress = _parse_header(start, self.path)
            same = header == self.header
        except (SpoolFormatError, OSError, ValueError):
            same, progress = False, None
        if same and progress is not None:
            self._frames_on_disk, self._items_on_disk = progress
            return
        for number in itertools.count(1):
            aside = self.path.with_name(f"{self.path.stem}.{number}{self.path.suffix}")
            if not aside.exists():
                os.replace(self.path, aside)
                return

    def _write(self, items: list[Any]) -> None:
        lines = encode_items(items)
        if not self._adopted:
            self._adopt()
        frames, count = _pack_frames(lines, self._frames_on_disk)
        total_frames, total_items = self._frames_on_disk + count, self._items_on_disk + len(lines)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(self.path, "xb") as stream:
                    stream.write(_header_bytes(self.header))
                    stream.write(_progress_bytes(total_frames, total_items))
                    stream.write(frames)
                    stream.flush()
                    os.fsync(stream.fileno())
            except OSError:
                self.path.unlink(missing_ok=True)
                raise
            _sync_directory(self.path.parent)
        else:
            with open(self.path, "r+b") as stream:
                end = stream.seek(0, os.SEEK_END)
                try:
                    stream.write(frames)
                    stream.flush()
                    stream.seek(len(_header_bytes(self.header)))
                    stream.write(_progress_bytes(total_frames, total_items))
                    stream.flush()
                    os.fsync(stream.fileno())
                except OSError:
                    try:  # leave no partial frame behind (a reader would skip it anyway)
                        stream.truncate(end)
                    finally:
                        raise
        self._frames_on_disk, self._items_on_disk = total_frames, total_items

    def frames(self) -> SpoolFrames:
        """The item frames, in order: the file's, then any kept in memory. Its ``damage`` says
        what the file lost."""
        memory = list(self._memory)
        tail: Iterator[list[Any]] = iter(
            [memory[i : i + MAX_FRAME_ITEMS] for i in range(0, len(memory), MAX_FRAME_ITEMS)]
        )
        if self.path.exists():
            try:
                _, disk = read_spool(self.path)
            except SpoolFormatError as error:  # its header is gone: so is what it held
                damage = SpoolDamage(self.path, recorded_items=self._items_on_disk)
                region = DamagedRegion(0, 0, str(error), None, self._items_on_disk)
                damage._note(region)
                return SpoolFrames(tail, damage, self.appends)
            return SpoolFrames(itertools.chain(disk, tail), disk.damage, self.appends)
        return SpoolFrames(tail, SpoolDamage(self.path), self.appends)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self._reset()

    def finish(self, damage: SpoolDamage | None = None) -> Path | None:
        """Done with the spool: delete it, or, when ``damage`` says it lost items, keep the
        file as ``X.spool.damaged`` and return that path."""
        kept = None
        if damage and self.path.exists():
            kept = keep_damaged(self.path)
        self.clear()
        return kept

    def _reset(self) -> None:
        self._items = 0
        self._memory = []
        self._frames_on_disk = self._items_on_disk = 0
        self._adopted = False


def _sync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


register_record("run_spec", RunSpec)
