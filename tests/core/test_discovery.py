"""Finding backends by name, the backend string, the default, and switching tracking off."""

from __future__ import annotations

import pytest

import track_core as track
from track_core.discovery import BackendString, get_backend, installed_backends


def test_the_memory_backend_is_found_through_its_entry_point() -> None:
    assert "memory" in installed_backends()
    backend = get_backend("memory")
    assert backend.name == "memory" and backend.location == "memory:default"
    assert get_backend("memory:other").location == "memory:other"


@pytest.mark.parametrize(
    ("text", "name", "location", "options"),
    [
        ("aim", "aim", None, {}),
        ("aim:./runs", "aim", "./runs", {}),
        ("aim://127.0.0.1:53800", "aim", "//127.0.0.1:53800", {}),
        (
            "mlflow:sqlite:///x.db?experiment=e&tags=a,b",
            "mlflow",
            "sqlite:///x.db",
            {"experiment": "e", "tags": "a,b"},
        ),
        ("MLflow:http://127.0.0.1:5000", "mlflow", "http://127.0.0.1:5000", {}),
    ],
)
def test_backend_strings(
    text: str, name: str, location: str | None, options: dict[str, str]
) -> None:
    parsed = BackendString.parse(text)
    assert (parsed.name, parsed.location, dict(parsed.options)) == (name, location, options)


def test_an_unknown_backend_lists_the_installed_ones_and_names_the_package() -> None:
    with pytest.raises(track.BackendNotFoundError) as caught:
        get_backend("wandb")
    assert "memory" in str(caught.value) and "installed" in str(caught.value)
    if "aim" not in installed_backends():
        with pytest.raises(LookupError, match="pip install track-aim"):
            track.start_run("aim")


def test_an_empty_backend_string_is_refused() -> None:
    with pytest.raises(ValueError, match="backend string"):
        track.start_run("  ")


def test_run_options_come_from_the_string_and_keywords() -> None:
    run = track.start_run(
        "memory:options?experiment=exp&run_name=from-string&tags=a,b", description="from keyword"
    )
    run.close()
    stored = track.open_run(run.id, "memory:options")
    assert (stored.experiment, stored.name, stored.description) == (
        "exp",
        "from-string",
        "from keyword",
    )
    assert stored.tags == {"a", "b"}


def test_unknown_backend_options_are_refused_by_the_backend() -> None:
    with pytest.raises(TypeError, match="no options"):
        track.start_run("memory?colour=blue")


def test_track_backend_chooses_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACK_BACKEND", "memory:from-env")
    run = track.start_run(name="env")
    run.close()
    assert track.open_run(run.id, "memory:from-env").name == "env"


@pytest.mark.parametrize("spec", ["none", "off", "disabled"])
def test_tracking_can_be_switched_off(spec: str) -> None:
    run = track.start_run(spec)
    assert isinstance(run, track.NoOpRun)
    run["x"] = 1
    run.track(1.0, "loss")
    run.close()


def test_only_rank_zero_tracks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert track.distributed.rank() == 1 and track.distributed.world_size() == 2
    assert not track.distributed.is_main_process()
    assert isinstance(track.start_run("memory"), track.NoOpRun)
    assert isinstance(track.start_run("memory", enabled=True), track.TrackedRun)
    monkeypatch.setenv("RANK", "0")
    assert isinstance(track.start_run("memory"), track.TrackedRun)


def test_a_non_integer_rank_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "zero")
    with pytest.raises(ValueError, match="RANK"):
        track.distributed.rank()


def test_every_run_kind_satisfies_the_run_protocol() -> None:
    live = track.start_run("memory")
    live.close()
    for run in (live, track.NoOpRun(), track.open_run(live.id, "memory")):
        assert isinstance(run, track.Run)
