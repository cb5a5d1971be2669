"""The kit's pytest plugin (registered under ``pytest11``, loaded when track-core is installed):
pytest rewrites the kit's asserts, so a failing check shows the values it compared."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(
    "track_core.testing.base",
    "track_core.testing.conformance",
    "track_core.testing.copies",
    "track_core.testing.delivery",
    "track_core.testing.logging_calls",
)
