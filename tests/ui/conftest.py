"""The browser for the UI tests: one headless Chromium for the session (see ui_browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ui_browser import start_browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    yield from start_browser()
