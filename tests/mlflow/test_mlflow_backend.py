"""track_mlflow beyond the kit: key encoding, escaped-key warnings, params, limits, locations,
credentials, a server that dies."""

from __future__ import annotations

import logging
import os
import random
import string
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

import track_core as track
from track_core.backend import RunSpec, TrackedPoint
from track_core.context import Context
from track_core.status import Status
from track_core.values import ValueKind
from track_mlflow import (
    EscapedKeyWarning,
    MlflowBackend,
    ParamCutWarning,
    create_backend,
    decode_key,
    encode_key,
)
from track_mlflow._compat import validate_metric_key
from track_mlflow.keys import EPOCH_SUFFIX, MAX_KEY_LENGTH
from track_mlflow.testing import MlflowServer, mlflow_server
from track_mlflow.uri import resolve_location

AWKWARD = [
    "loss",
    "train/loss",
    "/leading",
    "trailing/",
    "a//b",
    ".",
    "..",
    "..hidden",
    "a/./b",
    "a/../b",
    "x :: y",
    "k: v",
    "colon:",
    ":3a",
    "percent%20",
    "tab\there",
    "ünïcödé ✓ 🚀",
    "spaces  inside ",
    " lead",
    "null",
    "3",
    "a~b",
    "+step+",
    "#hash",
    "x" * 400,
]
CONTEXTS: list[dict[str, object]] = [
    {},
    {"subset": "val"},
    {"subset": "3"},
    {"subset": 3},
    {"subset": 3.0},
    {"subset": True},
    {"subset": "true"},
    {"subset": None},
    {"subset": "null"},
    {"subset": ""},
    {"subset": "a/b: c :: d"},
    {"fold": -1, "lr": 1e-05, "big": 1e20, "neg": -0.5},
    {"k:ey": "v:al", "ü": "✓"},
    {"long": "y" * 300},
]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[MlflowBackend]:
    backend = create_backend(str(tmp_path / "store"))
    yield backend
    backend.close()


def _valid_for_mlflow(key: str) -> None:
    validate_metric_key(key)
    assert len(key) <= MAX_KEY_LENGTH


@pytest.mark.parametrize("name", AWKWARD)
@pytest.mark.parametrize("context", CONTEXTS, ids=range(len(CONTEXTS)))
def test_keys_are_valid_and_decode_exactly(name: str, context: dict[str, object]) -> None:
    ctx = Context(context)  # type: ignore[arg-type]
    key = encode_key(name, ctx)
    _valid_for_mlflow(key)
    _valid_for_mlflow(key + EPOCH_SUFFIX)
    if " :: sha-" in key:
        from track_mlflow.keys import hash_registry_entry

        registry = dict([hash_registry_entry(name, ctx)])
        assert decode_key(key, registry) == (name, ctx)
    else:
        decoded_name, decoded_context = decode_key(key)
        assert decoded_name == name
        assert decoded_context == ctx
        assert [type(v) for v in decoded_context.values()] == [type(v) for v in ctx.values()]


def test_keys_are_readable() -> None:
    assert encode_key("loss", {}) == "loss"
    assert encode_key("train/loss", {}) == "train/loss"
    assert encode_key("loss", {"subset": "val"}) == "loss :: subset: val"
    assert encode_key("loss", {"subset": "val", "fold": 1}) == "loss :: fold: 1 :: subset: val"
    assert encode_key("loss", {"subset": "3"}) != encode_key("loss", {"subset": 3})


