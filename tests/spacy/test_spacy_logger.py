"""track.Logger.v1 in real spaCy training runs (tiny synthetic corpus, a dozen steps each)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

spacy = pytest.importorskip("spacy")
track = pytest.importorskip("track_core")

from spacy.cli.train import train  # noqa: E402
from thinc.api import Config  # noqa: E402

from track_spacy import TrackLoggerWarning  # noqa: E402
from track_spacy.config import remove_keys  # noqa: E402
from track_spacy.logger import backend_string  # noqa: E402
from track_spacy.render import parse_image_size, parse_styles, render  # noqa: E402

WriteConfig = Callable[..., Path]  # the write_config fixture (conftest.py)

TRAIN = {"subset": "train"}
VAL = {"subset": "val"}


# -- helpers ---------------------------------------------------------------------------------
def unique_experiment(prefix: str = "spacy-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def parse_table(stdout: str) -> list[dict[str, str]]:
    """The rows of spaCy's console table, as {column header: cell}."""
    lines = stdout.splitlines()
    for index, line in enumerate(lines):  # noqa: B007 - index is used after the loop
        cells = re.split(r"\s{2,}", line.strip())
        if cells[:2] == ["E", "#"] and cells[-1] == "SCORE":
            header = cells
            break
    else:
        raise AssertionError(f"no console table in:\n{stdout}")
    rows = []
    for line in lines[index + 2 :]:
        cells = line.split()
        if len(cells) != len(header) or not all(re.fullmatch(r"-?\d+(\.\d+)?", c) for c in cells):
            break
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def only_run(experiment: str) -> Any:
    backend = track.get_backend("memory")
    runs = backend.list_runs(experiment=experiment)
    assert len(runs) == 1, runs
    return backend.read_run(runs[0].id)


def points(reader: Any, name: str, context: dict[str, Any]) -> dict[int, Any]:
    return {p.step: p for p in reader.points(name, track.Context(context))}


def assert_table_in_run(rows: list[dict[str, str]], reader: Any) -> None:
    """Each loss and score of the console table is in the run, at its step and epoch."""
    for row in rows:
        step, epoch = int(row["#"]), int(row["E"])
        for column, cell in row.items():
            if column in ("E", "#") or column.endswith("..."):
                continue
            if column.startswith("LOSS "):
                component = column[len("LOSS ") :].lower()
                point = points(reader, "loss", {**TRAIN, "component": component})[step]
                shown = f"{float(point.value):.2f}"
            elif column == "SCORE":
                point = points(reader, "score", VAL)[step]
                shown = f"{float(point.value):.2f}"
            else:
                name = column.lower()
                point = points(reader, name, VAL)[step]
                scale = 1.0 if name == "speed" else 100.0
                shown = f"{float(point.value) * scale:.2f}"
            assert shown == cell, (column, step, point.value, cell)
            assert point.epoch == epoch, (column, step, point.epoch, epoch)


@pytest.fixture
def output(tmp_path: Path) -> Path:
    return tmp_path / "output"


@pytest.fixture(autouse=True)
def _no_env_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TRACK_BACKEND", raising=False)
    yield


