"""Settings: the ``TRACK`` node of a Detectron2 config, and the same settings as keywords.

yacs configs (``get_cfg()``) get an upper-case ``cfg.TRACK`` node, LazyConfig (OmegaConf) configs
a lower-case ``cfg.track`` node, with the same settings. A keyword argument given to
``TrackHook`` / ``TrackWriter`` wins over the config.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import attrs

import track_core as track

#: Evaluation tasks whose results Detectron2 flattens to ``<task>/<metric>`` (or
#: ``<dataset>/<task>/<metric>`` with several test sets): COCO/LVIS/Pascal (bbox, segm,
#: keypoints, box_proposals), semantic and panoptic segmentation, Cityscapes.
DEFAULT_EVAL_TASKS: tuple[str, ...] = (
    "bbox",
    "segm",
    "keypoints",
    "box_proposals",
    "sem_seg",
    "panoptic_seg",
)

#: What is uploaded at the end by default. ``"model"`` (the final checkpoint) is opt-in.
DEFAULT_UPLOAD: tuple[str, ...] = ("config", "metrics", "log")

#: The words ``UPLOAD`` understands; any other entry is a glob relative to the output directory.
UPLOAD_WORDS = frozenset({"config", "metrics", "log", "model"})


def _str_or_none(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _str_tuple(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Iterable):
        return tuple(str(item) for item in value)
    raise TypeError(f"expected a list of str, got {type(value).__name__}: {value!r}")


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class TrackSettings:
    """Everything the hook and the writer can be told.

    ``backend``: a backend string (``"aim"``, ``"aim:/path"``, ``"mlflow:sqlite:///mlflow.db"``,
    ``"memory"``) or a Backend object; None means ``$TRACK_BACKEND``.
    ``experiment``, ``run_name``, ``description``, ``tags``, ``run_id`` (resume a run): as in
    ``track_core.start_run``. ``upload``: what to store at the end, words from ``config``,
    ``metrics`` (metrics.json), ``log`` (log.txt), ``model`` (model_final.pth) and globs relative
    to the output directory. ``write_period``: read the event storage every N iterations (values
    are never lost between reads: each one is logged at the iteration it was recorded).
    ``window_size``: median window for scalars put with ``smoothing_hint=True``, the same as
    Detectron2's own writers (so values match metrics.json and TensorBoard); 1 logs raw values.
    ``log_images`` / ``log_histograms``: track ``put_image`` / ``put_histogram`` data.
    ``eval_tasks``: first parts of scalar names that mark evaluation results.
    ``enabled``: None tracks on the main process only; False switches tracking off.
    ``output_dir``: where metrics.json and log.txt are (default: ``cfg.OUTPUT_DIR`` or
    ``cfg.train.output_dir``).
    ``writer_process``: where the backend's SDK calls run (``track_core.WriterOptions.process``):
    ``"auto"`` (the default unless ``$TRACK_WRITER_PROCESS`` says otherwise) puts them in a
    child process where the backend allows it (Aim, MLflow), so that they never hold the
    training process's GIL; ``"off"`` keeps them in a thread; ``"on"`` warns where it cannot.
    ``system_metrics``: sample CPU, memory, disk, network and GPUs into the run from a thread of
    their own (``track_core.start_run(system_metrics=...)``): True at
    ``system_metrics_interval`` seconds (None or 0: the core's default, 10 s), a number at that
    many seconds, False off; None leaves it to the backend string's ``system_metrics=`` and
    ``$TRACK_SYSTEM_METRICS``. In a config, ``SYSTEM_METRICS: False`` (the default) is None.
    """

    backend: Any = attrs.field(default=None)
    experiment: str | None = attrs.field(default=None, converter=_str_or_none)
    run_name: str | None = attrs.field(default=None, converter=_str_or_none)
    description: str | None = attrs.field(default=None, converter=_str_or_none)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    run_id: str | None = attrs.field(default=None, converter=_str_or_none)
    upload: tuple[str, ...] = attrs.field(default=DEFAULT_UPLOAD, converter=_str_tuple)
    write_period: int = attrs.field(default=20, validator=_positive_int)
    window_size: int = attrs.field(default=20, validator=_positive_int)
    log_images: bool = attrs.field(default=True, converter=bool)
    log_histograms: bool = attrs.field(default=True, converter=bool)
    eval_tasks: tuple[str, ...] = attrs.field(default=DEFAULT_EVAL_TASKS, converter=_str_tuple)
    enabled: bool | None = attrs.field(default=None)
    output_dir: str | None = attrs.field(default=None, converter=_str_or_none)
    writer_process: str | None = attrs.field(default=None, converter=_str_or_none)
    system_metrics: bool | float | None = attrs.field(default=None)
    system_metrics_interval: float | None = attrs.field(default=None)

    @system_metrics.validator
    def _check_system_metrics(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None or isinstance(value, bool):
            return
        if not isinstance(value, (int, float)):
            raise TypeError(
                f"system_metrics must be True, False, None or a number of seconds, got {value!r}"
            )
        from track_core.system_metrics import check_interval

        check_interval(value)

    @system_metrics_interval.validator
    def _check_interval(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None or value == 0:
            return
        from track_core.system_metrics import check_interval

        check_interval(value)

    def system_metrics_option(self) -> bool | float | None:
        """What ``track_core.start_run(system_metrics=...)`` is given."""
        if self.system_metrics is True and self.system_metrics_interval:
            return float(self.system_metrics_interval)
        return self.system_metrics

    @writer_process.validator
    def _check_writer_process(self, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None:
            track.WriterOptions(process=value)  # raises for anything but off / on / auto

    def writer_options(self) -> track.WriterOptions:
        """The run's writer options: ``writer_process``, else the environment's, else auto."""
        process = self.writer_process or os.environ.get("TRACK_WRITER_PROCESS") or "auto"
        return track.WriterOptions(process=process)

    @backend.validator
    def _check_backend(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, str) and not value.strip():
            raise ValueError("backend must not be an empty string (use None for $TRACK_BACKEND)")

    @classmethod
    def from_config(cls, cfg: Any = None, **overrides: Any) -> TrackSettings:
        """Settings from ``cfg.TRACK`` / ``cfg.track`` (if present), then keyword overrides."""
        unknown = set(overrides) - {f.name for f in attrs.fields(cls)}
        if unknown:
            raise TypeError(f"unknown track-detectron2 settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        node = _track_node(cfg)
        if node is not None:
            for field in attrs.fields(cls):
                for key in (field.name.upper(), field.name):
                    if key in node:
                        values[field.name] = _plain(node[key])
                        break
        if cfg is not None and values.get("output_dir") is None:
            values["output_dir"] = output_dir_of(cfg)
        if isinstance(values.get("backend"), str) and not values["backend"].strip():
            values["backend"] = None
        if values.get("system_metrics") is False:  # a config's default: not switched on here
            values["system_metrics"] = None
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def _plain(value: Any) -> Any:
    module = type(value).__module__ or ""
    if module.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _track_node(cfg: Any) -> Any:
    """``cfg.TRACK`` / ``cfg.track`` when there is one (a mapping-like node), else None."""
    if cfg is None or not hasattr(cfg, "__getitem__"):
        return None
    for key in ("TRACK", "track"):
        try:
            node = cfg[key]
        except Exception:  # KeyError; omegaconf's ConfigKeyError / ConfigAttributeError
            continue
        if node is not None and hasattr(node, "keys"):
            return node
    return None


def output_dir_of(cfg: Any) -> str | None:
    """``cfg.OUTPUT_DIR`` (yacs) or ``cfg.train.output_dir`` (LazyConfig), if set."""
    for path in (("OUTPUT_DIR",), ("train", "output_dir")):
        value = _lookup(cfg, path)
        if value:
            return str(value)
    return None


def _lookup(cfg: Any, path: tuple[str, ...]) -> Any:
    """``cfg.a.b`` for ``path == ("a", "b")``, None when missing."""
    value = cfg
    for part in path:
        try:
            value = getattr(value, part)
        except Exception:  # AttributeError; omegaconf's ConfigAttributeError
            return None
    return value


def add_track_config(cfg: Any) -> Any:
    """Add the track settings node to a Detectron2 config, with defaults; returns ``cfg``.

    yacs (``detectron2.config.get_cfg()``)::

        cfg = get_cfg()
        add_track_config(cfg)
        cfg.merge_from_file(...)            # may now set TRACK.* keys
        cfg.TRACK.BACKEND = "aim"           # or "mlflow:sqlite:///mlflow.db"; "" = $TRACK_BACKEND

    LazyConfig (OmegaConf)::

        cfg = LazyConfig.load("config.py")
        add_track_config(cfg)
        cfg.track.backend = "aim"

    A yacs config's ``dump()`` then leaves ``TRACK`` out, so that the ``config.yaml`` which
    ``default_setup`` writes loads with a plain ``get_cfg().merge_from_file()`` (``--eval-only``,
    ``demo.py``); the settings are still stored with the run's params (credentials removed).

    ``BACKEND``, ``EXPERIMENT``, ``RUN_NAME``, ``DESCRIPTION``, ``RUN_ID``: "" means unset.
    ``TAGS``: list of str. ``UPLOAD``: ``["config", "metrics", "log"]`` by default; add
    ``"model"`` for the final checkpoint, or globs relative to the output directory.
    ``WRITE_PERIOD`` (20), ``WINDOW_SIZE`` (20), ``LOG_IMAGES`` (True), ``LOG_HISTOGRAMS`` (True),
    ``EVAL_TASKS``, ``WRITER_PROCESS`` ("" means auto): see ``TrackSettings``.
    ``SYSTEM_METRICS`` (False; True samples system metrics into the run) and
    ``SYSTEM_METRICS_INTERVAL`` (seconds; 0.0 is the core's default, 10 s).
    """
    defaults: dict[str, Any] = {
        "BACKEND": "",
        "EXPERIMENT": "",
        "RUN_NAME": "",
        "DESCRIPTION": "",
        "TAGS": [],
        "RUN_ID": "",
        "UPLOAD": list(DEFAULT_UPLOAD),
        "WRITE_PERIOD": 20,
        "WINDOW_SIZE": 20,
        "LOG_IMAGES": True,
        "LOG_HISTOGRAMS": True,
        "EVAL_TASKS": list(DEFAULT_EVAL_TASKS),
        "WRITER_PROCESS": "",
        "SYSTEM_METRICS": False,
        "SYSTEM_METRICS_INTERVAL": 0.0,
    }
    module = type(cfg).__module__ or ""
    if module.startswith("omegaconf"):
        from omegaconf import OmegaConf, open_dict

        with open_dict(cfg):
            existing = cfg.get("track")
            merged = {key.lower(): value for key, value in defaults.items()}
            if existing is not None:
                merged.update(OmegaConf.to_container(existing, resolve=False))  # type: ignore[arg-type]
            cfg.track = merged
        return cfg
    from detectron2.config import CfgNode  # type: ignore[import-untyped]

    from track_detectron2.yacs_config import leave_track_out_of_dump

    node = CfgNode(defaults)
    if "TRACK" in cfg:
        node.merge_from_other_cfg(cfg.TRACK)
    frozen = cfg.is_frozen()
    if frozen:
        cfg.defrost()
    cfg.TRACK = node
    if frozen:
        cfg.freeze()
    leave_track_out_of_dump(cfg)
    return cfg
