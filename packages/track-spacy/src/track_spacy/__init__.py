"""track-spacy: a spaCy training logger (``track.Logger.v1``) that tracks with track.

Add to a training config::

    [training.logger]
    @loggers = "track.Logger.v1"
    backend = "aim"
    experiment_name = "ner"
"""

from track_spacy.logger import Options, SpacyRunLogger, TrackLoggerWarning, track_logger_v1

__version__ = "0.1.0"

__all__ = ["Options", "SpacyRunLogger", "TrackLoggerWarning", "__version__", "track_logger_v1"]