# -- a full training run ----------------------------------------------------------------------
def test_train_tracks_the_console_table_at_spacy_steps(
    write_config: WriteConfig, output: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = unique_experiment()
    config_path = write_config(
        {
            "backend": "memory",
            "experiment_name": experiment,
            "run_name": "ner-parser",
            "tags": ["tiny", "synthetic"],
            "remove_config_values": ["paths", "corpora.*.path"],
        },
    )
    train(config_path, output)
    rows = parse_table(capsys.readouterr().out)
    assert [int(row["#"]) for row in rows] == [0, 4, 8, 12]  # spaCy's own steps, not 0 for all
    assert len({row["E"] for row in rows}) > 1  # several steps per epoch: epochs differ from steps
    reader = only_run(experiment)
    assert reader.status is track.Status.FINISHED
    assert reader.name == "ner-parser" and reader.tags == {"tiny", "synthetic"}
    assert_table_in_run(rows, reader)

    # Every other score, per label included, and words per second.
    names = [(info.name, info.context) for info in reader.sequences()]
    for name in (
        "ents_per_type.PERSON.f",
        "ents_per_type.GPE.p",
        "dep_las_per_type.nsubj.f",
        "token_acc",
        "speed",
    ):
        assert (name, VAL) in names, name
    assert ("loss", {**TRAIN, "component": "tok2vec"}) in names
    speed = points(reader, "words_per_second", TRAIN)
    assert sorted(speed) == [0, 4, 8, 12] and all(p.value > 0 for p in speed.values())
    assert not any(name == "score" and ctx == TRAIN for name, ctx in names)

    # Params: the interpolated config that was trained, without the keys left out.
    saved = Config().from_disk(output / "model-best" / "config.cfg", interpolate=True)
    expected = json.loads(json.dumps(dict(saved)))
    del expected["paths"]
    for corpus in expected["corpora"].values():
        del corpus["path"]
    config = reader.params["config"]
    assert "paths" not in config and "path" not in config["corpora"]["train"]
    assert config == expected
    assert config["training"]["max_steps"] == 12
    assert config["training"]["logger"]["@loggers"] == "track.Logger.v1"
    assert reader.artifacts() == []  # model directories only when asked


def test_renders_ent_and_dep_with_displacy(
    write_config: WriteConfig, corpus: dict[str, Path], output: Path
) -> None:
    experiment = unique_experiment()
    config_path = write_config(
        {
            "backend": "memory",
            "experiment_name": experiment,
            "viz_path": str(corpus["dev"]),
            "experiment_type": "ner,dep",
            "viz_limit": 2,
            "model_log_interval": 5,
            "image_size": "300,900",
        },
    )
    train(config_path, output)
    reader = only_run(experiment)
    dev_texts = [
        doc.text
        for doc in spacy.tokens.DocBin().from_disk(corpus["dev"]).get_docs(spacy.blank("en").vocab)
    ]
    for style, opening in (("ent", '<div class="entities"'), ("dep", "<svg")):
        for index in range(2):
            context = {"style": style, "doc": index}
            texts = points(reader, "displacy", context)
            # Every model_log_interval steps, and once more at the end of the training.
            assert sorted(texts) == [0, 5, 10, 12]
            assert texts[10].epoch is None and texts[12].epoch is not None
            markup = texts[12].value.text
            assert markup.lstrip().startswith(opening)
            assert all(word in markup for word in dev_texts[index].rstrip(".").split())
        assert ("displacy", {"style": style, "doc": 2}) not in [
            (i.name, i.context) for i in reader.sequences()
        ]  # viz_limit
    have_renderer = any(_importable(m) for m in ("resvg_py", "cairosvg"))
    images = sorted(
        (i.context["doc"], i.context["style"])
        for i in reader.sequences()
        if i.name == "displacy_image"
    )
    if have_renderer:
        assert images == [(0, "dep"), (1, "dep")]
        image = points(reader, "displacy_image", {"style": "dep", "doc": 0})[12].value
        assert (image.width, image.height) == (900, 300)
        assert image.caption == dev_texts[0]
        low, high = image.to_pil().convert("L").getextrema()
        assert low < high  # something was drawn on the white
    else:
        assert images == []


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except (ImportError, OSError):
        return False
    return True


def test_logs_model_directories_when_asked(write_config: WriteConfig, output: Path) -> None:
    experiment = unique_experiment()
    config_path = write_config(
        {
            "backend": "memory",
            "experiment_name": experiment,
            "log_best_dir": True,
            "log_latest_dir": True,
            "model_log_interval": 4,
        },
        max_steps=8,
    )
    train(config_path, output)
    reader = only_run(experiment)
    artifacts = set(reader.artifacts())
    for directory in ("model-best", "model-last"):
        files = {
            f"{directory}/{p.relative_to(output / directory).as_posix()}"
            for p in (output / directory).rglob("*")
            if p.is_file()
        }
        assert files and files <= artifacts
    # model-best is not rewritten after the logger's finalize: what was logged is what is there.
    for name in ("model-best/meta.json", "model-best/ner/model", "model-best/config.cfg"):
        assert reader.artifact_bytes(name) == (output / name).read_bytes()
    assert reader.status is track.Status.FINISHED


# -- status -----------------------------------------------------------------------------------
def _raise_at_step(step: int, error: str) -> Any:
    def before_update(nlp: Any, args: dict[str, Any]) -> None:
        if args["step"] == step:
            raise KeyboardInterrupt() if error == "interrupt" else RuntimeError(f"boom at {step}")

    return before_update


spacy.registry.callbacks.register("track_spacy_test.raise_at_step.v1", func=_raise_at_step)


def test_training_that_raises_is_failed(write_config: WriteConfig, output: Path) -> None:
    experiment = unique_experiment()
    config_path = write_config(
        {"backend": "memory", "experiment_name": experiment},
        training={
            "before_update": {
                "@callbacks": "track_spacy_test.raise_at_step.v1",
                "step": 6,
                "error": "runtime",
            }
        },
    )
    with pytest.raises(RuntimeError, match="boom at 6"):
        train(config_path, output)
    reader = only_run(experiment)
    assert reader.status is track.Status.FAILED
    assert "boom at 6" in (reader.error or "")
    assert sorted(points(reader, "score", VAL)) == [0, 4]  # what came before the failure is kept


def test_interrupted_training_is_killed(write_config: WriteConfig, output: Path) -> None:
    experiment = unique_experiment()
    config_path = write_config(
        {"backend": "memory", "experiment_name": experiment},
        training={
            "before_update": {
                "@callbacks": "track_spacy_test.raise_at_step.v1",
                "step": 2,
                "error": "interrupt",
            }
        },
    )
    with pytest.raises(KeyboardInterrupt):
        train(config_path, output)
    assert only_run(experiment).status is track.Status.KILLED


def test_training_inside_an_except_block_is_finished(write_config: WriteConfig) -> None:
    experiment = unique_experiment()
    config_path = write_config(
        {"backend": "memory", "experiment_name": experiment}, max_steps=2, eval_frequency=1
    )
    try:
        raise LookupError("handled by the caller before training")
    except LookupError:
        train(config_path)  # finalize sees the handled exception in sys.exc_info()
    assert only_run(experiment).status is track.Status.FINISHED


# -- composition and configuration ------------------------------------------------------------
def test_chains_with_spacy_loggers_and_reads_track_backend(
    write_config: WriteConfig,
    output: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    experiment = unique_experiment()
    monkeypatch.setenv("TRACK_BACKEND", "memory")
    jsonl = tmp_path / "log.jsonl"
    config_path = write_config(max_steps=8)
    config = Config().from_disk(config_path, interpolate=False)
    config["training"]["logger"] = {
        "@loggers": "spacy.ChainLogger.v1",
        "logger1": {"@loggers": "track.Logger.v1", "experiment_name": experiment, "console": False},
        "logger2": {"@loggers": "spacy.ConsoleLogger.v3", "output_file": str(jsonl)},
    }
    config.to_disk(config_path)
    train(config_path, output)
    out = capsys.readouterr().out
    assert out.count("LOSS NER") == 1  # one console table: ours is off, spaCy's is chained
    rows = parse_table(out)
    reader = only_run(experiment)
    assert_table_in_run(rows, reader)
    logged = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [int(row["#"]) for row in rows]


def test_unmatched_remove_config_values_warn(write_config: WriteConfig) -> None:
    experiment = unique_experiment()
    config_path = write_config(
        {
            "backend": "memory",
            "experiment_name": experiment,
            "remove_config_values": ["no.such.key", "training.seed"],
        },
        max_steps=1,
        eval_frequency=1,
    )
    with pytest.warns(TrackLoggerWarning, match="no.such.key"):
        train(config_path)
    assert "seed" not in only_run(experiment).params["config"]["training"]


def test_bad_options_fail_when_the_config_is_resolved(write_config: WriteConfig) -> None:
    config_path = write_config({"backend": "memory", "experiment_type": "pos"})
    with pytest.raises(ValueError, match="unknown experiment_type"):
        train(config_path)


def test_remove_keys_patterns() -> None:
    config = {
        "paths": {"train": "a"},
        "training": {"seed": 1, "logger": {"api_key": "s"}},
        "nlp": {"lang": "en"},
    }
    kept, unused = remove_keys(config, ["paths", "*.api_key", "nothing.here"])
    assert kept == {"training": {"seed": 1, "logger": {}}, "nlp": {"lang": "en"}}
    assert unused == {"nothing.here"}


def test_option_parsing() -> None:
    assert parse_styles("ner") == ("ent",)
    assert parse_styles("dep, ent,ner") == ("dep", "ent")
    assert parse_styles(["span"]) == ("span",)
    assert parse_image_size("600,1200") == (1200, 600)
    assert parse_image_size(None) is None
    with pytest.raises(ValueError):
        parse_image_size("big")
    assert backend_string(None, None) is None
    assert backend_string(None, "./runs") == "aim:./runs"
    assert (
        backend_string("mlflow?experiment=x", "sqlite:///m.db")
        == "mlflow:sqlite:///m.db?experiment=x"
    )
    with pytest.raises(ValueError, match="location once"):
        backend_string("aim:./a", "./b")


def test_span_rendering_shows_the_span_key() -> None:
    nlp = spacy.blank("en")
    doc = nlp("Alice lives in Paris.")
    doc.spans["mine"] = [doc.char_span(0, 5, label="PERSON")]
    assert "PERSON" in render(doc, "span", spans_key="mine")
    with pytest.warns(UserWarning, match="W117"):  # spaCy: no spans under that key
        assert "PERSON" not in render(doc, "span", spans_key="sc")


# -- the spaCy CLI, in a subprocess -----------------------------------------------------------
def _cli_train(config_path: Path, output: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(config_path), "--output", str(output)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_cli_finds_the_logger_and_keeps_the_console_with_tracking_off(
    write_config: WriteConfig, output: Path
) -> None:
    config_path = write_config({"backend": "none"}, max_steps=4, eval_frequency=2)
    rows = parse_table(_cli_train(config_path, output))
    assert [int(row["#"]) for row in rows] == [0, 2, 4]


@pytest.mark.e2e
def test_cli_to_aim_read_back_with_aim(
    write_config: WriteConfig, corpus: dict[str, Path], output: Path, tmp_path: Path
) -> None:
    pytest.importorskip("track_aim")
    aim = pytest.importorskip("aim")
    from aim.storage.context import Context as AimContext

    repo = tmp_path / "aim-repo"
    experiment = unique_experiment()
    config_path = write_config(
        {
            "backend": "aim",
            "repo": str(repo),
            "experiment_name": experiment,
            "viz_path": str(corpus["dev"]),
            "experiment_type": "ent",
            "viz_limit": 1,
        },
        max_steps=8,
    )
    rows = parse_table(_cli_train(config_path, output))
    assert [int(row["#"]) for row in rows] == [0, 4, 8]
    runs = [run for run in aim.Repo(str(repo)).iter_runs() if run.experiment == experiment]
    assert len(runs) == 1
    run = runs[0]
    assert run["config"]["training"]["max_steps"] == 8
    assert run["__system_params", "track", "status"] == "finished" and run.end_time is not None

    def series(name: str, context: dict[str, Any]) -> dict[int, tuple[float, int]]:
        metric = run.get_metric(name, AimContext(dict(context)))  # type: ignore[arg-type]
        assert metric is not None, (name, context)
        steps, (values, epochs, _) = metric.data.numpy()
        return {int(s): (float(v), int(e)) for s, v, e in zip(steps, values, epochs, strict=True)}

    ents_f = series("ents_f", VAL)
    ner_loss = series("loss", {**TRAIN, "component": "ner"})
    assert sorted(ents_f) == sorted(ner_loss) == [0, 4, 8]
    for row in rows:
        step, epoch = int(row["#"]), int(row["E"])
        assert f"{ents_f[step][0] * 100:.2f}" == row["ENTS_F"] and ents_f[step][1] == epoch
        assert f"{ner_loss[step][0]:.2f}" == row["LOSS NER"]
    # The displaCy renderings went to Aim as texts.
    reader = track.get_backend(f"aim:{repo}").read_run(run.hash)
    texts = reader.points("displacy", track.Context({"style": "ent", "doc": 0}))
    assert [p.step for p in texts] == [0, 4, 8]
    assert texts[-1].value.text.lstrip().startswith('<div class="entities"')


@pytest.mark.e2e
def test_cli_to_mlflow_read_back_with_mlflow(
    write_config: WriteConfig, output: Path, tmp_path: Path
) -> None:
    pytest.importorskip("track_mlflow")
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = unique_experiment()
    config_path = write_config(
        {
            "backend": f"mlflow:{uri}",
            "experiment_name": experiment,
            "remove_config_values": ["paths"],
        },
        max_steps=8,
    )
    rows = parse_table(_cli_train(config_path, output))
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"

    def history(key: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}

    # track-mlflow's keys: the name, then the context (see track_mlflow.keys).
    ents_f = history("ents_f :: subset: val")
    # Epochs are in the run's track/epochs.json (not in MLflow metrics): read them with track.
    scores = track.get_backend(f"mlflow:{uri}").read_run(run.info.run_id)
    epochs = {p.step: p.epoch for p in scores.points("ents_f", track.Context(subset="val"))}
    ner_loss = history("loss :: component: ner :: subset: train")
    # spacy-loggers' MLflowLogger.v2 records every point at step 0; this logger uses spaCy's steps.
    assert sorted(ents_f) == sorted(ner_loss) == [int(row["#"]) for row in rows] == [0, 4, 8]
    for row in rows:
        step = int(row["#"])
        assert f"{ents_f[step] * 100:.2f}" == row["ENTS_F"]
        assert epochs[step] == int(row["E"])
        assert f"{ner_loss[step]:.2f}" == row["LOSS NER"]
    params = run.data.params
    assert params["config.training.max_steps"] == "8"
    assert params["config.nlp.lang"] == "en"
    assert not any(key.startswith("config.paths") for key in params)


def test_several_backends_in_the_logger_block(write_config: WriteConfig) -> None:
    """The multi-backend string works in a ``[training.logger]`` block unchanged (issue 14)."""
    experiment = unique_experiment()
    config_path = write_config(
        {"backend": "memory | memory:second", "experiment_name": experiment},
        max_steps=4,
        eval_frequency=2,
    )
    train(config_path)
    first = only_run(experiment)
    second_backend = track.get_backend("memory:second")
    [info] = second_backend.list_runs(experiment=experiment)
    second = second_backend.read_run(info.id)
    for reader in (first, second):
        assert reader.status is track.Status.FINISHED
        assert sorted(points(reader, "score", VAL)) == [0, 2, 4]
    assert first.params == second.params


def test_system_metrics_from_the_logger_block(write_config: WriteConfig) -> None:
    """``system_metrics = true`` with an interval samples the machine into the run while spaCy
    trains (the memory backend's neutral names, ``system/...``)."""
    pytest.importorskip("psutil")
    experiment = unique_experiment()
    config_path = write_config(
        {
            "backend": "memory",
            "experiment_name": experiment,
            "system_metrics": True,
            "system_metrics_interval": 0.1,
        },
        max_steps=12,
        eval_frequency=4,
    )
    train(config_path)
    reader = only_run(experiment)
    system = {info.name: info for info in reader.sequences() if info.name.startswith("system/")}
    assert {"system/cpu_percent", "system/memory_percent", "system/process_memory_percent"} <= set(
        system
    )
    cpu = reader.points("system/cpu_percent", track.Context())
    assert cpu and all(0.0 <= point.value <= 100.0 for point in cpu)
    # the model's own sequences are as without the sampler
    assert sorted(points(reader, "score", VAL)) == [0, 4, 8, 12]


def test_system_metrics_are_off_unless_asked(write_config: WriteConfig) -> None:
    experiment = unique_experiment()
    config_path = write_config(
        {"backend": "memory", "experiment_name": experiment}, max_steps=2, eval_frequency=1
    )
    train(config_path)
    assert not [i for i in only_run(experiment).sequences() if i.name.startswith("system/")]


def test_a_bad_system_metrics_interval_fails_when_the_config_is_resolved(
    write_config: WriteConfig,
) -> None:
    config_path = write_config(
        {"backend": "memory", "system_metrics": True, "system_metrics_interval": 0.0}
    )
    with pytest.raises(ValueError, match="system metrics interval must be"):
        train(config_path)
