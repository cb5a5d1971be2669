"""Logging ``inference_on_dataset`` results into a run after training."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import track_core as track
from track_detectron2.names import NameMapper
from track_detectron2.settings import DEFAULT_EVAL_TASKS


def _flatten(results: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) in ((), None):
        try:
            number = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return float(number) if isinstance(number, numbers.Real) else None
    return None


def log_evaluation(
    results: Mapping[str, Any],
    run: Any,
    *,
    dataset: str | None = None,
    step: int | None = None,
    subset: str = "test",
    eval_tasks: Iterable[str] = DEFAULT_EVAL_TASKS,
) -> int:
    """Log ``inference_on_dataset`` (or ``DefaultTrainer.test``) results; return how many values.

    ``results`` is ``{"bbox": {"AP": ..., "AP-cat": ...}, "segm": {...}}`` for one dataset or
    ``{dataset: {task: {...}}}`` for several. Each number is tracked under the mapping of
    ``track_detectron2.names`` with ``{"subset": subset, "task": ..., "dataset": ...}``
    (``bbox/AP`` -> ``AP`` in ``{"subset": "test", "task": "bbox", "dataset": dataset}``).

    ``run``: a track run, or the ``TrackHook`` / ``TrackWriter`` of the training. The hook
    closed its run at the end of training: the run is then resumed (``start_run(run_id=...)``
    on the same backend), the results are logged, and the run is closed again with the status
    it had. ``dataset``: default, with a hook or writer, the one test dataset of its config
    (``DATASETS.TEST``), as the hook names ``EvalHook`` results. ``step``: default, with a hook
    or writer, the last training iteration it tracked (``MAX_ITER - 1`` after a complete
    training); for a plain run, the sequence's next step (0 for a new one). Non-numeric entries
    are skipped; NaN is logged as NaN.
    """
    session = getattr(run, "session", None)
    target = getattr(run, "run", None) if session is not None else run
    if session is not None:
        if step is None:
            step = session.last_iteration
        if dataset is None:
            dataset = session.test_dataset
    if target is None:
        return 0
    reopened = None
    previous_status = target.status
    if not target.recording:
        if previous_status is track.Status.RUNNING:
            return 0  # a no-op run (tracking off, or not rank 0): nothing to log into
        backend = getattr(target, "backend", None)
        if backend is None:
            raise ValueError("the run is closed and cannot be resumed (no backend to resume it on)")
        reopened = target = track.start_run(backend, run_id=target.id, enabled=True)
    mapper = NameMapper.create(eval_tasks, default_dataset=dataset, eval_subset=subset)
    count = 0
    try:
        for key, value in _flatten(results).items():
            number = _as_number(value)
            if number is None:
                continue
            mapped = mapper(key)
            if not mapped.is_eval:
                # a plain ``{"AP": ...}`` dict: no task, keep the key, mark the subset
                context: dict[str, Any] = {"subset": subset}
                if dataset:
                    context["dataset"] = dataset
                target.track(number, key, step=step, context=context)
            else:
                target.track(number, mapped.name, step=step, context=mapped.context)
            count += 1
        target.flush()
    finally:
        if reopened is not None:
            error = session.final_error if session is not None else None
            reopened.close(previous_status, error=error)
    return count
