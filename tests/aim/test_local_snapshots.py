"""A read-only Aim view held in the training process while its run is written (Aim 3.29).

``Repo.request_container`` caches read-only containers in ``Repo.container_pool`` and a
read-only RocksDB is a snapshot of when it was opened: while an ``aim.Run(hash, read_only=True)``
of a run is referenced, every later read of that run through Aim's SDK in the same process sees
the values of when the view was opened, however many were written since. track's reader opens
the run's containers afresh for each read, so it sees every value all the same.
"""

from __future__ import annotations

import gc
from pathlib import Path

from aim.sdk.index_manager import RepoIndexManager
from aim.sdk.repo import Repo
from aim.storage.context import Context as AimContext

import track_core as track
from track_core.context import Context

NAMES = [f"layer{i:02d}/grad_norm" for i in range(20)]


def _aim_counts(path: str, run_id: str) -> dict[str, int]:
    """Values per metric that Aim's own SDK reads now, in this process."""
    repo = Repo.from_path(path)
    RepoIndexManager.get_index_manager(repo).index(run_id)  # Repo.get_run reads the index only
    run = repo.get_run(run_id)
    assert run is not None
    return {m.name: len(m.data.numpy()[0]) for m in run.metrics() if m.name in NAMES}


def test_a_held_aim_view_is_a_snapshot_and_tracks_reader_sees_every_value(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "repo")
    run = track.start_run(f"aim:{path}", experiment="snapshots")
    for step in range(100):
        for index, name in enumerate(NAMES):
            run.track(step + index / 100, name, step=step)
    assert run.flush(timeout=60)
    repo = Repo.from_path(path)
    RepoIndexManager.get_index_manager(repo).index(run.backend_id)
    held = repo.get_run(run.backend_id)  # a user's view, kept while training goes on
    assert held is not None
    assert len(held.get_metric(NAMES[0], AimContext({})).data.numpy()[0]) == 100
    for step in range(100, 400):
        for index, name in enumerate(NAMES):
            run.track(step + index / 100, name, step=step)
    run.close()

    # Aim's limit, checked so that this test says when Aim no longer has it: the held view's
    # snapshot is what every read of the run in this process gets.
    assert _aim_counts(path, run.backend_id) == dict.fromkeys(NAMES, 100)
    stored = track.get_backend(f"aim:{path}").read_run(run.backend_id)
    for index, name in enumerate(NAMES):
        points = stored.points(name, Context())
        assert [(p.step, p.value) for p in points] == [
            (step, step + index / 100) for step in range(400)
        ]

    del held
    gc.collect()
    assert _aim_counts(path, run.backend_id) == dict.fromkeys(NAMES, 400)
