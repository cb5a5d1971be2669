"""The system metrics sampler: real psutil readings of this machine, written into real runs of the
memory backend from the sampler's own thread.

This machine has no NVIDIA GPU: nvidia-ml-py is installed here and NVML fails to start (no
driver), which is the "GPU not present" path the tests check. A missing psutil / nvidia-ml-py is
made by hiding the installed module (``sys.modules[name] = None``: ``import`` raises ImportError,
as it does where the package is not installed).
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import track_core
from track_core import system_metrics
from track_core.errors import TrackWarning
from track_core.memory import MemoryBackend, memory_store
from track_core.system_metrics import (
    AIM_NAMES,
    METRICS,
    MLFLOW_NAMES,
    Sampler,
    start_sampler,
)

PSUTIL_METRICS = {name for name, metric in METRICS.items() if not metric.gpu}


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    """Each test sees the once-per-process warnings anew."""
    system_metrics._warned.clear()
    yield
    system_metrics._warned.clear()


def _run(backend: object = None) -> Any:
    return track_core.start_run(backend or f"memory:{uuid.uuid4().hex}")


def _wait_for_samples(sampler: Sampler, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while sampler.samples < count:
        assert sampler.running, "the sampler stopped before it sampled"
        assert time.monotonic() < deadline, f"only {sampler.samples} samples in {timeout} s"
        time.sleep(0.02)


def _stored(run: Any) -> dict[tuple[str, tuple[tuple[str, object], ...]], list[float]]:
    stored = track_core.open_run(run.id, run.backend)
    return {
        (seq.name, tuple(sorted(seq.context.items()))): [point.value for point in seq.points()]
        for seq in stored.sequences()
    }


def test_samples_every_psutil_metric_into_the_run_and_stops_when_it_closes() -> None:
    run = _run()
    sampler = start_sampler(run, interval=0.1)
    assert sampler.running
    assert sampler.unsampled == {}  # psutil reads all of it on this machine; no GPU asked for
    _wait_for_samples(sampler, 3)
    run.close()
    sampler._thread.join(5.0)  # type: ignore[union-attr]
    assert not sampler.running, "the sampler goes on after its run closed"
    taken = sampler.samples
    stored = _stored(run)
    assert {name for name, _ in stored} == {f"system/{metric}" for metric in PSUTIL_METRICS}
    for (name, context), values in stored.items():
        assert context == ()
        assert len(values) == taken, name  # one point per sample, none after close
        assert all(isinstance(v, float) and math.isfinite(v) for v in values), name
    for metric in ("cpu_percent", "memory_percent", "disk_percent"):
        assert all(0.0 <= v <= 100.0 for v in stored[f"system/{metric}", ()]), metric
    assert all(v > 0 for v in stored["system/memory_used_megabytes", ()])
    assert all(v > 0 for v in stored["system/process_memory_rss_megabytes", ()])
    # I/O is counted from the sampler's start: never negative, never decreasing
    for metric in ("network_receive_megabytes", "disk_write_megabytes"):
        values = stored[f"system/{metric}", ()]
        assert values[0] >= 0.0 and values == sorted(values), metric


def test_the_samples_are_taken_and_tracked_on_the_sampler_thread_only() -> None:
    run = _run()
    calls: list[tuple[str, str]] = []
    track = run.track

    class Recording:
        """The real run; records which thread each track() call came from."""

        backend = run.backend
        closed = property(lambda self: run.closed)

        def track(self, *args: Any, **kwargs: Any) -> None:
            calls.append((threading.current_thread().name, args[1]))
            track(*args, **kwargs)

    sampler = start_sampler(Recording(), interval=0.1)
    for step in range(200):  # the training loop
        run.track(1.0 / (step + 1), "loss", step=step)
    _wait_for_samples(sampler, 2)
    sampler.stop()
    run.close()
    assert calls and {thread for thread, _ in calls} == {"track-system-metrics"}
    assert threading.current_thread().name not in {thread for thread, _ in calls}
    assert len(_stored(run)["loss", ()]) == 200


def test_stop_ends_sampling_and_is_idempotent() -> None:
    run = _run()
    sampler = start_sampler(run, interval=0.1)
    _wait_for_samples(sampler, 1)
    sampler.stop()
    sampler.stop()
    assert not sampler.running
    taken = sampler.samples
    time.sleep(0.35)
    assert sampler.samples == taken
    run.track(1.0, "loss")  # the run itself is untouched
    run.close()
    stored = _stored(run)
    assert len(stored["system/cpu_percent", ()]) == taken
    assert stored["loss", ()] == [1.0]


def test_backend_naming_style_aim() -> None:
    class AimNamedMemory(MemoryBackend):
        system_metric_names = "aim"

    run = _run(AimNamedMemory(memory_store(uuid.uuid4().hex)))
    sampler = start_sampler(run, interval=0.1)
    _wait_for_samples(sampler, 1)
    run.close()
    sampler.stop()
    names = {name for name, _ in _stored(run)}
    # Aim's own names for what its tracker samples (aim.ext.resource.stat) ...
    for native in ("cpu", "memory_percent", "p_memory_percent", "disk_percent"):
        assert f"__system__{native}" in names
    # ... and __system__<neutral> for the rest
    assert "__system__network_receive_megabytes" in names
    assert "__system__cpu_percent" in names  # the whole machine's CPU, beside the process's
    assert all(name.startswith("__system__") for name in names)
    assert len(names) == len(PSUTIL_METRICS)


def test_backend_naming_style_mlflow() -> None:
    class MlflowNamedMemory(MemoryBackend):
        system_metric_names = "mlflow"

    run = _run(MlflowNamedMemory(memory_store(uuid.uuid4().hex)))
    sampler = start_sampler(run, interval=0.1)
    _wait_for_samples(sampler, 1)
    run.close()
    sampler.stop()
    names = {name for name, _ in _stored(run)}
    # mlflow.system_metrics' own keys
    for native in (
        "cpu_utilization_percentage",
        "system_memory_usage_megabytes",
        "system_memory_usage_percentage",
        "disk_usage_percentage",
        "disk_usage_megabytes",
        "disk_available_megabytes",
        "network_receive_megabytes",
        "network_transmit_megabytes",
    ):
        assert f"system/{native}" in names
    assert len(names) == len(PSUTIL_METRICS)


def test_style_names_for_gpus_and_ranks() -> None:
    aim = system_metrics.aim_names
    mlflow = system_metrics.mlflow_names
    neutral = system_metrics.neutral_names
    assert aim("gpu_utilization_percent", 1, None) == ("__system__gpu", {"gpu": 1})
    assert aim("gpu_temperature_celsius", 0, 3) == ("__system__gpu_temp", {"rank": 3, "gpu": 0})
    assert mlflow("gpu_memory_percent", 2, None) == ("system/gpu_2_memory_usage_percentage", {})
    assert mlflow("cpu_percent", None, 1) == ("system/rank_1/cpu_utilization_percentage", {})
    assert neutral("gpu_power_watts", 0, None) == ("system/gpu_power_watts", {"gpu": 0})
    # every metric has a name in every style, and no two metrics share one
    for style in ("aim", "mlflow", "neutral"):
        keys = [
            (name, tuple(sorted(context.items())))
            for name, context in system_metrics.metric_names(style, gpus=(0, 1))
        ]
        assert (
            len(keys)
            == len(set(keys))
            == len(PSUTIL_METRICS) + 2 * (len(METRICS) - len(PSUTIL_METRICS))
        )
    assert set(MLFLOW_NAMES) == set(METRICS)
    assert set(AIM_NAMES) <= set(METRICS)


def test_a_callable_naming_style_and_one_that_skips_metrics() -> None:
    run = _run()

    def only_cpu(metric: str, gpu: int | None, rank: int | None) -> Any:
        return ("machine/cpu", {"host": "here"}) if metric == "cpu_percent" else None

    sampler = start_sampler(run, interval=0.1, names=only_cpu)
    _wait_for_samples(sampler, 2)
    sampler.stop()
    run.close()
    assert set(_stored(run)) == {("machine/cpu", (("host", "here"),))}
    with pytest.raises(ValueError, match="unknown system metric naming style 'wandb'"):
        start_sampler(_run(), names="wandb")


def test_per_rank_adds_the_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    run = track_core.start_run(f"memory:{uuid.uuid4().hex}", enabled=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = start_sampler(run, interval=0.1, per_rank=True)
    _wait_for_samples(sampler, 1)
    sampler.stop()
    run.close()
    contexts = {context for _, context in _stored(run)}
    assert contexts == {(("rank", 1),)}
    # it asked for this rank's GPU ("local"): there is none here, and it says so
    assert sampler.gpus == []
    assert "gpu" in sampler.unsampled
    assert any("gpu not sampled" in str(w.message) for w in caught)


def test_without_psutil_it_says_once_what_is_not_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # not installed
    with pytest.warns(
        TrackWarning, match=r"cpu, memory, disk, network not sampled: psutil is not installed"
    ):
        first = start_sampler(_run(), interval=0.1)
    assert "cpu, memory, disk, network" in first.unsampled
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second_run = _run()
        second = start_sampler(second_run, interval=0.1)
        _wait_for_samples(second, 2)
    assert [w for w in caught if issubclass(w.category, TrackWarning)] == []  # once per process
    second.stop()
    first.stop()
    second_run.close()
    assert _stored(second_run) == {}  # nothing to sample without psutil and GPUs


def test_no_gpu_here_is_silent_by_default_and_said_when_asked_for() -> None:
    # nvidia-ml-py is installed; this machine has no NVIDIA driver, so NVML does not start.
    pynvml = pytest.importorskip("pynvml")
    with pytest.raises(pynvml.NVMLError):
        pynvml.nvmlInit()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet = start_sampler(_run(), interval=0.1)
    assert quiet.gpus == [] and "gpu" not in quiet.unsampled
    assert [w for w in caught if issubclass(w.category, TrackWarning)] == []
    quiet.stop()
    with pytest.warns(
        TrackWarning, match="gpu not sampled: NVIDIA's management library did not start"
    ):
        asked = start_sampler(_run(), interval=0.1, gpus=True)
    assert asked.gpus == []
    assert "did not start" in asked.unsampled["gpu"]
    asked.stop()


def test_without_nvidia_ml_py_asking_for_gpus_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.warns(
        TrackWarning, match=r"gpu not sampled: nvidia-ml-py \(pynvml\) is not installed"
    ):
        sampler = start_sampler(_run(), interval=0.1, gpus=[0])
    assert sampler.gpus == []
    sampler.stop()
    off = start_sampler(_run(), interval=0.1, gpus=False)
    assert "gpu" not in off.unsampled
    off.stop()


def test_a_backend_that_refuses_a_name_loses_that_metric_only() -> None:
    class RefusesDunder(MemoryBackend):
        """Like the Aim backend today: names starting with '__' are refused at track()."""

        system_metric_names = "aim"

        def check_sequence(self, name: str, context: Any, kind: Any) -> None:
            if name.startswith("__system__cpu"):
                raise ValueError(f"{name!r} is reserved")

    run = _run(RefusesDunder(memory_store(uuid.uuid4().hex)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = start_sampler(run, interval=0.1)
        _wait_for_samples(sampler, 3)
    sampler.stop()
    run.close()
    names = {name for name, _ in _stored(run)}
    assert "__system__cpu" not in names and "__system__cpu_percent" not in names
    assert "__system__memory_percent" in names
    assert "the backend refused it" in sampler.unsampled["__system__cpu"]
    refused = [w for w in caught if "__system__cpu not sampled" in str(w.message)]
    assert len(refused) == 1


def test_a_run_that_records_nothing_gets_an_idle_sampler() -> None:
    sampler = start_sampler(track_core.start_run("none"), interval=0.1)
    assert not sampler.running
    assert sampler.samples == 0
    sampler.stop()
    closed = _run()
    closed.close()
    assert not start_sampler(closed, interval=0.1).running


@pytest.mark.parametrize(
    ("interval", "error"),
    [
        (0, ValueError),
        (0.05, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (10**6, ValueError),
        ("10", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_bad_intervals_are_refused(interval: Any, error: type[Exception]) -> None:
    run = _run()
    with pytest.raises(error, match="interval"):
        start_sampler(run, interval=interval)
    run.close()


@pytest.mark.parametrize("gpus", ["all", [-1], [True], ["0"]])
def test_bad_gpu_selections_are_refused(gpus: Any) -> None:
    with pytest.raises(ValueError, match=r"(?i)gpu"):
        start_sampler(_run(), interval=0.1, gpus=gpus)


def test_the_sampler_thread_is_a_daemon_and_the_interval_is_kept() -> None:
    run = _run()
    sampler = start_sampler(run, interval=0.25)
    assert sampler._thread is not None and sampler._thread.daemon
    assert sampler.interval == 0.25
    _wait_for_samples(sampler, 3)
    sampler.stop()
    run.close()
    stored = track_core.open_run(run.id, run.backend)
    times = [p.timestamp for p in stored.sequence("system/cpu_percent").points()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and all(gap >= 0.2 for gap in gaps)  # never faster than asked


def test_sample_once_reads_every_psutil_metric() -> None:
    reading = system_metrics.sample_once()
    assert set(reading) == PSUTIL_METRICS
    assert 0.0 <= reading["memory_percent"] <= 100.0


@pytest.mark.parametrize(
    ("option", "interval"),
    [(None, None), (False, None), ("off", None), ("false", None), ("0", None), ("", None),
     (True, 10.0), ("true", 10.0), ("ON", 10.0), ("1", 10.0), (2.5, 2.5), ("2.5", 2.5),
     (30, 30.0)],
)  # fmt: skip
def test_interval_of_reads_the_option(option: Any, interval: float | None) -> None:
    assert system_metrics.interval_of(option) == interval


@pytest.mark.parametrize("option", ["often", "0.01", -3, [1]])
def test_interval_of_refuses_what_is_not_an_interval(option: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"system_metrics|interval"):
        system_metrics.interval_of(option)
