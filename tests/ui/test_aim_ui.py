"""Track's run and the same run made with ``aim.Run``, side by side in ``aim up`` (a real Aim UI
in headless Chromium). Each test reads what a person sees on a page, for both runs.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import runs
from ui_browser import _bin, aim_up, page_text, shown_images, wait_until

pytest.importorskip("aim")
pytest.importorskip("track_aim")

WHO = ("track", "aim")


@pytest.fixture(scope="module")
def aim_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("aim-ui")
    repo = base / "repo"
    repo.mkdir()
    subprocess.run([_bin("aim"), "init", "--repo", str(repo)], check=True, capture_output=True)
    ids = {"track": runs.by_track(f"aim:{repo}"), "aim": runs.by_aim(str(repo))}
    with aim_up(repo, base / "aim-up.log") as url:
        yield {"url": url.rstrip("/"), "ids": ids}


def _page(browser: Any, aim_ui: dict[str, Any], who: str, tab: str, until: str) -> str:
    run_id = aim_ui["ids"][who]
    return page_text(browser, f"{aim_ui['url']}/runs/{run_id}{tab}", until, timeout=90)


def _params(text: str) -> list[str]:
    """The param names listed in a run's Run Params card (name and value lines alternate)."""
    card = text.split("Run Params\nSearch", 1)[1].split("Name(", 1)[0]
    lines = [line for line in card.split("\n") if line.strip()]
    return lines[0::2]


@pytest.mark.parametrize("who", WHO)
def test_header_shows_experiment_name_status_and_duration(
    browser: Any, aim_ui: dict[str, Any], who: str
) -> None:
    text = _page(browser, aim_ui, who, "", "Finished")
    assert f"{runs.EXPERIMENT}\n/ by-{who}\nFinished" in text
    assert re.search(r"• \d+(min |sec )?\d*(sec|ms)", text), "no duration in the header"


@pytest.mark.parametrize("who", WHO)
def test_nested_params_tags_and_description_on_the_overview(
    browser: Any, aim_ui: dict[str, Any], who: str
) -> None:
    text = _page(browser, aim_ui, who, "", "Description")
    for line in (
        "hparams.lr\n\n0.01",
        'hparams.optimizer.name\n\n"adam"',
        "hparams.optimizer.betas\n\n[0.9, 0.999]",
        "hparams.layers\n\n[64, 64]",
    ):
        assert line in text
    assert f"TAGS (1)\n{runs.TAG}" in text
    assert f"Description\n{runs.DESCRIPTION}" in text


def test_track_lists_the_same_params_as_aim(browser: Any, aim_ui: dict[str, Any]) -> None:
    track = _params(_page(browser, aim_ui, "track", "", "Description"))
    raw = _params(_page(browser, aim_ui, "aim", "", "Description"))
    assert raw and track == raw


@pytest.mark.parametrize("who", WHO)
def test_metrics_of_one_name_are_grouped_by_context(
    browser: Any, aim_ui: dict[str, Any], who: str
) -> None:
    text = _page(browser, aim_ui, who, "/metrics", 'loss\nsubset="val"')
    assert 'loss\nsubset="train"' in text
    assert 'accuracy\nsubset="val"' in text


def test_runs_explorer_puts_both_runs_in_the_same_context_columns(
    browser: Any, aim_ui: dict[str, Any]
) -> None:
    text = page_text(browser, f"{aim_ui['url']}/runs", "by-track", timeout=90)
    assert "by-aim" in text
    # one `loss` column group with a subset="train" and a subset="val" column, each holding
    # both runs' last values
    assert re.search(r'loss\n+subset="train"\n0\.08333333\n0\.08333333\nsubset="val"\n'
                     r"0\.18333333\n0\.18333333", text)  # fmt: skip
    assert re.search(r'accuracy\n+subset="val"\n0\.95833333\n0\.95833333', text)


@pytest.mark.parametrize("who", WHO)
def test_images_texts_and_distributions_tabs(
    browser: Any, aim_ui: dict[str, Any], who: str
) -> None:
    images = _page(browser, aim_ui, who, "/images", "sample")
    assert "inputs" in images
    wait_until(lambda: shown_images(browser), "the images tab shows the image")
    texts = _page(browser, aim_ui, who, "/texts", runs.NOTES)
    assert "notes" in texts
    distributions = _page(browser, aim_ui, who, "/distributions", "Step 0")
    assert "weights" in distributions


def test_aims_own_run_shows_system_metrics(browser: Any, aim_ui: dict[str, Any]) -> None:
    text = _page(browser, aim_ui, "aim", "/system", "CPU (%)")
    assert "Memory (%)" in text and "Process Memory (%)" in text


def test_tracks_run_shows_system_metrics_in_the_system_tab(
    browser: Any, aim_ui: dict[str, Any]
) -> None:
    text = _page(browser, aim_ui, "track", "/system", "Finished")
    assert "CPU (%)" in text and "Memory (%)" in text
