"""Test support shipped with track-core: the backend conformance kit, and ports for test servers.

The kit needs pytest (``pip install "track-core[testing]"``); see ``BackendConformance``. It is
imported on first use, so ``track_core.testing.ports`` works without pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from track_core.testing.conformance import (
        PARAMS,
        SCALARS,
        BackendConformance,
        StorageReader,
    )

__all__ = ["PARAMS", "SCALARS", "BackendConformance", "StorageReader"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from track_core.testing import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module 'track_core.testing' has no attribute {name!r}")
