"""track's bulk path into MLflow's SQL store, on PostgreSQL itself (psycopg2's ``execute_values``,
``ON CONFLICT`` on PostgreSQL's unique indexes, its boolean ``is_nan`` and double precision
columns): it stores exactly the rows MLflow's own ``log_batch`` stores into the same database,
refuses what MLflow refuses with the same error codes, and a whole track run written through it
reads back through MlflowClient.

The tests in ``tests/postgres/test_mlflow_postgres.py`` write through an ``mlflow server``, whose
own store takes the rows; these write to the database directly, as ``mlflow:postgresql+psycopg2://``
does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import track_core as track
from track_core.backend import RunSpec
from track_mlflow import SqlSchemaWarning, create_backend
from track_mlflow._compat import sql_engine
from track_mlflow._sql import KNOWN_SCHEMAS, SqlBatchPath, open_sql_path, schema_version
from track_mlflow.testing import Postgres

# (key, value, timestamp in ms, step): repeats, ties, NaN, infinities, a negative zero, and
# timestamps and steps past 32 bits (PostgreSQL's BIGINT columns).
FIRST = [
    ("loss", 2.5, 1_700_000_000_000, 0),
    ("loss", 1.5, 1_700_000_000_100, 1),
    ("loss", 1.5, 1_700_000_000_100, 1),  # stored once
    ("loss", 9.0, 1_700_000_000_050, 1),  # same step, older: not the latest
    ("score", math.nan, 3, 2),
    ("score", 0.5, 3, 1),
    ("edge", math.inf, 7, 5),
    ("edge", -math.inf, 7, 5),
    ("edge", -0.0, 6, 5),
    ("wide", 1.0, 2**40, 2**35),
]
SECOND = [("loss", 0.5, 1_699_999_999_999, 2), ("score", 0.75, 1, 0), ("wide", 2.0, 1, 2**36)]


@pytest.fixture
def store(postgres: Postgres) -> Iterator[str]:
    """The database's URI, with MLflow's schema in it (MLflow's store creates it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", SqlSchemaWarning)  # the bulk path must be taken here
        create_backend(postgres.uri)
    yield postgres.uri


def _rows(postgres: Postgres, table: str, run_id: str) -> list[tuple[Any, ...]]:
    connection: Any = postgres.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT key, value, timestamp, step, is_nan FROM {table} WHERE run_uuid = %s",
                (run_id,),
            )
            return sorted(cursor.fetchall(), key=repr)
    finally:
        connection.close()


def _bulk_path(uri: str) -> SqlBatchPath:
    engine = sql_engine(MlflowClient(create_backend(uri).tracking_uri))
    if schema_version(engine) not in KNOWN_SCHEMAS:
        pytest.skip(
            f"the installed MLflow's schema is not one the bulk path knows ({KNOWN_SCHEMAS})"
        )
    bulk = open_sql_path(engine, "postgresql")
    assert isinstance(bulk, SqlBatchPath)
    return bulk


def test_the_bulk_path_stores_on_postgresql_the_rows_log_batch_stores(
    store: str, postgres: Postgres
) -> None:
    backend = create_backend(store)
    client = MlflowClient(backend.tracking_uri)
    theirs = backend.create_run(RunSpec(experiment="pg-rows")).id
    ours = backend.create_run(RunSpec(experiment="pg-rows")).id
    bulk = _bulk_path(store)
    for rows in (FIRST, SECOND):
        client.log_batch(
            theirs, metrics=[Metric(*row) for row in rows], tags=[RunTag("phase", str(len(rows)))]
        )
        bulk.log_batch(ours, rows, [RunTag("phase", str(len(rows)))])
    for table in ("metrics", "latest_metrics"):
        assert _rows(postgres, table, ours) == _rows(postgres, table, theirs), table
    assert len(_rows(postgres, "metrics", ours)) == len(FIRST) - 1 + len(SECOND)
    run = client.get_run(ours)
    assert run.data.tags["phase"] == str(len(SECOND))
    latest = run.data.metrics
    assert latest["loss"] == 0.5 and math.isnan(latest["score"]) and latest["wide"] == 2.0
    assert len(client.get_metric_history(ours, "edge")) == 3  # both infinities and the zero
    assert sorted(m.step for m in client.get_metric_history(ours, "wide")) == [2**35, 2**36]


def test_the_bulk_path_refuses_a_deleted_or_missing_run_as_log_batch_does(store: str) -> None:
    backend = create_backend(store)
    client = MlflowClient(backend.tracking_uri)
    bulk = _bulk_path(store)
    deleted = backend.create_run(RunSpec(experiment="pg-codes")).id
    client.delete_run(deleted)
    for run_id in (deleted, "f" * 32):
        with pytest.raises(MlflowException) as mlflows:
            client.log_batch(run_id, metrics=[Metric("loss", 1.0, 1, 0)])
        with pytest.raises(MlflowException) as tracks:
            bulk.log_batch(run_id, [("loss", 1.0, 1, 0)])
        assert tracks.value.error_code == mlflows.value.error_code, run_id
    assert client.get_metric_history(deleted, "loss") == []


def test_a_run_written_straight_to_postgresql_reads_back_through_mlflow(store: str) -> None:
    backend = create_backend(store)
    with track.start_run(backend, experiment="pg-direct") as run:
        run["hparams"] = {"lr": 0.01}
        for step in range(6000):
            run.track(step * 0.5, "loss", step=step, context={"subset": "train"})
            run.track(float(step % 7), "grad", step=step, context={"layer": "fc"})
    assert backend._sql is not None, "the run did not go through the bulk path"
    client = MlflowClient(backend.tracking_uri)
    loss = client.get_metric_history(run.id, "loss :: subset: train")
    assert [m.step for m in sorted(loss, key=lambda m: m.step)] == list(range(6000))
    assert [m.value for m in sorted(loss, key=lambda m: m.step)] == [s * 0.5 for s in range(6000)]
    assert client.get_run(run.id).data.metrics == {
        "loss :: subset: train": 2999.5,
        "grad :: layer: fc": float(5999 % 7),
    }
    grads = track.open_run(run.id, backend).sequence("grad", {"layer": "fc"}).points()
    assert [point.step for point in grads] == list(range(6000))
