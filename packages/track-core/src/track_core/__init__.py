"""track: one experiment-tracking API, with Aim, MLflow or any backend behind it.

    import track_core as track

    with track.start_run("aim", experiment="mnist") as run:
        run["hparams"] = {"lr": 0.01, "layers": [64, 64]}
        for step in range(100):
            run.track(loss, "loss", step=step, context={"subset": "train"})

Importing this package imports attrs and the standard library only.
"""

from track_core import distributed
from track_core._fanout import MultiRun
from track_core._run import TrackedRun
from track_core._views import RunView, SequenceView
from track_core._writer import WriterOptions
from track_core.api import open_run, pending_spools, replay, start_run
from track_core.context import EMPTY_CONTEXT, Context
from track_core.copying import copy_run, copy_runs
from track_core.current import clear_current_run, current_run, set_current_run, using_run
from track_core.discovery import get_backend, installed_backends
from track_core.errors import (
    BackendNotFoundError,
    BackendUnavailableWarning,
    BackPressureWarning,
    CapabilityError,
    DataNotWrittenWarning,
    NonFiniteValueWarning,
    ReadOnlyRunError,
    RejectedItemWarning,
    RunClosedError,
    SequenceKindError,
    SpoolDamagedWarning,
    SpoolFormatError,
    SpoolWriteWarning,
    TrackError,
    TrackWarning,
    WriterProcessError,
)
from track_core.noop import NoOpRun
from track_core.params import to_params
from track_core.protocols import Run, Sequence
from track_core.redaction import redact_params, redact_text
from track_core.status import Status
from track_core.values import Distribution, Image, Point, Text, ValueKind

__version__ = "0.1.0"

__all__ = [
    "EMPTY_CONTEXT",
    "BackPressureWarning",
    "BackendNotFoundError",
    "BackendUnavailableWarning",
    "CapabilityError",
    "Context",
    "DataNotWrittenWarning",
    "Distribution",
    "Image",
    "MultiRun",
    "NoOpRun",
    "NonFiniteValueWarning",
    "Point",
    "ReadOnlyRunError",
    "RejectedItemWarning",
    "Run",
    "RunClosedError",
    "RunView",
    "Sequence",
    "SequenceKindError",
    "SequenceView",
    "SpoolDamagedWarning",
    "SpoolFormatError",
    "SpoolWriteWarning",
    "Status",
    "Text",
    "TrackError",
    "TrackWarning",
    "TrackedRun",
    "ValueKind",
    "WriterOptions",
    "WriterProcessError",
    "clear_current_run",
    "copy_run",
    "copy_runs",
    "current_run",
    "distributed",
    "get_backend",
    "installed_backends",
    "open_run",
    "pending_spools",
    "redact_params",
    "redact_text",
    "replay",
    "set_current_run",
    "start_run",
    "to_params",
    "using_run",
]