def test_escaped_names_warn_once_per_sequence_with_their_key(backend: MlflowBackend) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with track.start_run(backend, experiment="escaped") as run:
            for step in range(3):
                run.track(0.5, "acc@top1#val (%)", step=step)  # the line warnings point at
                run.track(0.5, "acc@top1#val (%)", step=step, context={"subset": "val"})
                run.track(0.5, "loss", step=step, context={"subset": "val", "fold": 2})
                run.track(0.5, "train/loss", step=step)
                run.track({"p@1": 0.1, "ok": 0.2}, step=step)
    escaped = [w for w in caught if issubclass(w.category, EscapedKeyWarning)]
    assert all(issubclass(w.category, track.TrackWarning) for w in escaped)
    found = {(w.message.name, w.message.context, w.message.key) for w in escaped}  # type: ignore[union-attr]
    assert found == {
        ("acc@top1#val (%)", Context(), "acc:40top1:23val :28:25:29"),
        ("acc@top1#val (%)", Context(subset="val"), "acc:40top1:23val :28:25:29 :: subset: val"),
        ("p@1", Context(), "p:401"),
    }
    assert len(escaped) == 3  # once per sequence, not per point
    first = escaped[0]
    assert "'acc:40top1:23val :28:25:29'" in str(first.message)
    assert first.filename == __file__
    # It reads back under its name, and MLflow shows the key the warning named.
    names = {info.name for info in backend.read_run(run.id).sequences()}
    assert {"acc@top1#val (%)", "p@1", "ok", "loss", "train/loss"} == names
    metrics = MlflowClient(backend.tracking_uri).get_run(run.id).data.metrics
    assert "acc:40top1:23val :28:25:29" in metrics


def test_shortened_keys_warn_and_name_their_registry_tag(backend: MlflowBackend) -> None:
    name = "n" * 300
    with pytest.warns(EscapedKeyWarning, match="track.key.") as caught:
        with track.start_run(backend, experiment="long") as run:
            run.track(1.0, name)
            run.track(2.0, name)
    escaped = [w.message for w in caught if isinstance(w.message, EscapedKeyWarning)]
    assert len(escaped) == 1 and " :: sha-" in escaped[0].key
    assert [p.value for p in backend.read_run(run.id).points(name, Context())] == [1.0, 2.0]


def test_messages_show_the_location_as_written(tmp_path: Path) -> None:
    absolute = f"sqlite:///{tmp_path / 'x.db'}"  # sqlite:////tmp/...: an absolute path
    backend = create_backend(absolute)
    assert backend.location == absolute == backend.tracking_uri
    with pytest.raises(KeyError) as caught:
        backend.read_run("0" * 32)
    assert absolute in str(caught.value)
    plain = create_backend(str(tmp_path / "dir"))
    assert plain.location == f"sqlite:///{tmp_path / 'dir' / 'mlflow.db'}"
    remote = create_backend("http://alice:pw-123456@127.0.0.1:9/?token=t0k3n-secret")
    assert remote.location.startswith("http://127.0.0.1:9/")
    assert "pw-123456" not in remote.location and "t0k3n-secret" not in remote.location


