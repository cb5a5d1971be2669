"""System metrics: CPU, memory, disk, network and GPUs, sampled in a daemon thread into a run.

    sampler = start_sampler(run, interval=10.0)   # returns at once; samples in its own thread
    ...
    sampler.stop()                                 # or just close the run: the sampler ends too

The sampler never runs on the training thread: it reads the machine's counters in its own thread
and writes each reading through ``run.track(...)``, so the values go through the run's background
writer like any other (and are spooled and retried like any other).

- CPU, memory, disk and network come from ``psutil`` (``pip install "track-core[system]"``),
  GPUs from NVIDIA's management library (``pynvml``, from ``pip install "track-core[gpu]"``).
  What cannot be sampled is said once per process (a ``TrackWarning``) and listed in
  ``Sampler.unsampled``.
- Names: each backend places system metrics where its own UI looks for them. The sampler asks
  the run's backend for a naming style (``backend.system_metric_names``: ``"aim"``,
  ``"mlflow"``, ``"neutral"`` or a callable) and uses ``"neutral"`` when it names none:

  ======================  ===============================  ==========================================
  metric                  ``"aim"`` (context)              ``"mlflow"``
  ======================  ===============================  ==========================================
  process CPU %           ``__system__cpu``                ``system/process_cpu_utilization_percentage``
  CPU % (whole machine)   ``__system__cpu_percent``        ``system/cpu_utilization_percentage``
  GPU utilisation %       ``__system__gpu`` (``gpu: i``)   ``system/gpu_{i}_utilization_percentage``
  ======================  ===============================  ==========================================

  (``METRICS`` below lists every metric; ``AIM_NAMES`` and ``MLFLOW_NAMES`` hold the native names.)
"""

from __future__ import annotations

import importlib
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol

import attrs

from track_core.context import ContextValue
from track_core.errors import RunClosedError, TrackWarning

#: The default interval in seconds (Aim's and MLflow's default too).
DEFAULT_INTERVAL: Final = 10.0
MIN_INTERVAL: Final = 0.1
MAX_INTERVAL: Final = 24 * 60 * 60.0
#: How long after start the first sample is taken (CPU percentages need a window).
FIRST_SAMPLE_AFTER: Final = 0.1

_MB: Final = 1e6  # MLflow's megabytes


@attrs.frozen
class Metric:
    """One system metric: a neutral name, its unit and what it measures."""

    name: str
    unit: str
    description: str
    gpu: bool = False


#: Every metric the sampler can produce, by neutral name.
METRICS: Final[Mapping[str, Metric]] = {
    metric.name: metric
    for metric in (
        Metric("cpu_percent", "%", "CPU utilisation of the whole machine"),
        Metric("process_cpu_percent", "%", "CPU used by this process (over 100 with threads)"),
        Metric("memory_percent", "%", "memory in use on the machine"),
        Metric("memory_used_megabytes", "MB", "memory in use on the machine"),
        Metric("process_memory_percent", "%", "this process's resident memory, of the total"),
        Metric("process_memory_rss_megabytes", "MB", "this process's resident memory"),
        Metric("disk_percent", "%", "disk space used (the disk holding the disk path)"),
        Metric("disk_used_megabytes", "MB", "disk space used"),
        Metric("disk_available_megabytes", "MB", "disk space free"),
        Metric("disk_read_megabytes", "MB", "read from all disks since the sampler started"),
        Metric("disk_write_megabytes", "MB", "written to all disks since the sampler started"),
        Metric("network_receive_megabytes", "MB", "received since the sampler started"),
        Metric("network_transmit_megabytes", "MB", "sent since the sampler started"),
        Metric("gpu_utilization_percent", "%", "GPU busy time", gpu=True),
        Metric("gpu_memory_percent", "%", "GPU memory in use", gpu=True),
        Metric("gpu_memory_used_megabytes", "MB", "GPU memory in use", gpu=True),
        Metric("gpu_temperature_celsius", "°C", "GPU temperature", gpu=True),
        Metric("gpu_power_watts", "W", "GPU power draw", gpu=True),
        Metric("gpu_power_percent", "%", "GPU power draw, of its enforced limit", gpu=True),
    )
}

