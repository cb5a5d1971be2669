"""The MLflow backend: runs stored through ``MlflowClient`` with explicit run ids."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import attrs
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from track_core.backend import Capability, RunInfo, RunSpec
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_core.values import Distribution, Image, Text, Value, ValueKind
from track_mlflow._artifacts import MISSING_ARTIFACT_ERRORS, RunArtifacts
from track_mlflow._compat import (
    HostCreds,
    ServedArtifacts,
    latest_metrics,
    run_context_tags,
    sql_engine,
)
from track_mlflow._epochs import EpochWriter
from track_mlflow._layout import (
    MAX_METRICS_PER_BATCH,
    MAX_TAG_VALUE_LENGTH,
    MLFLOW_TO_STATUS,
    PARAMS_ARTIFACT,
    TAG_ERROR,
    TAG_ERROR_CUT,
    TAG_LOGGED_IMAGES,
    TAG_NOTE,
    TAG_PARAMS_CHANGED,
    label_tags,
    labels_of,
)
from track_mlflow._reader import MlflowRunReader, milliseconds, read_epochs, run_times
from track_mlflow._sql import SQL_BATCH_SIZE, SqlBatchPath, open_sql_path
from track_mlflow._writer import IN_FLIGHT, REQUESTS_PER_LANE, MlflowRunWriter, is_missing
from track_mlflow.errors import EscapedKeyWarning, MlflowServerUnavailableError, is_unreachable
from track_mlflow.keys import (
    DEFAULT_KEY_STYLE,
    EPOCH_SUFFIX,
    HASH_TAG_PREFIX,
    KEY_STYLE_TAG,
    encode_key,
    has_escape,
    hash_registry_entry,
    hashed_key,
    is_epoch_key,
    key_style_of,
    plain_key,
)
from track_mlflow.uri import ResolvedLocation


def _experiment_name(client: MlflowClient, experiment_id: str, cache: dict[str, str]) -> str | None:
    if experiment_id == "0":
        return None
    if experiment_id not in cache:
        cache[experiment_id] = client.get_experiment(experiment_id).name
    return cache[experiment_id]


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside track's packages
    (the user's ``run.track(...)``), for a ``warnings.warn`` in the caller of this function."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("track_"):
        frame = frame.f_back
        level += 1
    return level


@attrs.define
class MlflowBackend:
    """Runs in an MLflow tracking store (``sqlite:///...`` or an ``http(s)://`` server).

    ``experiment=None`` is MLflow's ``Default`` experiment (id 0), read back as ``None``.
    """

    _client: MlflowClient
    _where: ResolvedLocation
    _artifact_location: str | None = None
    #: Credentials of this backend's own (from the backend string), never the environment's.
    _host_creds: HostCreds | None = attrs.field(default=None, repr=False)
    _experiment_ids: dict[str, str] = attrs.field(factory=dict)
    _experiment_names: dict[str, str] = attrs.field(factory=dict)
    _warned_keys: set[str] = attrs.field(factory=set)
    _warn_lock: threading.Lock = attrs.field(factory=threading.Lock)
    #: The key style of the runs this backend creates (``track_mlflow.keys``); a resumed run
    #: keeps the style it was created with.
    _key_style: str = DEFAULT_KEY_STYLE
    #: The bulk path into the SQL store (``track_mlflow._sql``), opened (and its schema
    #: checked) at the first run; None on a server, or on a schema it does not know.
    _sql: SqlBatchPath | None = None
    _sql_checked: bool = False

    #: The core's system-metrics sampler writes the keys MLflow's UI shows under "System
    #: metrics" (``system/cpu_utilization_percentage``...).
    system_metric_names = "mlflow"

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def location(self) -> str:
        return self._where.display

    @property
    def tracking_uri(self) -> str:
        """The tracking URI MLflow is given (never with credentials)."""
        return self._where.tracking_uri

    @property
    def client(self) -> MlflowClient:
        return self._client

    @property
    def batch_size(self) -> int:
        """Points per ``write_points`` call (``track_core.backend.BatchSizedBackend``).

        A server: ``REQUESTS_PER_LANE`` full ``log_batch`` requests (1000 metrics each) for
        each of the ``IN_FLIGHT`` requests a batch may have in flight. A SQL store: larger
        batches, since each costs one transaction (``benchmarks/bench_mlflow.py`` measures the
        sizes). Else the core's default."""
        if self._where.remote:
            return IN_FLIGHT * REQUESTS_PER_LANE * MAX_METRICS_PER_BATCH
        if self._where.sql_store:
            return SQL_BATCH_SIZE
        return MAX_METRICS_PER_BATCH

    @property
    def capabilities(self) -> frozenset[Capability]:
        capabilities = {
            Capability.IMAGES,
            Capability.TEXTS,
            Capability.DISTRIBUTIONS,
            Capability.ARTIFACTS,
            Capability.RESUME,
            Capability.BATCH_WRITES,
            Capability.ARCHIVE,
            Capability.WRITER_PROCESS,
            Capability.RUN_TIMES,
        }
        if self._where.remote:
            capabilities.add(Capability.REMOTE)
        return frozenset(capabilities)

    def check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a sequence name must be a non-empty str, got {name!r}")
        key = encode_key(name, context, self._key_style)
        shortened = key == hashed_key(name, context)
        if shortened:
            _, entry = hash_registry_entry(name, context)
            if len(entry) > MAX_TAG_VALUE_LENGTH:
                raise ValueError(
                    f"sequence {name[:80]!r}... is too long for MLflow: its name and context "
                    f"take {len(entry)} characters as JSON, at most {MAX_TAG_VALUE_LENGTH} fit"
                )
        escaped = (
            key != plain_key(name, context)
            if self._key_style == DEFAULT_KEY_STYLE
            else shortened or has_escape(key)
        )
        if escaped:
            self._warn_escaped(name, context, key, shortened)

    def _warn_escaped(self, name: str, context: Context, key: str, shortened: bool) -> None:
        with self._warn_lock:
            if key in self._warned_keys:
                return
            self._warned_keys.add(key)
        what = f"{name!r}" if not context else f"{name!r} in context {context.to_dict()}"
        why = (
            "it is too long for an MLflow key (at most 250 characters): it is shortened, and the "
            "run's tag " + hash_registry_entry(name, context)[0] + " keeps the name"
            if shortened
            else "MLflow keys allow only letters, digits, spaces and _ - . / :, and track escapes "
            "the rest as :hh (see track_mlflow.keys)"
        )
        warnings.warn(
            EscapedKeyWarning(
                f"track: sequence {what} is stored in MLflow under the key {key!r}: {why}; "
                "track reads it back under its name (warned once per sequence)",
                name,
                context,
                key,
            ),
            stacklevel=_caller_stacklevel(),
        )

    def check_value(self, value: Value) -> None:
        if not isinstance(value, (Image, Text, Distribution)):
            raise TypeError(f"the mlflow backend cannot store a {type(value).__name__}")

    def _artifacts(self, run_id: str, artifact_uri: str) -> RunArtifacts:
        served = None
        if self._host_creds is not None and ServedArtifacts.is_served(artifact_uri):
            served = ServedArtifacts(artifact_uri, self._where.tracking_uri, self._host_creds)
        return RunArtifacts(self._client, run_id, served)

    def _experiment_id(self, experiment: str | None) -> str:
        if experiment is None:
            return "0"
        cached = self._experiment_ids.get(experiment)
        if cached is not None:
            return cached
        found = self._client.get_experiment_by_name(experiment)
        if found is None:
            location = self._artifact_location
            if location is None and self._where.local_artifact_root is not None:
                slug = hashlib.sha256(experiment.encode()).hexdigest()[:12]
                location = (self._where.local_artifact_root / slug).as_uri()
            try:
                experiment_id = self._client.create_experiment(
                    experiment, artifact_location=location
                )
            except MlflowException as error:  # created by another process meanwhile
                found = self._client.get_experiment_by_name(experiment)
                if found is None:
                    raise error from None
                experiment_id = found.experiment_id
        else:
            if found.lifecycle_stage == "deleted":
                raise ValueError(
                    f"MLflow experiment {experiment!r} is deleted: restore it "
                    "(mlflow experiments restore) or use another name"
                )
            experiment_id = found.experiment_id
        self._experiment_ids[experiment] = experiment_id
        return str(experiment_id)

    def _sql_path(self) -> SqlBatchPath | None:
        """The bulk SQL path for this backend's runs, checked once (see ``track_mlflow._sql``)."""
        if not self._sql_checked:
            engine = sql_engine(self._client) if self._where.sql_store else None
            if engine is not None:
                self._sql = open_sql_path(engine, self.location)
            self._sql_checked = True
        return self._sql

    def _unavailable(self, error: Exception) -> MlflowServerUnavailableError:
        return MlflowServerUnavailableError(
            f"the MLflow tracking server at {self.location} did not answer: is it running? "
            f"Start one with: mlflow server --host 127.0.0.1 --port PORT (then use "
            f"mlflow:http://127.0.0.1:PORT)"
        )

    def create_run(self, spec: RunSpec) -> MlflowRunWriter:
        try:
            return self._create_run(spec)
        except Exception as error:
            if self._where.remote and is_unreachable(error):
                raise self._unavailable(error) from error
            raise

    def _create_run(self, spec: RunSpec) -> MlflowRunWriter:
        experiment_id = self._experiment_id(spec.experiment)
        tags = run_context_tags()
        if spec.description is not None:
            tags[TAG_NOTE] = spec.description
        for tag in label_tags(spec.tags):
            tags[tag.key] = tag.value
        if self._key_style != DEFAULT_KEY_STYLE:
            tags[KEY_STYLE_TAG] = self._key_style
        start = None if spec.created_at is None else milliseconds(spec.created_at)
        run = self._client.create_run(
            experiment_id, start_time=start, tags=tags, run_name=spec.name
        )
        return MlflowRunWriter(
            self._client,
            run.info.run_id,
            self._artifacts(run.info.run_id, run.info.artifact_uri),
            labels=spec.tags,
            key_style=self._key_style,
            newest_first=self._where.sql_store,
            sql=self._sql_path(),
            remote=self._where.remote,
        )

    def resume_run(self, run_id: str) -> MlflowRunWriter:
        run = self._get_run(run_id)
        artifacts = self._artifacts(run_id, run.info.artifact_uri)
        document: dict[str, Param] = {}
        try:
            document = json.loads(artifacts.read(PARAMS_ARTIFACT))["params"]
        except (*MISSING_ARTIFACT_ERRORS, KeyError, ValueError):
            pass
        latest = {m.key: int(m.step) for m in latest_metrics(run)}
        companion = frozenset(key.removesuffix(EPOCH_SUFFIX) for key in latest if is_epoch_key(key))
        epochs = EpochWriter.resume(read_epochs(artifacts), latest, companion)
        for key in (TAG_ERROR, TAG_ERROR_CUT):
            if key in run.data.tags:
                self._client.delete_tag(run_id, key)
        self._client.update_run(run_id, status="RUNNING")
        changed_text = run.data.tags.get(TAG_PARAMS_CHANGED)
        return MlflowRunWriter(
            self._client,
            run_id,
            artifacts,
            params=document,
            logged_params=dict(run.data.params),
            changed_params=json.loads(changed_text) if changed_text else [],
            labels=labels_of(run.data.tags),
            registered={k for k in run.data.tags if k.startswith(HASH_TAG_PREFIX)},
            images_tagged=TAG_LOGGED_IMAGES in run.data.tags,
            epochs=epochs,
            key_style=key_style_of(run.data.tags),
            newest_first=self._where.sql_store,
            sql=self._sql_path(),
            remote=self._where.remote,
        )

    def _get_run(self, run_id: str) -> Any:
        try:
            return self._client.get_run(run_id)
        except MlflowException as error:
            if is_missing(error) or "not found" in str(error).lower():
                raise KeyError(f"no MLflow run with id {run_id!r} at {self.location}") from None
            raise

    def list_runs(self, experiment: str | None = None) -> Sequence[RunInfo]:
        if experiment is None:
            experiment_ids = [e.experiment_id for e in self._client.search_experiments()]
        else:
            found = self._client.get_experiment_by_name(experiment)
            if found is None:
                return []
            experiment_ids = [found.experiment_id]
        result: list[RunInfo] = []
        token: str | None = None
        while True:
            page = self._client.search_runs(
                experiment_ids, max_results=1000, order_by=["start_time ASC"], page_token=token
            )
            for run in page:
                status = MLFLOW_TO_STATUS.get(run.info.status, Status.RUNNING)
                result.append(
                    RunInfo(
                        run.info.run_id,
                        _experiment_name(
                            self._client, run.info.experiment_id, self._experiment_names
                        ),
                        run.info.run_name,
                        status,
                        *run_times(run.info, status),
                    )
                )
            token = page.token
            if not token:
                break
        return result

    def read_run(self, run_id: str) -> MlflowRunReader:
        run = self._get_run(run_id)
        status = MLFLOW_TO_STATUS.get(run.info.status, Status.RUNNING)
        created_at, ended_at = run_times(run.info, status)
        return MlflowRunReader(
            self._client,
            run_id,
            self._artifacts(run_id, run.info.artifact_uri),
            _experiment_name(self._client, run.info.experiment_id, self._experiment_names),
            run.info.run_name,
            dict(run.data.tags),
            status,
            dict(run.data.params),
            frozenset(run.data.metrics),
            created_at=created_at,
            ended_at=ended_at,
        )

    def close(self) -> None:
        return None
