"""Test support shipped with track-core: the backend conformance kit.

Needs pytest (``pip install "track-core[testing]"``). See ``BackendConformance``.
"""

from track_core.testing.conformance import PARAMS, SCALARS, BackendConformance, StorageReader

__all__ = ["PARAMS", "SCALARS", "BackendConformance", "StorageReader"]