#: Aim's own names (``aim.ext.resource``: ``__system__`` + these, GPUs in the context
#: ``{"gpu": i}``). Aim's UI labels exactly these ("CPU (%)", "GPU Memory (%)", ...) and shows
#: them in a run's System tab; the other metrics get ``__system__<neutral name>``.
AIM_NAMES: Final[Mapping[str, str]] = {
    "process_cpu_percent": "cpu",
    "memory_percent": "memory_percent",
    "process_memory_percent": "p_memory_percent",
    "disk_percent": "disk_percent",
    "gpu_utilization_percent": "gpu",
    "gpu_memory_percent": "gpu_memory_percent",
    "gpu_temperature_celsius": "gpu_temp",
    "gpu_power_watts": "gpu_power_watts",
}
AIM_PREFIX: Final = "__system__"

#: MLflow's own keys (``mlflow.system_metrics``: ``system/`` + these; ``{i}`` is the GPU).
MLFLOW_NAMES: Final[Mapping[str, str]] = {
    "cpu_percent": "cpu_utilization_percentage",
    "process_cpu_percent": "process_cpu_utilization_percentage",
    "memory_percent": "system_memory_usage_percentage",
    "memory_used_megabytes": "system_memory_usage_megabytes",
    "process_memory_percent": "process_memory_usage_percentage",
    "process_memory_rss_megabytes": "process_memory_usage_megabytes",
    "disk_percent": "disk_usage_percentage",
    "disk_used_megabytes": "disk_usage_megabytes",
    "disk_available_megabytes": "disk_available_megabytes",
    "disk_read_megabytes": "disk_read_megabytes",
    "disk_write_megabytes": "disk_write_megabytes",
    "network_receive_megabytes": "network_receive_megabytes",
    "network_transmit_megabytes": "network_transmit_megabytes",
    "gpu_utilization_percent": "gpu_{i}_utilization_percentage",
    "gpu_memory_percent": "gpu_{i}_memory_usage_percentage",
    "gpu_memory_used_megabytes": "gpu_{i}_memory_usage_megabytes",
    "gpu_temperature_celsius": "gpu_{i}_temperature_celsius",
    "gpu_power_watts": "gpu_{i}_power_usage_watts",
    "gpu_power_percent": "gpu_{i}_power_usage_percentage",
}
MLFLOW_PREFIX: Final = "system/"

#: Where the neutral style puts everything: ``system/<neutral name>``, GPUs in ``{"gpu": i}``.
NEUTRAL_PREFIX: Final = "system/"


class SystemMetricNames(Protocol):
    """A naming style: the ``(sequence name, context)`` a metric is tracked under.

    ``gpu`` is the NVML index of the GPU (None for a machine metric), ``rank`` the process's
    rank when the sampler runs per rank (None otherwise). None: do not track this metric."""

    def __call__(
        self, metric: str, gpu: int | None, rank: int | None
    ) -> tuple[str, dict[str, ContextValue]] | None: ...


def _context(gpu: int | None, rank: int | None) -> dict[str, ContextValue]:
    context: dict[str, ContextValue] = {}
    if rank is not None:
        context["rank"] = rank
    if gpu is not None:
        context["gpu"] = gpu
    return context


def neutral_names(
    metric: str, gpu: int | None, rank: int | None
) -> tuple[str, dict[str, ContextValue]]:
    """``system/cpu_percent``; GPUs and ranks in the context (``{"gpu": 0}``)."""
    return NEUTRAL_PREFIX + metric, _context(gpu, rank)


def aim_names(
    metric: str, gpu: int | None, rank: int | None
) -> tuple[str, dict[str, ContextValue]]:
    """Aim's: ``__system__cpu``, ``__system__gpu`` in ``{"gpu": 0}``; a rank in ``{"rank": r}``
    (as Aim's distributed Hugging Face callback does)."""
    return AIM_PREFIX + AIM_NAMES.get(metric, metric), _context(gpu, rank)


def mlflow_names(
    metric: str, gpu: int | None, rank: int | None
) -> tuple[str, dict[str, ContextValue]]:
    """MLflow's: ``system/cpu_utilization_percentage``, ``system/gpu_0_utilization_percentage``
    (MLflow has no contexts: the GPU is in the key); a rank is a path part, as MLflow's node id
    is (``system/rank_1/...``)."""
    key = MLFLOW_NAMES[metric]
    if gpu is not None:
        key = key.format(i=gpu)
    node = f"rank_{rank}/" if rank is not None else ""
    return f"{MLFLOW_PREFIX}{node}{key}", {}


