"""What an Aim server's CPU does with the messages track_aim sends it, per value.

To an Aim server a batch goes grouped by sequence, in messages of ``REMOTE_CHUNK`` values; a
message holding one sequence's values carries four ``update`` instructions (one per array: val,
epoch, time, step) and the sequence's summary (``last``, ``last_step``, ``max``). This script
builds such messages as Aim's client does (``encode_tree`` of the ``(handler, method, args)``
instructions, then ``pack_args``) and does in this process what the server's
``run_write_instructions`` does with each: decode it (``unpack_args`` + ``decode_tree``) and
call each instruction on a tree of a local RocksDB container, as the server's run trees are.
Both are timed with the process's CPU clock, per value, for several message lengths: the sum is
the server's CPU per value before its websocket and HTTP work, so one server process (one core)
stores at most 1 / (decode + apply) values per second.

    hatch run aim:python benchmarks/bench_aim_server_cost.py [--values 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from typing import Any

from aim.ext.transport.message_utils import pack_args, unpack_args
from aim.storage.rockscontainer import RocksContainer
from aim.storage.treeutils import decode_tree, encode_tree

from track_aim._writer import REMOTE_CHUNK

ARRAYS = ("val", "epoch", "time", "step")
SUMMARY = ("last", "last_step", "max")


def message(series: str, meta: str, run_hash: str, first: int, length: int) -> bytes:
    """One message of one sequence's ``length`` values from step ``first`` on."""
    steps = range(first, first + length)
    instructions: list[tuple[str, str, tuple[Any, ...]]] = []
    for array in ARRAYS:
        path = ("v2", "chunks", run_hash, 0, "layer0001/grad_norm", array)
        rows = [(2**40 + step, float(step) if array != "step" else step) for step in steps]
        instructions.append((series, "update", (path, rows)))
    for key in SUMMARY:
        path = ("meta", "chunks", run_hash, "traces", 0, "layer0001/grad_norm", key)
        instructions.append((meta, "__setitem__", (path, float(first + length - 1))))
    return pack_args(iter(list(encode_tree(instructions, strict=False))))


def measure(length: int, values: int) -> tuple[int, float, float]:
    """(message bytes, decode us/value, apply us/value) for messages of ``length`` values."""
    series, meta, run_hash = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex[:24]
    count = max(values // length, 1)
    messages = [message(series, meta, run_hash, index * length, length) for index in range(count)]
    with tempfile.TemporaryDirectory(prefix="aim-server-cost-") as directory:
        container = RocksContainer(f"{directory}/seqs", read_only=False)
        trees = {series: container.tree(), meta: container.tree()}
        decode_s = apply_s = 0.0
        clock = time.process_time
        for raw in messages:  # one at a time, as the server takes them
            began = clock()
            instructions = decode_tree(unpack_args(raw))
            decoded = clock()
            for handler, method, args in instructions:
                getattr(trees[handler], method)(*args)
            applied = clock()
            decode_s += decoded - began
            apply_s += applied - decoded
        container.close()
    stored = count * length
    return len(messages[0]), decode_s / stored * 1e6, apply_s / stored * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000, help="values per message length")
    arguments = parser.parse_args()
    print(f"{'values/message':>14} {'bytes':>8} {'decode us':>10} {'apply us':>9} {'sum us':>7} "
          f"{'one core values/s':>18}")  # fmt: skip
    for length in sorted({10, REMOTE_CHUNK, 50, 100}):
        size, decode_us, apply_us = measure(length, arguments.values)
        total = decode_us + apply_us
        mark = " (track_aim's REMOTE_CHUNK)" if length == REMOTE_CHUNK else ""
        print(f"{length:>14} {size:>8,} {decode_us:>10.1f} {apply_us:>9.1f} {total:>7.1f} "
              f"{1e6 / total:>18,.0f}{mark}")  # fmt: skip
    print(
        "\nper value, in this process, on a server's path: decode = unpack_args + decode_tree of "
        "the message; apply = the instructions on a RocksDB container's tree (each key one "
        "commit of its own, as Aim's ContainerTreeView.set does)"
    )


if __name__ == "__main__":
    main()
