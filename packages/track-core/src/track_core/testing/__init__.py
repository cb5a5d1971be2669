"""Test support shipped with track-core: the backend conformance kit, and ports for test servers.

The kit needs pytest (``pip install "track-core[testing]"``); see ``BackendConformance``. It is
imported on first use, so ``track_core.testing.ports`` works without pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from track_core.testing.base import ConformanceBase, StorageReader
    from track_core.testing.conformance import (
        PARAMS,
        SCALARS,
        BackendConformance,
        StorageConformance,
    )
    from track_core.testing.copies import CopyConformance
    from track_core.testing.delivery import DeliveryConformance
    from track_core.testing.faults import Fault, FaultyBackend
    from track_core.testing.logging_calls import LoggingCallsConformance

__all__ = [
    "PARAMS",
    "SCALARS",
    "BackendConformance",
    "ConformanceBase",
    "CopyConformance",
    "DeliveryConformance",
    "Fault",
    "FaultyBackend",
    "LoggingCallsConformance",
    "StorageConformance",
    "StorageReader",
]

_MODULE_OF = {
    "ConformanceBase": "base",
    "CopyConformance": "copies",
    "StorageReader": "base",
    "DeliveryConformance": "delivery",
    "Fault": "faults",
    "FaultyBackend": "faults",
    "LoggingCallsConformance": "logging_calls",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        module = importlib.import_module(
            f"track_core.testing.{_MODULE_OF.get(name, 'conformance')}"
        )
        return getattr(module, name)
    raise AttributeError(f"module 'track_core.testing' has no attribute {name!r}")
