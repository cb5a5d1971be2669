"""The ``slash`` key style (``mlflow:...?key_style=slash``): keys as MLflow's docs write them
(``train/loss``), chosen per run, recorded on the run, read back exactly; and the tags track
keeps for itself, out of the tags MLflow's UI lists."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

import track_core as track
from track_core.context import Context
from track_mlflow import create_backend
from track_mlflow.keys import KEY_STYLE_TAG, decode_key, encode_key, hash_registry_entry

SLASH = {KEY_STYLE_TAG: "slash"}

SEQUENCES: list[tuple[str, dict[str, Any]]] = [
    ("loss", {"subset": "train"}),
    ("loss", {"subset": "val"}),
    ("loss", {}),
    ("train/loss", {}),  # would read as loss in subset train: its '/' is escaped
    ("train:2floss", {}),
    ("system/cpu_utilization_percentage", {}),  # MLflow's system metrics keep their keys
    ("cpu_utilization_percentage", {"subset": "system"}),
    ("a/b", {"subset": "x/y"}),
    ("loss", {"subset": "."}),
    ("loss", {"subset": ".."}),
    ("loss", {"subset": "3"}),
    ("loss", {"subset": 3}),
    ("loss", {"subset": ""}),
    ("loss", {"fold": 1, "subset": "val"}),
    ("loss", {"split": "val"}),
    ("weird :: name: x", {"subset": "a :: b"}),
    ("/lead/and/trail/", {"subset": "train"}),
    ("x" * 300, {"subset": "train"}),
    ("x" * 300, {}),
]


def test_slash_keys_decode_to_their_sequences_and_never_collide() -> None:
    keys = {}
    for name, context in SEQUENCES:
        key = encode_key(name, context, "slash")
        assert len(key) <= 250
        registry = dict(SLASH)
        if "sha-" in key:  # a shortened key: the run keeps the sequence in a tag
            registry.update([hash_registry_entry(name, context)])
        assert decode_key(key, registry) == (name, Context(context)), key
        keys[key] = (name, context)
    assert len(keys) == len(SEQUENCES)
    assert encode_key("loss", {"subset": "train"}, "slash") == "train/loss"
    assert encode_key("accuracy", {"subset": "val"}, "slash") == "val/accuracy"
    assert encode_key("train/loss", {}, "slash") == "train:2floss"
    assert (
        encode_key("loss", {"fold": 1, "subset": "val"}, "slash")
        == "loss :: fold: 1 :: subset: val"
    )
    # the default style is unchanged, and a run without the tag reads as the default
    assert encode_key("loss", {"subset": "train"}) == "loss :: subset: train"
    assert decode_key("train/loss", {}) == ("train/loss", Context())


def test_an_unknown_key_style_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_style must be one of context, slash"):
        track.start_run(f"mlflow:{tmp_path}?key_style=dots")


def _write(backend: str, **options: Any) -> str:
    with track.start_run(backend, experiment="styles", tags=["baseline"], **options) as run:
        for step, (name, context) in itertools.product(range(3), SEQUENCES[:8]):
            run.track(step + len(name) / 10, name, step=step, epoch=step // 2, context=context)
        run.track(track.Text("notes"), "notes", step=0, context={"subset": "val"})
        return run.id


@pytest.mark.parametrize("how", ["string", "keyword"])
def test_a_slash_run_has_mlflows_keys_and_reads_back_exactly(tmp_path: Path, how: str) -> None:
    location = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if how == "string":
        run_id = _write(f"mlflow:{location}?key_style=slash")
    else:
        run_id = _write(f"mlflow:{location}", key_style="slash")
    stored = MlflowClient(location).get_run(run_id)
    assert stored.data.tags[KEY_STYLE_TAG] == "slash"
    assert {"train/loss", "val/loss", "train:2floss", "system/cpu_utilization_percentage"} <= set(
        stored.data.metrics
    )
    reader = create_backend(location).read_run(run_id)
    listed = {(info.name, Context.of(info.context)) for info in reader.sequences()}
    assert listed == {(n, Context(c)) for n, c in SEQUENCES[:8]} | {
        ("notes", Context({"subset": "val"}))
    }
    for name, context in SEQUENCES[:8]:
        points = reader.points(name, Context(context))
        assert [(p.step, p.epoch, p.value) for p in points] == [
            (step, step // 2, step + len(name) / 10) for step in range(3)
        ]
    assert reader.points("notes", Context({"subset": "val"}))[0].value == track.Text("notes")


def test_a_resumed_run_keeps_the_style_it_was_created_with(tmp_path: Path) -> None:
    location = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _write(f"mlflow:{location}?key_style=slash")
    with track.start_run(f"mlflow:{location}", run_id=run_id) as run:  # the default style given
        run.track(9.0, "loss", step=3, context={"subset": "train"})
    stored = MlflowClient(location).get_run(run_id)
    assert "loss :: subset: train" not in stored.data.metrics
    assert stored.data.metrics["train/loss"] == 9.0
    points = create_backend(location).read_run(run_id).points("loss", Context({"subset": "train"}))
    assert [p.step for p in points] == [0, 1, 2, 3]


def test_tracks_own_tags_are_hidden_from_mlflows_ui(tmp_path: Path) -> None:
    """MLflow's UI lists a run's tags except those starting with ``mlflow.`` (or
    ``_mlflow_``): the user's tag is listed, track's JSON list of them is not."""
    location = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _write(f"mlflow:{location}?key_style=slash")
    tags = MlflowClient(location).get_run(run_id).data.tags
    listed = {key for key in tags if not key.startswith(("mlflow.", "_mlflow_"))}
    assert listed == {"baseline"}
    assert tags["mlflow.track.tags"] == '["baseline"]'
    assert create_backend(location).read_run(run_id).tags == {"baseline"}


def test_runs_with_the_old_tags_list_still_read(tmp_path: Path) -> None:
    location = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(location)
    experiment = client.create_experiment("old")
    run = client.create_run(experiment, tags={"track.tags": '["a", "b"]', "a": "", "b": ""})
    client.set_terminated(run.info.run_id)
    assert create_backend(location).read_run(run.info.run_id).tags == {"a", "b"}