NAME_STYLES: Final[Mapping[str, SystemMetricNames]] = {
    "neutral": neutral_names,
    "aim": aim_names,
    "mlflow": mlflow_names,
}

NameStyle = str | SystemMetricNames


def names_for(backend: object, style: NameStyle | None = None) -> SystemMetricNames:
    """The naming style to use: ``style`` if given, else the backend's
    ``system_metric_names`` attribute, else ``"neutral"``."""
    chosen: object = style if style is not None else getattr(backend, "system_metric_names", None)
    if chosen is None:
        return neutral_names
    if isinstance(chosen, str):
        try:
            return NAME_STYLES[chosen]
        except KeyError:
            raise ValueError(
                f"unknown system metric naming style {chosen!r}; use one of {sorted(NAME_STYLES)} "
                "or a callable (metric, gpu, rank) -> (name, context)"
            ) from None
    if callable(chosen):
        return chosen
    raise TypeError(f"a system metric naming style must be a str or a callable, got {chosen!r}")


# -- reading the machine ---------------------------------------------------------------------


def _optional_module(name: str) -> Any:
    """The module, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _nvidia_driver_present() -> bool:
    return os.path.exists("/proc/driver/nvidia/version")


Readings = list[tuple[str, int | None, float]]  # (metric, gpu index or None, value)

GpuSelection = bool | Literal["local"] | Sequence[int] | None


def local_gpu_indices() -> list[int]:
    """The NVML index of this process's GPU: ``LOCAL_RANK`` (default 0), mapped through
    ``CUDA_VISIBLE_DEVICES`` when that lists indices."""
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible:
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        if local < len(entries) and entries[local].isdigit():
            return [int(entries[local])]
        if local < len(entries):
            raise ValueError(
                f"CUDA_VISIBLE_DEVICES={visible!r} names GPUs by UUID; pass gpus=[index, ...] "
                "(NVML indices) to sample per rank"
            )
    return [local]


class _Probe:
    """Reads the counters. Made and used in the sampler's thread only."""

    def __init__(self, gpus: GpuSelection, disk_path: str, unsampled: dict[str, str]) -> None:
        self._unsampled = unsampled
        self._disk_path = disk_path
        self._psutil = _optional_module("psutil")
        self._process: Any = None
        self._io_start: dict[str, float] = {}
        if self._psutil is None:
            unsampled["cpu, memory, disk, network"] = (
                "psutil is not installed (pip install 'track-core[system]')"
            )
        self._nvml: Any = None
        self._handles: list[tuple[int, Any]] = []
        self._unsupported: set[tuple[int, str]] = set()
        if gpus is not False:
            self._open_gpus(gpus)

    def _open_gpus(self, gpus: GpuSelection) -> None:
        asked = gpus is not None  # None: whatever the machine has, silently none without GPUs
        nvml = _optional_module("pynvml")
        if nvml is None:
            if asked or _nvidia_driver_present():
                self._unsampled["gpu"] = (
                    "nvidia-ml-py (pynvml) is not installed (pip install 'track-core[gpu]')"
                )
            return
        try:
            nvml.nvmlInit()
        except Exception as error:  # NVMLError: no driver, no device
            if asked or _nvidia_driver_present():
                self._unsampled["gpu"] = f"NVIDIA's management library did not start: {error}"
            return
        self._nvml = nvml
        try:
            count = int(nvml.nvmlDeviceGetCount())
            if gpus is None or gpus is True:
                indices = list(range(count))
            elif gpus == "local":
                indices = local_gpu_indices()
            else:
                indices = list(gpus)  # type: ignore[arg-type]
            for index in indices:
                if not 0 <= index < count:
                    self._unsampled[f"gpu {index}"] = f"no such GPU (this machine has {count})"
                    continue
                self._handles.append((index, nvml.nvmlDeviceGetHandleByIndex(index)))
        except Exception as error:
            self._unsampled["gpu"] = f"NVIDIA's management library failed: {error}"
            self._handles = []
        if not self._handles and asked and "gpu" not in self._unsampled:
            self._unsampled["gpu"] = "no GPU found"

    @property
    def gpu_indices(self) -> list[int]:
        return [index for index, _ in self._handles]

    def prime(self) -> None:
        """Start the CPU windows and the I/O counters (the first readings are relative)."""
        ps = self._psutil
        if ps is None:
            return
        try:
            self._process = ps.Process()
            self._process.cpu_percent(None)
        except Exception as error:
            self._unsampled["process cpu, process memory"] = (
                f"psutil cannot read this process: {error}"
            )
            self._process = None
        ps.cpu_percent(None)
        self._io_start = self._io_counters()

    def _io_counters(self) -> dict[str, float]:
        ps = self._psutil
        counters: dict[str, float] = {}
        try:
            disk = ps.disk_io_counters()
        except Exception:
            disk = None
        if disk is None:
            self._unsampled.setdefault("disk i/o", "psutil reads no disk I/O counters here")
        else:
            counters["disk_read_megabytes"] = disk.read_bytes / _MB
            counters["disk_write_megabytes"] = disk.write_bytes / _MB
        try:
            net = ps.net_io_counters()
        except Exception:
            net = None
        if net is None:
            self._unsampled.setdefault("network i/o", "psutil reads no network counters here")
        else:
            counters["network_receive_megabytes"] = net.bytes_recv / _MB
            counters["network_transmit_megabytes"] = net.bytes_sent / _MB
        return counters

    def read(self) -> Readings:
        readings: Readings = []
        ps = self._psutil
        if ps is not None:
            readings.append(("cpu_percent", None, float(ps.cpu_percent(None))))
            memory = ps.virtual_memory()
            readings.append(("memory_percent", None, memory.used * 100.0 / memory.total))
            readings.append(("memory_used_megabytes", None, memory.used / _MB))
            process = self._process
            if process is not None:
                try:
                    with process.oneshot():
                        cpu = float(process.cpu_percent(None))
                        rss = float(process.memory_info().rss)
                    readings.append(("process_cpu_percent", None, cpu))
                    readings.append(("process_memory_percent", None, rss * 100.0 / memory.total))
                    readings.append(("process_memory_rss_megabytes", None, rss / _MB))
                except Exception as error:
                    self._unsampled["process cpu, process memory"] = f"psutil: {error}"
                    self._process = None
            try:
                disk = ps.disk_usage(self._disk_path)
                readings.append(("disk_percent", None, float(disk.percent)))
                readings.append(("disk_used_megabytes", None, disk.used / _MB))
                readings.append(("disk_available_megabytes", None, disk.free / _MB))
            except OSError as error:
                self._unsampled.setdefault("disk usage", f"{self._disk_path}: {error}")
            now = self._io_counters()
            for metric, value in now.items():
                start = self._io_start.setdefault(metric, value)
                readings.append((metric, None, value - start))
        for index, handle in self._handles:
            readings.extend(self._read_gpu(index, handle))
        return readings

    def _read_gpu(self, index: int, handle: Any) -> Readings:
        nvml = self._nvml
        readings: Readings = []

        def field(what: str, read: Callable[[], list[tuple[str, float]]]) -> None:
            if (index, what) in self._unsupported:
                return
            try:
                for metric, value in read():
                    readings.append((metric, index, float(value)))
            except Exception as error:  # NVMLError_NotSupported and the like: stop asking
                self._unsupported.add((index, what))
                self._unsampled[f"gpu {index} {what}"] = str(error) or type(error).__name__

        def utilization() -> list[tuple[str, float]]:
            return [("gpu_utilization_percent", nvml.nvmlDeviceGetUtilizationRates(handle).gpu)]

        def memory() -> list[tuple[str, float]]:
            info = nvml.nvmlDeviceGetMemoryInfo(handle)
            return [
                ("gpu_memory_percent", info.used * 100.0 / info.total),
                ("gpu_memory_used_megabytes", info.used / _MB),
            ]

        def temperature() -> list[tuple[str, float]]:
            return [
                (
                    "gpu_temperature_celsius",
                    nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
                )
            ]

        def power() -> list[tuple[str, float]]:
            milliwatts = nvml.nvmlDeviceGetPowerUsage(handle)
            limit = nvml.nvmlDeviceGetEnforcedPowerLimit(handle)
            values = [("gpu_power_watts", milliwatts / 1000.0)]
            if limit:
                values.append(("gpu_power_percent", milliwatts * 100.0 / limit))
            return values

        field("utilization", utilization)
        field("memory", memory)
        field("temperature", temperature)
        field("power", power)
        return readings

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None


