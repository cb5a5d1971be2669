"""A faster way into MLflow's own SQL store (sqlite, PostgreSQL...), for the metric rows of
``write_points``: ``SqlBatchPath``.

MLflow's ``SqlAlchemyStore.log_batch`` builds one ORM object per row, compares each row with its
key's latest value in Python and rewrites that value per row; that, not the database, sets its
speed. ``SqlBatchPath.log_batch`` writes exactly the rows it would write, in one transaction, with
bulk statements (its semantics, read from ``mlflow/store/tracking/sqlalchemy_store.py``; none of
its code):

- ``metrics``: one row ``(key, value, timestamp, step, is_nan, run_uuid)`` per metric. NaN is
  stored as value 0 with ``is_nan`` true; +-inf as +-DBL_MAX (SQL has no infinity). A row whose
  identity (the table's primary key: key, timestamp, step, value, is_nan) is already stored, or
  comes twice in a batch, is stored once: MLflow's store catches the primary key's
  ``IntegrityError`` and inserts the rows not yet there; here ``ON CONFLICT DO NOTHING`` does.
- ``latest_metrics``: per key, the row with the greatest ``(step, timestamp, value)`` (the first
  of equal ones), replacing the stored one only when strictly greater, as MLflow's
  ``_update_latest_metrics_if_necessary`` does row by row.
- ``tags``: inserted, or their value replaced (MLflow's ``_set_tags``); the run name tag, which
  MLflow also writes into ``runs.name``, is not taken here (the caller sends it through the
  client).
- the run must exist and be active, as MLflow checks (``RESOURCE_DOES_NOT_EXIST`` /
  ``INVALID_PARAMETER_VALUE``, MLflow's own error codes).

Params go through MLflow's client (one call per ``set_params``, never many).

The path is used only on a schema it was checked against: ``open_sql_path`` reads the store's
``alembic_version`` and, on a version not in ``KNOWN_SCHEMAS``, returns None after one
``SqlSchemaWarning``: the writer then uses MLflow's ``log_batch`` as before.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Final

import attrs
from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from track_core.backend import PermanentWriteError, TransientWriteError
from track_mlflow.errors import SqlSchemaWarning

__all__ = ["KNOWN_SCHEMAS", "SqlBatchPath", "open_sql_path"]

#: The alembic revisions of MLflow's tracking schema whose ``metrics``, ``latest_metrics`` and
#: ``tags`` tables this path was checked against (the rows compared with what MLflow's
#: ``log_batch`` writes, tests/mlflow/test_mlflow_sql_path.py). ``dc11669786a5``: MLflow 3.17.
#: A store at any other revision is written through MLflow's client.
KNOWN_SCHEMAS: Final = frozenset({"dc11669786a5"})

DOUBLE_MAX: Final = 1.7976931348623157e308
#: Points per write_points call into a SQL store: each batch is one transaction (sqlite about
#: 22 ms to commit on the test machine), so larger batches store more per second; past a few
#: thousand rows the statements cost more than the commit (``benchmarks/bench_mlflow.py``).
SQL_BATCH_SIZE: Final = 5000
#: Keys per ``IN (...)`` or statement chunk, as MLflow's store bounds its bound parameters.
_CHUNK: Final = 500
RUN_NAME_TAG: Final = "mlflow.runName"

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _sanitized(value: float) -> tuple[float, bool]:
    """``(value, is_nan)`` as MLflow's store keeps a metric value."""
    if value != value:  # NaN
        return 0.0, True
    if math.isinf(value):
        return (DOUBLE_MAX if value > 0 else -DOUBLE_MAX), False
    return float(value), False


_COLUMNS: Final = "key, value, timestamp, step, is_nan, run_uuid"
_NEWER: Final = (
    "(excluded.step, excluded.timestamp, excluded.value)"
    " > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)"
)


def _statements(placeholder: str, values: str) -> dict[str, str]:
    """The SQL of the path in a driver's parameter style (``?`` or ``%s``); ``values`` is what
    follows ``VALUES`` (one row's placeholders, or psycopg2's ``execute_values`` template)."""
    return {
        "stage": f"SELECT lifecycle_stage FROM runs WHERE run_uuid = {placeholder}",
        "metrics": f"INSERT INTO metrics ({_COLUMNS}) VALUES {values} ON CONFLICT DO NOTHING",
        "latest": (
            f"INSERT INTO latest_metrics ({_COLUMNS}) VALUES {values}"
            " ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value,"
            " timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan"
            f" WHERE {_NEWER}"
        ),
    }


def schema_version(engine: Any) -> str | None:
    """The store's alembic revision (None when it has none)."""
    import sqlalchemy as sa

    with engine.connect() as connection:
        try:
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()  # type: ignore[no-any-return]
        except sa.exc.DBAPIError:
            return None