def test_random_names_round_trip() -> None:
    """Property-style: random names and contexts over an awkward alphabet."""
    rng = random.Random(1234)
    alphabet = string.ascii_letters + string.digits + " /.:-_~+%#=[]{}()\"'\\ü✓🚀\t"
    for _ in range(3000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        context: dict[str, object] = {}
        for _ in range(rng.randint(0, 3)):
            key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
            context[key] = rng.choice(
                [
                    "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))),
                    rng.randint(-1000, 1000),
                    rng.uniform(-1e6, 1e6),
                    True,
                    None,
                ]
            )
        ctx = Context(context)  # type: ignore[arg-type]
        key = encode_key(name, ctx)
        _valid_for_mlflow(key)
        assert decode_key(key) == (name, ctx), (name, context, key)


@pytest.mark.filterwarnings("ignore::track_mlflow.EscapedKeyWarning")
def test_awkward_sequences_round_trip_through_mlflow(backend: MlflowBackend) -> None:
    names = [name for name in AWKWARD if "\t" not in name]  # the core refuses control characters
    with track.start_run(backend, experiment="awkward") as run:
        for index, name in enumerate(names):
            run.track(index, name, step=0, context={"subset": "a/b: c"})
    reader = backend.read_run(run.id)
    stored = {(info.name, info.context) for info in reader.sequences()}
    assert stored == {(name, Context(subset="a/b: c")) for name in names}
    # The same, read with MlflowClient only.
    client = MlflowClient(backend.tracking_uri)
    data = client.get_run(run.id).data
    decoded = {decode_key(key, data.tags)[0] for key in data.metrics}
    assert decoded == set(names)


def test_metrics_look_native_in_mlflow(backend: MlflowBackend) -> None:
    with track.start_run(backend, experiment="native", name="n1", description="d") as run:
        for step in range(3):
            run.track(step * 1.5, "loss", context={"subset": "val"}, epoch=step // 2)
        run.track(7, "count")
    client = MlflowClient(backend.tracking_uri)
    mlflow_run = client.get_run(run.id)
    assert mlflow_run.info.run_name == "n1"
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.tags["mlflow.note.content"] == "d"
    assert client.get_experiment(mlflow_run.info.experiment_id).name == "native"
    history = client.get_metric_history(run.id, "loss :: subset: val")
    assert [(m.step, m.value) for m in history] == [(0, 0.0), (1, 1.5), (2, 3.0)]
    assert all(isinstance(m.timestamp, int) for m in history)
    # One metric key per sequence: the epochs are in track/epochs.json, not in more keys.
    assert sorted(mlflow_run.data.metrics) == ["count", "loss :: subset: val"]
    points = backend.read_run(run.id).points("loss", Context(subset="val"))
    assert [(p.step, p.epoch) for p in points] == [(0, 0), (1, 0), (2, 1)]
    # ints are doubles in MLflow and come back as floats equal to them
    (count,) = backend.read_run(run.id).points("count", Context())
    assert count.value == 7 and isinstance(count.value, float)


def test_retried_batches_do_not_duplicate(backend: MlflowBackend) -> None:
    writer = backend.create_run(RunSpec(experiment="retry"))
    points = [
        TrackedPoint(
            "loss", Context(subset="train"), ValueKind.SCALAR, step, None, 1000.0 + step, v
        )
        for step, v in enumerate([0.5, 0.25, float("nan"), float("inf")])
    ]
    writer.write_points(points)
    writer.write_points(points)  # the core retries a batch that raised
    writer.write_points(points[:2])
    writer.close(Status.FINISHED, None)
    client = MlflowClient(backend.tracking_uri)
    history = client.get_metric_history(writer.id, "loss :: subset: train")
    assert len(history) == 4
    read = backend.read_run(writer.id).points("loss", Context(subset="train"))
    assert [p.step for p in read] == [0, 1, 2, 3]
    assert read[3].value == float("inf")


def test_changing_a_param_keeps_the_first_in_mlflow_and_the_latest_in_track(
    backend: MlflowBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="track_mlflow"):
        with track.start_run(backend, experiment="params") as run:
            run["hparams"] = {"model": {"lr": 0.1, "name": "a.b/c"}, "layers": [1, 2]}
            run["hparams"] = {"model": {"lr": 0.2, "name": "a.b/c"}, "layers": [1, 2]}
    client = MlflowClient(backend.tracking_uri)
    mlflow_run = client.get_run(run.id)
    assert mlflow_run.data.params["hparams.model.lr"] == "0.1"
    assert mlflow_run.data.params["hparams.layers"] == "[1, 2]"
    assert mlflow_run.data.tags["track.params.changed"] == '["hparams.model.lr"]'
    hparams = backend.read_run(run.id).params["hparams"]
    assert isinstance(hparams, dict) and hparams["model"] == {"lr": 0.2, "name": "a.b/c"}
    assert "hparams.model.lr" in caplog.text


def test_long_param_values_are_kept_whole_with_one_warning(backend: MlflowBackend) -> None:
    long_value = "v" * 7000
    writer = backend.create_run(RunSpec(experiment="long"))
    with pytest.warns(ParamCutWarning, match="6000") as caught:
        writer.set_params({"a": long_value, "b": {"c": long_value + "x"}})
    cut = [w.message for w in caught if isinstance(w.message, ParamCutWarning)]
    assert len(cut) == 1 and cut[0].key in {"a", "b.c"}
    assert isinstance(cut[0], track.TrackWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        writer.set_params({"d": long_value})  # warned once per run
    writer.close(Status.FINISHED, None)
    stored = MlflowClient(backend.tracking_uri).get_run(writer.id).data.params
    assert len(stored["a"]) <= 6000 and "track/params.json" in stored["a"]
    params = backend.read_run(writer.id).params
    assert params["a"] == long_value and params["b"] == {"c": long_value + "x"}


def test_failed_run_records_the_error(backend: MlflowBackend) -> None:
    writer = backend.create_run(RunSpec(experiment="fail"))
    error = "Traceback ...\nValueError: boom " + "z" * 9000
    writer.close(Status.FAILED, error)
    client = MlflowClient(backend.tracking_uri)
    run = client.get_run(writer.id)
    assert run.info.status == "FAILED"
    assert run.data.tags["track.error"].startswith("Traceback")
    assert len(run.data.tags["track.error"]) <= 8000
    assert backend.read_run(writer.id).error == error


def test_artifact_errors_are_clear(backend: MlflowBackend, tmp_path: Path) -> None:
    writer = backend.create_run(RunSpec(experiment="artifacts"))
    with pytest.raises(FileNotFoundError, match=r"nope\.bin"):
        writer.log_artifact(str(tmp_path / "nope.bin"), "nope.bin")
    source = tmp_path / "f.txt"
    source.write_text("hi")
    with pytest.raises(ValueError, match="reserved"):
        writer.log_artifact(str(source), "track/params.json")
    writer.log_artifact(str(source), "renamed/g.txt")
    writer.close(Status.FINISHED, None)
    reader = backend.read_run(writer.id)
    assert reader.artifacts() == ["renamed/g.txt"]
    assert reader.artifact_bytes("renamed/g.txt") == b"hi"


def test_unknown_option_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="artifact_location"):
        create_backend(str(tmp_path), bogus=1)
    with pytest.raises(TypeError, match="http"):
        create_backend(str(tmp_path), http_timeout="3")


def test_database_uris_with_a_driver_go_to_that_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``postgresql+psycopg2://...`` is MLflow's SQL store at that database, not a directory of
    that name holding a new sqlite file (which is what it silently was); an unknown ``x://``
    scheme is an error naming the ones MLflow stores runs in, and creates nothing."""
    monkeypatch.chdir(tmp_path)
    uri = "postgresql+psycopg2://track:secret@127.0.0.1:1/mlflow"
    resolved = resolve_location(uri)  # create_backend opens the store: tests/postgres does that
    assert resolved.tracking_uri == uri and resolved.sql_store and not resolved.remote
    assert "secret" not in resolved.display
    assert create_backend(f"sqlite+pysqlite:///{tmp_path / 'x.db'}").tracking_uri.startswith(
        "sqlite+pysqlite:///"
    )
    with pytest.raises(ValueError, match=r"'postgres'.*postgresql") as caught:
        create_backend("postgres://track:secret@127.0.0.1:1/mlflow")
    assert "secret" not in str(caught.value)
    assert [entry.name for entry in tmp_path.iterdir()] == ["x.db"]  # no folder named after a URI


def test_default_location_is_sqlite_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    backend = create_backend(None)
    assert backend.tracking_uri == "sqlite:///mlflow.db"
    writer = backend.create_run(RunSpec())
    writer.close(Status.FINISHED, None)
    assert (tmp_path / "mlflow.db").exists()
    assert backend.read_run(writer.id).experiment is None


def test_credentials_never_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential in what the backend shows; none put in the process environment (the
    round trip with a real basic-auth server is in test_mlflow_auth.py)."""
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    # create_backend sets these for the process: let monkeypatch restore them afterwards.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    backend = create_backend("http://alice:s3cr3t-pw@127.0.0.1:9?token=t0k3n", http_timeout="1")
    assert "s3cr3t" not in backend.location and "alice" not in backend.location
    assert "s3cr3t" not in backend.tracking_uri and "t0k3n" not in backend.tracking_uri
    assert "s3cr3t" not in repr(backend)
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    with pytest.raises(Exception) as caught:  # nothing listens on port 9
        backend.create_run(RunSpec(experiment="x"))
    assert "s3cr3t" not in str(caught.value)


# --- a real server --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-faults")) as running:
        yield running


def test_round_trip_over_rest(server: MlflowServer) -> None:
    backend = create_backend(server.url)
    # close() waits until the server took everything (a busy machine needs more than 15 s).
    patient = track.WriterOptions(close_timeout=600)
    with track.start_run(backend, experiment="rest", name="over http", writer=patient) as run:
        run["hparams"] = {"lr": 0.1}
        for step in range(2500):
            run.track(step * 0.1, "loss", context={"subset": "train"})
    client = MlflowClient(server.url)
    history = client.get_metric_history(run.id, "loss :: subset: train")
    assert len(history) == 2500
    assert client.get_run(run.id).data.params["hparams.lr"] == "0.1"
    assert backend.read_run(run.id).params == {"hparams": {"lr": 0.1}}


def test_wide_steps_to_a_server_arrive_whole_and_in_order(
    server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-layer statistics (1000 metrics a step) in batches of the declared size, each split
    into lanes of whole keys sent side by side: every key's history whole and in step order,
    and MLflow's latest value of each key its last step's, read through MLflow's client."""
    sent: list[list[str]] = []
    real = MlflowClient.log_batch

    def recording(self: MlflowClient, run_id: str, metrics: Any = (), **kwargs: Any) -> Any:
        if metrics:
            sent.append([metric.key for metric in metrics])
        return real(self, run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", recording)
    backend = create_backend(server.url)
    names, steps = [f"layer{i:03d}/grad_norm" for i in range(1000)], 40
    assert steps * len(names) > 2 * backend.batch_size  # several batches, each in lanes
    options = track.WriterOptions(max_buffered=steps * len(names) + 1, close_timeout=600)
    with track.start_run(backend, experiment="wide", writer=options) as run:
        for step in range(steps):
            for index, name in enumerate(names):
                run.track(step + index / 1000, name, step=step)
    client = MlflowClient(server.url)
    for index, name in enumerate(names):
        history = client.get_metric_history(run.id, name)
        assert [(m.step, m.value) for m in history] == [(s, s + index / 1000) for s in range(steps)]
    latest = client.get_run(run.id).data.metrics
    assert latest == {name: steps - 1 + index / 1000 for index, name in enumerate(names)}
    assert max(len(keys) for keys in sent) <= 1000  # MLflow's limit per request
    # A full batch went in requests of whole keys' rows for many steps, so few keys each (what
    # MLflow's store spends per value grows with the keys of a request).
    assert min(len(set(keys)) for keys in sent if len(keys) == 1000) <= 100


def test_server_dies_mid_run_no_crash_clear_warning_nothing_lost(
    server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the core's spool, if it writes one
    # A busy machine's server can take more than the default 10 s to answer; a stopped one
    # refuses connections at once whatever the timeout.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    backend = create_backend(server.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patient = track.WriterOptions(close_timeout=600)
        run = track.start_run(backend, experiment="faults", writer=patient)
        for step in range(100):
            run.track(float(step), "loss")
        assert run.flush(timeout=60)
        server.stop()
        for step in range(100, 200):
            run.track(float(step), "loss")  # the training loop goes on
        server.restart()
        run.close()
    messages = [str(w.message) for w in caught]
    assert any("mlflow" in m.lower() or "127.0.0.1" in m for m in messages), messages
    points = backend.read_run(run.id).points("loss", Context())
    assert [p.step for p in points] == list(range(200))
    assert backend.read_run(run.id).status is Status.FINISHED


@pytest.mark.parametrize("store", ["sqlite", "file"])
def test_history_and_latest_values_whatever_order_rows_are_sent_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    """SQL stores get each batch newest first (fewer rewrites of MLflow's latest values); what
    MLflow then holds must be what was tracked: every row once, the latest value of each key,
    and, for a file store (which reads rows in file order), rows in tracking order."""
    location = str(tmp_path / "store") if store == "sqlite" else (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # this MLflow disables it by default
    backend = create_backend(location)
    assert backend.tracking_uri.startswith(f"{store}:")
    count = 2_600  # more than one batch, and more than one log_batch (1000 rows) per batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MLflow deprecates its file store
        with track.start_run(backend, experiment="order") as run:
            for step in range(count):
                run.track(step * 0.5, "loss", epoch=step // 1000, context={"subset": "train"})
                run.track(float(count - step), "lr")
        client = MlflowClient(backend.tracking_uri)
        loss = client.get_metric_history(run.id, "loss :: subset: train")
        lr = client.get_metric_history(run.id, "lr")
        latest = client.get_run(run.id).data.metrics
        epochs = backend.read_run(run.id).points("loss", Context(subset="train"))
    backend.close()
    assert [(m.step, m.value) for m in loss] == [(s, s * 0.5) for s in range(count)]
    assert [(m.step, m.value) for m in lr] == [(s, float(count - s)) for s in range(count)]
    assert [(p.step, p.epoch) for p in epochs] == [(s, s // 1000) for s in range(count)]
    assert latest == {"loss :: subset: train": (count - 1) * 0.5, "lr": 1.0}  # lr: the last step


def test_a_copied_run_keeps_its_start_and_end_times_in_mlflow(backend: MlflowBackend) -> None:
    """A run copied into MLflow starts and ends when the source run did (MLflow's own
    ``start_time`` / ``end_time``); copied back to memory, they come back to the millisecond."""
    from track_core.copying import copy_run
    from track_core.memory import MemoryBackend, MemoryStore

    source = MemoryBackend(MemoryStore(), "timed-source")
    with track.start_run(source, enabled=True, experiment="times") as run:
        run.track(1.0, "loss", step=0)
    stored = source.store.runs[run.id]
    stored.created_at, stored.ended_at = 1_600_000_000.1234, 1_600_007_200.9876
    there = copy_run(run.id, source, backend)
    assert there.complete, there
    info = MlflowClient(backend.tracking_uri).get_run(there.dest_id).info
    assert (info.start_time, info.end_time) == (1_600_000_000_123, 1_600_007_200_988)
    assert info.status == "FINISHED"
    (listed,) = backend.list_runs("times")
    assert (listed.created_at, listed.ended_at) == (1_600_000_000.123, 1_600_007_200.988)
    back_to = MemoryBackend(MemoryStore(), "timed-back")
    back = copy_run(there.dest_id, backend, back_to)
    returned = back_to.store.runs[back.dest_id]
    assert (returned.created_at, returned.ended_at) == (1_600_000_000.123, 1_600_007_200.988)


def test_a_resumed_run_has_no_end_time_until_it_ends_again(backend: MlflowBackend) -> None:
    with track.start_run(backend, enabled=True, experiment="again") as run:
        run.track(1.0, "loss", step=0)
    first = backend.read_run(run.id).ended_at
    assert first is not None
    resumed = backend.resume_run(run.id)
    assert backend.read_run(run.id).ended_at is None  # MLflow keeps the old end_time meanwhile
    resumed.close(Status.FINISHED, None, ended_at=first + 60.0)
    assert MlflowClient(backend.tracking_uri).get_run(run.id).info.end_time == round(
        (first + 60.0) * 1000
    )


def test_a_reader_lists_the_sequences_once_and_again_for_a_new_one(
    backend: MlflowBackend,
) -> None:
    """``points`` looks a sequence up in the reader's last listing (one ``get_run`` for all the
    sequences of a copy), and lists again for a sequence it does not know."""
    writer = backend.create_run(RunSpec(experiment="listing"))
    writer.write_points(
        [
            TrackedPoint(f"m{index}", Context(), ValueKind.SCALAR, step, None, 1e9 + step, 1.0)
            for index in range(5)
            for step in range(3)
        ]
    )
    reader = backend.read_run(writer.id)
    client = reader._client
    calls = []
    original = client.get_run

    def counted(run_id: str) -> object:
        calls.append(run_id)
        return original(run_id)

    client.get_run = counted  # type: ignore[method-assign,assignment]
    infos = reader.sequences()
    assert sum(len(reader.points(info.name, info.context)) for info in infos) == 15
    assert len(calls) == 1
    writer.write_points([TrackedPoint("late", Context(), ValueKind.SCALAR, 0, None, 1e9, 2.0)])
    assert [point.value for point in reader.points("late", Context())] == [2.0]
    with pytest.raises(KeyError, match="no sequence 'never'"):
        reader.points("never", Context())
