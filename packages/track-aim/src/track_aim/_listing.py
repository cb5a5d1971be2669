"""Which runs a repo holds: ``list_runs`` and the existence check of ``read_run`` / resume."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from track_aim import _aim_private as private
from track_aim._mapping import run_status, status_block, status_of_block, text_or_none
from track_aim._reader import created_at
from track_core.backend import RunInfo

#: A read session factory: ``with open_session() as session: ...``.
SessionFactory = Callable[[], contextlib.AbstractContextManager[private.ReadSession]]


def run_exists(open_session: SessionFactory, run_id: object) -> bool:
    """Whether the repo holds ``run_id`` now.

    An Aim server answers from a list it caches for 0.5 s (``Repo._all_run_hashes``), so a run
    another client created within that time is looked for again once the cache has expired.
    """
    if not isinstance(run_id, str) or not run_id:
        return False
    with open_session() as session:
        if run_id in private.list_run_hashes(session.repo):
            return True
        remote = private.is_remote(session.repo)
    if not remote:
        return False
    time.sleep(private.RUN_LIST_TTL + 0.05)
    with open_session() as session:
        return run_id in private.list_run_hashes(session.repo)


def _run_info(session: private.ReadSession, run_hash: str) -> RunInfo | None:
    stored = session.run(run_hash)
    try:
        props = stored.props
        track_status = status_of_block(status_block(stored.param))
        return RunInfo(
            run_hash,
            text_or_none(props.experiment),
            text_or_none(props.name),
            run_status(track_status, stored.end_time),
            created_at(props),
            stored.end_time,
        )
    except Exception as error:  # deleted meanwhile, or not a run written to completion
        if _is_missing(error):
            return None
        raise


def _is_missing(error: Exception) -> bool:
    name = type(error).__name__
    return isinstance(error, KeyError) or name in ("RepoIntegrityError", "RocksIOError")


def list_runs(open_session: SessionFactory, experiment: str | None = None) -> Sequence[RunInfo]:
    """Every run of the repo now, oldest first."""
    infos = []
    with open_session() as session:
        for run_hash in sorted(private.list_run_hashes(session.repo)):
            try:
                info = _run_info(session, run_hash)
            finally:
                session.close()  # release this run's containers before opening the next
            if info is not None and (experiment is None or info.experiment == experiment):
                infos.append(info)
    infos.sort(key=lambda info: (info.created_at or 0.0, info.id))
    return infos
