"""track_core.current: the process's current run, found by integrations."""

from __future__ import annotations

import threading

import pytest

import track_core as track


def test_set_clear_and_restore(memory: str) -> None:
    assert track.current_run() is None
    first, second = track.start_run(memory), track.start_run(memory)
    assert track.set_current_run(first) is None
    assert track.current_run() is first
    with track.using_run(second):
        assert track.current_run() is second
        found: list[object] = []
        thread = threading.Thread(target=lambda: found.append(track.current_run()))
        thread.start()
        thread.join()
        assert found == [second]  # one per process: a callback thread finds it
    assert track.current_run() is first  # restored
    track.clear_current_run(second)  # not the current one: nothing
    assert track.current_run() is first
    first.close()
    assert track.current_run() is None  # an ended run is not current
    track.clear_current_run()
    second.close()


def test_only_runs_can_be_current() -> None:
    with pytest.raises(TypeError, match="takes a track run"):
        track.set_current_run("aim")  # type: ignore[arg-type]
    assert track.current_run() is None
