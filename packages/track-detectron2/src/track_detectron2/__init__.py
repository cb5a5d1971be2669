"""track-detectron2: track a Detectron2 training with one line, to Aim, MLflow or any backend.

    from track_detectron2 import TrackHook, add_track_config

    cfg = get_cfg()
    add_track_config(cfg)                 # cfg.TRACK.BACKEND, EXPERIMENT, RUN_NAME, ...
    cfg.TRACK.BACKEND = "aim"
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks([TrackHook(cfg)])
    trainer.train()

Depends on ``track_core`` only; the backend (``track-aim``, ``track-mlflow``, ...) is found by
name at run time.
"""

from track_detectron2.evaluation import log_evaluation
from track_detectron2.hook import TrackHook, TrackWriter
from track_detectron2.names import NameMapper, TrackKey
from track_detectron2.session import config_to_params
from track_detectron2.settings import TrackSettings, add_track_config

__version__ = "0.1.0"

__all__ = [
    "NameMapper",
    "TrackHook",
    "TrackKey",
    "TrackSettings",
    "TrackWriter",
    "__version__",
    "add_track_config",
    "config_to_params",
    "log_evaluation",
]