def open_sql_path(engine: Any, where: str) -> SqlBatchPath | None:
    """The fast path into the SQL store behind ``engine`` (MLflow's own engine for it), or None
    after one ``SqlSchemaWarning`` per store and process when its schema is not a known one."""
    dialect = engine.dialect.name
    version = schema_version(engine)
    if version in KNOWN_SCHEMAS and dialect in ("sqlite", "postgresql"):
        return SqlBatchPath(engine, dialect)
    with _warned_lock:
        if where in _warned:
            return None
        _warned.add(where)
    why = (
        f"its schema version is {version!r}, which track_mlflow was not checked against "
        f"(known: {', '.join(sorted(KNOWN_SCHEMAS))})"
        if version not in KNOWN_SCHEMAS
        else f"it is a {dialect} database (track's bulk path knows sqlite and postgresql)"
    )
    warnings.warn(
        SqlSchemaWarning(
            f"track: the MLflow store {where} is written through MLflow's log_batch, not "
            f"track's bulk SQL path: {why}. Everything is stored either way; only slower.",
            version,
        ),
        stacklevel=3,
    )
    return None


@attrs.define
class SqlBatchPath:
    """Writes the metric rows and tags of one ``log_batch`` into MLflow's SQL store, in one
    transaction (see the module's docstring for what it writes, and why that is MLflow's),
    through the driver's own bulk calls (sqlite3's ``executemany``, psycopg2's
    ``execute_values``) on a connection of MLflow's engine."""

    _engine: Any
    _dialect: str

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, int]],
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Store ``metrics`` (``(key, value, timestamp_ms, step)`` rows, as
        ``_layout.metric_row`` makes them) and ``tags`` of the run ``run_id`` as MLflow's
        ``log_batch`` of the same ``Metric`` rows would (any number of them: MLflow's
        1000-per-call limit is its REST API's)."""
        if any(tag.key == RUN_NAME_TAG for tag in tags):
            raise ValueError(f"the {RUN_NAME_TAG} tag goes through MLflow's client")
        rows: list[tuple[str, float, int, int, bool, str]] = []
        seen: set[tuple[str, float, int, int, bool, str]] = set()
        best: dict[str, tuple[str, float, int, int, bool, str]] = {}
        for key, number, timestamp, step in metrics:
            value, is_nan = _sanitized(number)
            row = (key, value, timestamp, step, is_nan, run_id)
            if row in seen:  # the primary key's identity: stored once
                continue
            seen.add(row)
            rows.append(row)
            latest = best.get(key)
            if latest is None or (step, timestamp, value) > (latest[3], latest[2], latest[1]):
                best[key] = row  # strictly newer only: the first of equal rows stays
        # Keys in one order in every transaction, as MLflow's store locks them.
        newest = [best[key] for key in sorted(best)]
        tag_rows = list({tag.key: (tag.key, tag.value, run_id) for tag in tags}.values())
        self._write(run_id, rows, newest, tag_rows)

    def _write(
        self,
        run_id: str,
        rows: list[tuple[Any, ...]],
        newest: list[tuple[Any, ...]],
        tag_rows: list[tuple[str, str, str]],
    ) -> None:
        import sqlalchemy as sa

        dbapi = self._engine.dialect.dbapi
        postgres = self._dialect == "postgresql"
        sql = _statements("%s", "%s") if postgres else _statements("?", "(?, ?, ?, ?, ?, ?)")
        tag_sql = (
            "INSERT INTO tags (key, value, run_uuid) VALUES {}"
            " ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value"
        ).format("%s" if postgres else "(?, ?, ?)")
        try:
            with self._engine.begin() as connection:
                cursor = connection.connection.cursor()
                try:
                    cursor.execute(sql["stage"], (run_id,))
                    found = cursor.fetchone()
                    if found is None:
                        raise MlflowException(
                            f"Run with id={run_id} not found",
                            error_code=RESOURCE_DOES_NOT_EXIST,
                        )
                    if found[0] != "active":
                        raise MlflowException(
                            f"The run {run_id} must be in the 'active' state. Current state "
                            f"is {found[0]}.",
                            error_code=INVALID_PARAMETER_VALUE,
                        )
                    if postgres:
                        from psycopg2.extras import execute_values  # type: ignore[import-untyped]

                        if rows:
                            execute_values(cursor, sql["metrics"], rows, page_size=_CHUNK)
                            execute_values(cursor, sql["latest"], newest, page_size=_CHUNK)
                        if tag_rows:
                            execute_values(cursor, tag_sql, tag_rows, page_size=_CHUNK)
                    else:
                        if rows:
                            cursor.executemany(sql["metrics"], rows)
                            cursor.executemany(sql["latest"], newest)
                        if tag_rows:
                            cursor.executemany(tag_sql, tag_rows)
                except (dbapi.OperationalError, dbapi.InterfaceError):
                    connection.invalidate()  # a connection the database dropped is not reused
                    raise
                finally:
                    cursor.close()
        except OverflowError as error:  # sqlite: an int its INTEGER columns cannot hold
            raise PermanentWriteError(f"MLflow's store cannot hold a value: {error}") from error
        except dbapi.DataError as error:  # PostgreSQL: a number out of its column's range
            raise PermanentWriteError(f"MLflow's store refused a value: {error}") from error
        except (dbapi.OperationalError, dbapi.InterfaceError, sa.exc.DBAPIError) as error:
            if isinstance(error, sa.exc.DBAPIError) and not isinstance(
                error, (sa.exc.OperationalError, sa.exc.InterfaceError)
            ):
                raise
            # the database is locked, gone or restarting: retried until it answers
            raise TransientWriteError(
                f"MLflow's database did not take the batch: {error}"
            ) from error
