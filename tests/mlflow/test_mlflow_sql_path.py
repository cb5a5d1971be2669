"""track's bulk path into MLflow's SQL store (track_mlflow._sql) writes exactly the rows MLflow's
own ``log_batch`` writes, and a store at a schema version it does not know is written through
MLflow's client, with one warning."""

from __future__ import annotations

import math
import sqlite3
import tempfile
import warnings
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import track_core as track
from track_core.backend import RunSpec
from track_mlflow import SqlSchemaWarning, create_backend
from track_mlflow._compat import sql_engine
from track_mlflow._sql import KNOWN_SCHEMAS, SqlBatchPath, open_sql_path, schema_version
from track_mlflow.testing import MlflowServer, mlflow_server

ROWS = [
    ("loss", 0.5, 1000, 0),
    ("loss", 0.25, 1001, 1),
    ("loss", 0.25, 1001, 1),  # the same row twice: stored once
    ("loss", 0.75, 1000, 1),  # same step, older timestamp: not the latest
    ("acc", math.nan, 1002, 3),
    ("acc", 0.9, 1002, 2),
    ("big", math.inf, 5, 7),
    ("big", -math.inf, 5, 7),
    ("tie", 1.0, 10, 4),
    ("tie", 1.0, 10, 4),
    ("tie", 2.0, 9, 4),
    ("late", 3.0, 2000, 10),
]
SECOND = [("loss", 0.1, 900, 5), ("loss", 0.5, 1000, 0), ("acc", 0.2, 1, 1), ("late", 1.0, 1, 2)]


def _installed_schema() -> str | None:
    """The alembic revision a new sqlite store gets from the installed MLflow."""
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore", SqlSchemaWarning)
        backend = create_backend(f"sqlite:///{directory}/probe.db")
        return schema_version(sql_engine(MlflowClient(backend.tracking_uri)))


#: The bulk path's own tests need an MLflow whose schema it knows (the mlflow-oldest environment
#: has an older one: there every test of the suite runs through the log_batch fallback instead).
needs_known_schema = pytest.mark.skipif(
    _installed_schema() not in KNOWN_SCHEMAS,
    reason=f"the installed MLflow's schema is not one the bulk path knows ({sorted(KNOWN_SCHEMAS)})",
)


