"""A real browser on real UIs (helpers; the fixture is in conftest.py): Debian's chromium, headless, driven by selenium through Debian's
chromedriver, looking at ``aim up`` and ``mlflow server`` started on free 127.0.0.1 ports.

Chromium and its driver are apt-installed here when they are missing and this runs as root
(CI: a fresh machine); elsewhere, or when ``TRACK_UI_INSTALL=0``, the browser tests are skipped
with the reason. Nothing is downloaded by selenium itself (the driver's path is given, so
Selenium Manager is not asked). No screenshot is written: the tests read the page's text.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,3200",  # tall: the UIs render charts and images only when in view
)


def _install_chromium() -> str | None:
    """Install chromium and chromium-driver with apt; None, or why they could not be."""
    if os.environ.get("TRACK_UI_INSTALL", "1") == "0":
        return "TRACK_UI_INSTALL=0"
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not root: install chromium and chromium-driver to run the browser tests"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
        ],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            return f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}"
    return None


def start_browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        why = _install_chromium()
        if why is not None or not Path(CHROMEDRIVER).exists():
            pytest.skip(f"no chromium/chromedriver: {why or 'apt installed no chromedriver'}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


@contextlib.contextmanager
def serve(command: list[str], url: str, log: Path, timeout: float = 120.0) -> Iterator[str]:
    """Start a server, wait until ``url`` answers, yield it; stop it (its process group) after."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{command[0]} ended ({process.returncode}): {log.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status < 500:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{url} did not answer in {timeout} s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(10)


def aim_up(repo: Path, log: Path) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    command = [_bin("aim"), "up", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port)]
    return serve(command, f"http://127.0.0.1:{port}/", log)


def mlflow_server(directory: Path, log: Path) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    command = [
        _bin("mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
        "--artifacts-destination", str(directory / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    return serve(command, f"http://127.0.0.1:{port}/health", log, timeout=180.0)


def page_text(
    driver: Any,
    url: str | None,
    until: str | Callable[[str], bool],
    timeout: float = 45.0,
    settle: float = 1.0,
) -> str:
    """Open ``url`` (None: stay on the page) and return the page's visible text once ``until``
    (a substring, or a test of the text) holds and the text has not changed for ``settle``
    seconds; fail with the text seen when it never does."""
    if url is not None:
        # A fresh document with no saved UI state: both UIs keep layouts in the browser's
        # storage and in memory across in-app (#hash) navigations.
        with contextlib.suppress(Exception):
            driver.execute_script("localStorage.clear(); sessionStorage.clear();")
        driver.get("about:blank")
        driver.get(url)
    check = (lambda text: until in text) if isinstance(until, str) else until
    deadline = time.monotonic() + timeout
    text = ""
    stable_since: float | None = None
    last = None
    while time.monotonic() < deadline:
        try:
            text = driver.execute_script("return document.body ? document.body.innerText : ''")
        except Exception:  # the page is between documents
            text = ""
        now = time.monotonic()
        if text and check(text):
            if text != last:
                stable_since = now
            elif stable_since is not None and now - stable_since >= settle:
                return str(text)
        else:
            stable_since = None
        last = text
        time.sleep(0.25)
    pytest.fail(f"{url}: {until!r} never showed; the page read:\n{text[:3000]}")


def click_text(driver: Any, text: str, timeout: float = 20.0) -> None:
    """Click the innermost visible element whose own text is ``text``."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        for element in driver.find_elements(By.XPATH, f"//*[normalize-space(text())={text!r}]"):
            if element.is_displayed():
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
                driver.execute_script("arguments[0].click();", element)
                return
        if time.monotonic() > deadline:
            pytest.fail(f"no visible element reads {text!r}")
        time.sleep(0.3)


def shown_images(driver: Any) -> list[list[Any]]:
    """The page's loaded images that hold data (``data:`` or ``blob:`` sources, or served by
    the UI's API), as ``[source start, natural width, natural height]``."""
    images: list[list[Any]] = driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => i.complete && i.naturalWidth > 0)"
        ".map(i => [i.src.slice(0, 60), i.naturalWidth, i.naturalHeight])"
    )
    return [image for image in images if not str(image[0]).endswith(".svg")]


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check()`` until it returns something true; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not so after {timeout} s")
        time.sleep(0.3)
