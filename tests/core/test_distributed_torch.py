"""Rank helpers in a real two-process torch.distributed (gloo, CPU) group."""

from __future__ import annotations

import os
from typing import Any

import pytest

torch = pytest.importorskip("torch")
mp = pytest.importorskip("torch.multiprocessing")


def _worker(rank: int, world: int, port: int, results: Any) -> None:
    import torch.distributed as dist

    import track_core as track

    os.environ["RANK"] = "7"  # a stale variable: the initialized process group must win
    before = track.distributed.rank()
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        run = track.start_run("memory")
        kind = type(run).__name__
        run.track(1.0, "loss")
        run.close()
        results.put(
            (
                rank,
                before,
                track.distributed.rank(),
                track.distributed.world_size(),
                track.distributed.is_main_process(),
                kind,
            )
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_only_rank_zero_of_a_gloo_group_tracks() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.start_processes(_worker, args=(2, port, results), nprocs=2, join=True, start_method="spawn")
    rows = sorted(results.get() for _ in range(2))
    assert rows == [
        (0, 7, 0, 2, True, "TrackedRun"),
        (1, 7, 1, 2, False, "NoOpRun"),
    ]