def _table(path: Path, table: str, run_id: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return sorted(
            connection.execute(
                f"SELECT key, value, timestamp, step, is_nan FROM {table} WHERE run_uuid = ?",
                (run_id,),
            ).fetchall(),
            key=repr,
        )


@needs_known_schema
def test_the_bulk_path_writes_the_rows_mlflow_log_batch_writes(tmp_path: Path) -> None:
    stores = {}
    for name in ("mlflow", "track"):
        path = tmp_path / f"{name}.db"
        backend = create_backend(f"sqlite:///{path}")
        run_id = backend.create_run(RunSpec(experiment="same")).id
        stores[name] = (path, backend, run_id)
    path, backend, run_id = stores["mlflow"]
    client = MlflowClient(backend.tracking_uri)
    for rows in (ROWS, SECOND):
        client.log_batch(run_id, metrics=[Metric(*row) for row in rows])
    path, backend, run_id = stores["track"]
    engine = sql_engine(MlflowClient(backend.tracking_uri))
    bulk = open_sql_path(engine, backend.location)
    assert isinstance(bulk, SqlBatchPath)
    for rows in (ROWS, SECOND):
        bulk.log_batch(run_id, rows)
    for table in ("metrics", "latest_metrics"):
        ours = _table(stores["track"][0], table, stores["track"][2])
        theirs = _table(stores["mlflow"][0], table, stores["mlflow"][2])
        assert ours == theirs, table
    assert len(_table(stores["track"][0], "metrics", stores["track"][2])) == 13
    read = MlflowClient(stores["track"][1].tracking_uri).get_run(stores["track"][2]).data.metrics
    assert read["loss"] == 0.1 and math.isnan(read["acc"]) and read["late"] == 3.0


@needs_known_schema
def test_the_bulk_path_refuses_a_missing_or_deleted_run_as_mlflow_does(tmp_path: Path) -> None:
    """The same MlflowException error codes as MlflowClient.log_batch (a deleted run:
    INVALID_PARAMETER_VALUE, which the writer takes as permanent; a run that does not exist:
    RESOURCE_DOES_NOT_EXIST). Error codes given as strings read as INTERNAL_ERROR."""
    backend = create_backend(f"sqlite:///{tmp_path / 'm.db'}")
    client = MlflowClient(backend.tracking_uri)
    bulk = open_sql_path(sql_engine(client), backend.location)
    assert isinstance(bulk, SqlBatchPath)
    deleted = backend.create_run(RunSpec(experiment="codes")).id
    client.delete_run(deleted)
    codes = []
    for run_id in (deleted, "0" * 32):
        with pytest.raises(MlflowException) as theirs:
            client.log_batch(run_id, metrics=[Metric("loss", 1.0, 1, 0)])
        with pytest.raises(MlflowException) as ours:
            bulk.log_batch(run_id, [("loss", 1.0, 1, 0)])
        assert ours.value.error_code == theirs.value.error_code, run_id
        codes.append(ours.value.error_code)
    assert codes == ["INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"]
    assert _table(tmp_path / "m.db", "metrics", deleted) == []


@needs_known_schema
def test_a_run_goes_through_the_bulk_path_and_reads_back(tmp_path: Path) -> None:
    backend = create_backend(f"sqlite:///{tmp_path / 'm.db'}")
    with track.start_run(backend, experiment="bulk") as run:
        for step in range(2500):
            run.track(step * 0.5, "loss", step=step, context={"subset": "train"})
            run.track(float(step), "lr", step=step)
    assert backend._sql is not None
    client = MlflowClient(backend.tracking_uri)
    history = client.get_metric_history(run.id, "loss :: subset: train")
    assert sorted(m.step for m in history) == list(range(2500))
    assert client.get_run(run.id).data.metrics == {"loss :: subset: train": 1249.5, "lr": 2499.0}


@needs_known_schema
def test_an_unknown_schema_version_is_written_through_mlflow_with_one_warning(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    create_backend(f"sqlite:///{path}").create_run(RunSpec(experiment="old"))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    backend = create_backend(f"sqlite:///{path}")  # MLflow's store is open already
    with pytest.warns(SqlSchemaWarning, match="ffffffffffff") as caught:
        with track.start_run(backend, experiment="old") as run:
            for step in range(1500):
                run.track(step * 1.0, "loss", step=step)
        with track.start_run(backend, experiment="old") as again:
            again.track(1.0, "loss", step=0)
    assert len([w for w in caught if issubclass(w.category, SqlSchemaWarning)]) == 1
    assert backend._sql is None
    history = MlflowClient(backend.tracking_uri).get_metric_history(run.id, "loss")
    assert sorted(m.step for m in history) == list(range(1500))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with mlflow_server(tmp_path_factory.mktemp("mlflow-inflight")) as running:
        yield running


def test_to_a_server_several_requests_in_flight_store_every_value_once(
    server: MlflowServer,
) -> None:
    backend = create_backend(server.url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", track.BackPressureWarning)
        with track.start_run(backend, experiment="inflight") as run:
            for step in range(60):
                for index in range(50):
                    run.track(step + index / 100, f"layer{index}", step=step)
    client = MlflowClient(server.url)
    for index in (0, 17, 49):
        history = client.get_metric_history(run.id, f"layer{index}")
        assert sorted(m.step for m in history) == list(range(60))
    # the same batch again (a retry after a failure mid-flight) duplicates nothing
    writer = backend.resume_run(run.id)
    from track_core.backend import TrackedPoint
    from track_core.context import Context
    from track_core.values import ValueKind

    stored = client.get_metric_history(run.id, "layer3")
    points = [
        TrackedPoint(
            "layer3", Context(), ValueKind.SCALAR, m.step, None, m.timestamp / 1000, m.value
        )
        for m in stored
    ]
    writer.write_points(points)
    writer.write_points(points)
    assert len(client.get_metric_history(run.id, "layer3")) == 60