# -- the sampler -----------------------------------------------------------------------------

_warned_lock = threading.Lock()
_warned: set[str] = set()


def _warn_once(key: str, message: str, stacklevel: int = 2) -> None:
    """Warn once per process for each ``key``."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, TrackWarning, stacklevel=stacklevel + 1)


def check_interval(interval: object) -> float:
    """Seconds between samples: a finite number from 0.1 to 86400."""
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(f"a system metrics interval must be a number of seconds, got {interval!r}")
    seconds = float(interval)
    if not math.isfinite(seconds) or not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise ValueError(
            f"a system metrics interval must be {MIN_INTERVAL} to {MAX_INTERVAL:.0f} seconds, "
            f"got {interval!r}"
        )
    return seconds


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off", "none"})


def interval_of(option: object) -> float | None:
    """The sampling interval an option asks for, or None for no sampler.

    For ``start_run(..., system_metrics=...)``, the backend string's ``system_metrics=`` and
    ``$TRACK_SYSTEM_METRICS``: None/False/"false"/"off"/"0" is off, True/"true"/"on"/"1" is the
    default interval (10 s), and a number of seconds (``2.5``, ``"2.5"``) is that interval."""
    if option is None or option is False:
        return None
    if option is True:
        return DEFAULT_INTERVAL
    if isinstance(option, str):
        text = option.strip().lower()
        if text in _FALSE:
            return None
        if text in _TRUE:
            return DEFAULT_INTERVAL
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(
                f"system_metrics must be true, false or a number of seconds, got {option!r}"
            ) from None
        return check_interval(seconds)
    return check_interval(option)


class Sampler:
    """Samples system metrics into a run from a daemon thread. Made by ``start_sampler``."""

    def __init__(
        self,
        run: Any,
        interval: float,
        *,
        gpus: GpuSelection,
        rank: int | None,
        names: SystemMetricNames,
        disk_path: str,
    ) -> None:
        self._run = run
        self._interval = interval
        self._gpus = gpus
        self._rank = rank
        self._names = names
        self._disk_path = disk_path
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._unsampled: dict[str, str] = {}
        self._keys: dict[tuple[str, int | None], tuple[str, dict[str, ContextValue]] | None] = {}
        self._gpu_indices: list[int] = []
        self.samples = 0
        """Samples written so far."""
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="track-system-metrics", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)  # the probe is set up: ``unsampled`` is known
        self._say_unsampled(stacklevel=3)  # on the caller's thread, pointing at its code

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def unsampled(self) -> Mapping[str, str]:
        """What is not sampled, and why (``{"gpu": "nvidia-ml-py ... is not installed"}``)."""
        return dict(self._unsampled)

    @property
    def gpus(self) -> list[int]:
        """The NVML indices of the GPUs sampled."""
        return list(self._gpu_indices)

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop sampling (idempotent). Waits at most ``timeout`` s for a sample being written."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _main(self) -> None:
        probe: _Probe | None = None
        try:
            probe = _Probe(self._gpus, self._disk_path, self._unsampled)
            self._gpu_indices = probe.gpu_indices
            probe.prime()
            self._ready.set()
            if self._stop.wait(min(FIRST_SAMPLE_AFTER, self._interval)):
                return
            while not self._run_closed():
                if not self._write(probe.read()):
                    return
                self.samples += 1
                self._say_unsampled()
                if self._stop.wait(self._interval):
                    return
        except Exception as error:  # never let the sampler die with a traceback on stderr
            _warn_once(
                f"failed:{type(error).__name__}",
                f"track: system metrics stopped: {type(error).__name__}: {error}",
            )
        finally:
            self._ready.set()
            if probe is not None:
                probe.close()

    def _run_closed(self) -> bool:
        return bool(getattr(self._run, "closed", False))

    def _say_unsampled(self, stacklevel: int = 2) -> None:
        for what, why in list(self._unsampled.items()):
            _warn_once(
                f"unsampled:{what}:{why}",
                f"track: system metrics: {what} not sampled: {why}",
                stacklevel + 1,
            )

    def _key(self, metric: str, gpu: int | None) -> tuple[str, dict[str, ContextValue]] | None:
        try:
            return self._keys[metric, gpu]
        except KeyError:
            key: tuple[str, dict[str, ContextValue]] | None = self._names(metric, gpu, self._rank)
            self._keys[metric, gpu] = key
            return key

    def _write(self, readings: Readings) -> bool:
        """Track one sample; False once the run is closed."""
        track = self._run.track
        for metric, gpu, value in readings:
            key = self._key(metric, gpu)
            if key is None:
                continue
            name, context = key
            try:
                track(value, name, context=context)
            except RunClosedError:
                return False
            except (TypeError, ValueError) as error:  # the backend refuses this name for good
                self._keys[metric, gpu] = None
                self._unsampled[name] = f"the backend refused it: {error}"
        return True


class _IdleSampler(Sampler):
    """What ``start_sampler`` returns for a run that records nothing (a NoOpRun)."""

    def _start(self) -> None:
        pass


def start_sampler(
    run: Any,
    interval: float = DEFAULT_INTERVAL,
    *,
    gpus: GpuSelection = None,
    per_rank: bool = False,
    names: NameStyle | None = None,
    disk_path: str | None = None,
) -> Sampler:
    """Sample system metrics into ``run`` every ``interval`` seconds, from a daemon thread.

    ``gpus``: None samples every NVIDIA GPU the machine has (none, silently, without GPUs),
    True the same but says when there are none, False none, ``"local"`` this rank's GPU
    (``LOCAL_RANK`` through ``CUDA_VISIBLE_DEVICES``), a list the given NVML indices.
    ``per_rank=True`` adds this process's rank to every metric (an Aim context ``{"rank": r}``,
    an MLflow key ``system/rank_r/...``) and samples only this rank's GPU unless ``gpus`` says
    otherwise: for runs started on every rank (``start_run(..., enabled=True)``).
    ``names``: a naming style (``"aim"``, ``"mlflow"``, ``"neutral"`` or a callable), default the
    backend's own. ``disk_path``: the disk whose usage is sampled (default the root).

    The sampler stops when the run closes or at ``stop()``. A run that records nothing (a
    ``NoOpRun``: tracking off, or not rank 0) gets a sampler that never starts.
    """
    seconds = check_interval(interval)
    if gpus is not None and not isinstance(gpus, (bool, str)):
        gpus = [_gpu_index(index) for index in gpus]
    elif isinstance(gpus, str) and gpus != "local":
        raise ValueError(f"gpus must be None, True, False, 'local' or NVML indices, got {gpus!r}")
    rank: int | None = None
    if per_rank:
        from track_core.distributed import rank as current_rank

        rank = current_rank()
        if gpus is None:
            gpus = "local"
    style = names_for(getattr(run, "backend", None), names)
    recording = getattr(run, "recording", True)
    cls = Sampler if recording and not getattr(run, "closed", False) else _IdleSampler
    sampler = cls(
        run,
        seconds,
        gpus=gpus,
        rank=rank,
        names=style,
        disk_path=disk_path if disk_path is not None else os.path.abspath(os.sep),
    )
    sampler._start()
    return sampler


def _gpu_index(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a GPU index must be an int >= 0, got {value!r}")
    return value


def sample_once(gpus: GpuSelection = None, disk_path: str | None = None) -> dict[str, float]:
    """One reading of every metric, by neutral name (``gpu_memory_percent/0`` for GPUs), taken
    on the calling thread; for looking at what the sampler would write."""
    unsampled: dict[str, str] = {}
    probe = _Probe(gpus, disk_path or os.path.abspath(os.sep), unsampled)
    try:
        probe.prime()
        time.sleep(FIRST_SAMPLE_AFTER)
        return {
            (metric if gpu is None else f"{metric}/{gpu}"): value
            for metric, gpu, value in probe.read()
        }
    finally:
        probe.close()


def metric_names(
    style: NameStyle, gpus: Iterable[int] = (0,), rank: int | None = None
) -> list[tuple[str, dict[str, ContextValue]]]:
    """Every ``(name, context)`` a style gives, for the GPUs ``gpus``: what to expect in a run
    (a style's None, a metric it skips, is left out)."""
    chosen = names_for(None, style)
    keys = []
    for metric in METRICS.values():
        for gpu in list(gpus) if metric.gpu else [None]:
            key = chosen(metric.name, gpu, rank)
            if key is not None:
                keys.append(key)
    return keys
