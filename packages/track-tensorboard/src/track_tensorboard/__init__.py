"""TensorBoard integration for track: ``SummaryWriter`` calls go to any backend, and TensorBoard
event files come in.

    from track_tensorboard import SummaryWriter          # drop-in: torch's constructor
    writer = SummaryWriter(backend="aim", experiment="mnist")
    writer.add_scalar("train/loss", loss, step)         # "loss" in {"subset": "train"}

    import track_tensorboard
    with track_tensorboard.patch("mlflow"):             # torch's / tensorboardX's writers too
        trainer.fit(model)                              # (Lightning's TensorBoardLogger, ...)

    python -m track_tensorboard import runs/ --to aim:./aim

Importing this package imports track_core only; torch, tensorboard and numpy when used.
"""

from track_tensorboard.importer import EventFileError, ImportReport, RunImport, import_logdir
from track_tensorboard.names import NameRule, raw_tag, split_tag
from track_tensorboard.patching import CaptureWarning, Patch, active_patch, patch, unpatch
from track_tensorboard.session import (
    Experiment,
    get_active_experiment,
    start_logging,
    stop_logging,
)
from track_tensorboard.writer import Recorder, SummaryWriter, UnsupportedWarning

__version__ = "0.1.0"

__all__ = [
    "CaptureWarning",
    "EventFileError",
    "Experiment",
    "ImportReport",
    "NameRule",
    "Patch",
    "Recorder",
    "RunImport",
    "SummaryWriter",
    "UnsupportedWarning",
    "active_patch",
    "get_active_experiment",
    "import_logdir",
    "patch",
    "raw_tag",
    "split_tag",
    "start_logging",
    "stop_logging",
    "unpatch",
]
