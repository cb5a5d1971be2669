"""How Detectron2 scalar names become track names and contexts.

Training scalars keep their Detectron2 name and get the context ``{"subset": "train"}``::

    total_loss                 -> "total_loss"             {"subset": "train"}
    fast_rcnn/cls_accuracy     -> "fast_rcnn/cls_accuracy" {"subset": "train"}

Evaluation results, which ``EvalHook`` puts flattened as ``<task>/<metric>`` (one test set) or
``<dataset>/<task>/<metric>`` (several), where ``<task>`` is one of the evaluation tasks
(``bbox``, ``segm``, ``keypoints``, ``box_proposals``, ``sem_seg``, ``panoptic_seg`` by default),
become the metric name with a context naming the evaluation, task and dataset; a per-category
metric (``AP-<category>``, ``IoU-<category>``, ``ACC-<category>``) becomes the metric with the
category in the context::

    bbox/AP           -> "AP"  {"subset": "eval", "task": "bbox", "dataset": "coco_val"}
    val2/segm/AP50    -> "AP50" {"subset": "eval", "task": "segm", "dataset": "val2"}
    bbox/AP-person    -> "AP"  {"subset": "eval", "task": "bbox", "dataset": ..., "category": "person"}

The dataset is the first part of the name when there is one, else the only test dataset of the
config (``DATASETS.TEST``), else it is left out. ``log_evaluation`` uses the same mapping with
``{"subset": "test"}``.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from track_core import Context

TRAIN_CONTEXT = Context({"subset": "train"})

PER_CATEGORY_PREFIXES = ("AP-", "IoU-", "ACC-")


@attrs.frozen
class TrackKey:
    """Where one Detectron2 scalar goes: a track sequence name and context."""

    name: str
    context: Context
    is_eval: bool


@attrs.define
class NameMapper:
    """Maps Detectron2 scalar names to ``TrackKey`` (cached: called for every scalar)."""

    eval_tasks: frozenset[str]
    default_dataset: str | None = None
    eval_subset: str = "eval"
    _cache: dict[str, TrackKey] = attrs.field(factory=dict, init=False)

    @classmethod
    def create(
        cls,
        eval_tasks: Iterable[str],
        default_dataset: str | None = None,
        eval_subset: str = "eval",
    ) -> NameMapper:
        return cls(frozenset(eval_tasks), default_dataset, eval_subset)

    def __call__(self, key: str) -> TrackKey:
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._map(key)
        return found

    def _map(self, key: str) -> TrackKey:
        parts = key.split("/")
        dataset: str | None
        if len(parts) >= 2 and parts[0] in self.eval_tasks:
            dataset, task, metric = self.default_dataset, parts[0], "/".join(parts[1:])
        elif len(parts) >= 3 and parts[1] in self.eval_tasks:
            dataset, task, metric = parts[0], parts[1], "/".join(parts[2:])
        else:
            return TrackKey(key, TRAIN_CONTEXT, False)
        context: dict[str, str] = {"subset": self.eval_subset, "task": task}
        if dataset:
            context["dataset"] = dataset
        for prefix in PER_CATEGORY_PREFIXES:
            if metric.startswith(prefix) and len(metric) > len(prefix):
                context["category"] = metric[len(prefix) :]
                metric = prefix[:-1]
                break
        return TrackKey(metric, Context(context), True)
