"""Helpers of the TensorBoard tests: event files read back with tensorboard's own reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import track_core as track


def event_scalars(log_dir: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """``{tag: {step: (value, wall_time)}}`` of every scalar under ``log_dir`` (one run dir)."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea
    from tensorboard.util import tensor_util

    accumulator = pea.EventAccumulator(
        str(log_dir), size_guidance={pea.TENSORS: 0}, purge_orphaned_data=False
    )
    accumulator.Reload()
    found: dict[str, dict[int, tuple[float, float]]] = {}
    for tag in accumulator.Tags()["tensors"]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        for event in accumulator.Tensors(tag):
            value = float(tensor_util.make_ndarray(event.tensor_proto).item())
            found.setdefault(tag, {})[event.step] = (value, event.wall_time)
    return found


def event_tags(log_dir: Path) -> dict[str, str]:
    """``{tag: plugin}`` of one run dir."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea

    accumulator = pea.EventAccumulator(str(log_dir), size_guidance={pea.TENSORS: 0})
    accumulator.Reload()
    return {
        tag: accumulator.SummaryMetadata(tag).plugin_data.plugin_name
        for tag in accumulator.Tags()["tensors"]
    }


def by_sequence(run: Any) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """``{(name, sorted context items): sequence}`` of a track run or view."""
    return {(s.name, tuple(sorted(s.context.to_dict().items()))): s for s in run.sequences()}


def steps_values(sequence: Any) -> list[tuple[int, Any]]:
    return [(point.step, point.value) for point in sequence.points()]


def read(backend: str, run_id: str) -> track.RunView:
    return track.open_run(run_id, backend)
