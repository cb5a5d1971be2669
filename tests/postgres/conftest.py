"""A real PostgreSQL server and an ``mlflow server`` on it, as a team runs MLflow.

Both come from ``track_mlflow.testing`` (``postgres_server``, ``mlflow_server(store_uri=)``),
which the benchmarks use too. When PostgreSQL is missing and the tests run as root (CI on a
fresh machine), it is installed with apt-get; when it cannot be, the tests skip, saying why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from track_mlflow.testing import (
    MlflowServer,
    Postgres,
    PostgresUnavailable,
    mlflow_server,
    postgres_server,
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server())
        except PostgresUnavailable as error:
            pytest.skip(str(error))
        yield server


@pytest.fixture
def mlflow_on_postgres(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server"), store_uri=postgres.uri) as server:
        yield server
