"""Real Detectron2 building blocks shared by the tests (and importable by spawned workers).

A tiny synthetic detection dataset (96x96 black images, one white square each) registered in
Detectron2's ``DatasetCatalog`` / ``MetadataCatalog``, and a Faster R-CNN R50-FPN config from the
model zoo (random weights, CPU) that trains in a few seconds.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGE_SIZE = 96
CLASSES = ["square"]


def same_value(a: float, b: float) -> bool:
    """Equal, with NaN equal to NaN (an evaluator's AP is NaN when the model finds nothing)."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def make_square_images(root: Path, count: int, seed: int) -> list[dict[str, Any]]:
    """Write ``count`` PNGs of a white square on black under ``root``; return Detectron2 dicts."""
    from detectron2.structures import BoxMode

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(count):
        side = int(rng.integers(20, 48))
        x0 = int(rng.integers(0, IMAGE_SIZE - side))
        y0 = int(rng.integers(0, IMAGE_SIZE - side))
        image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        image[y0 : y0 + side, x0 : x0 + side] = 255
        path = root / f"{i:03d}.png"
        if not path.exists():
            Image.fromarray(image).save(path)
        records.append(
            {
                "file_name": str(path),
                "image_id": i,
                "height": IMAGE_SIZE,
                "width": IMAGE_SIZE,
                "annotations": [
                    {
                        "bbox": [x0, y0, side, side],
                        "bbox_mode": BoxMode.XYWH_ABS,
                        "category_id": 0,
                        "iscrowd": 0,
                    }
                ],
            }
        )
    return records


def register_squares(root: Path, prefix: str = "track_squares") -> tuple[str, str]:
    """Register ``<prefix>_train`` (8 images) and ``<prefix>_val`` (4 images); idempotent."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = (f"{prefix}_train", f"{prefix}_val")
    for name, count, seed in ((names[0], 8, 0), (names[1], 4, 1)):
        if name in DatasetCatalog.list():
            continue
        folder = root / name

        def load(
            folder: Path = folder, count: int = count, seed: int = seed
        ) -> list[dict[str, Any]]:
            return make_square_images(folder, count, seed)

        load()  # write the files now, in the registering process
        DatasetCatalog.register(name, load)
        MetadataCatalog.get(name).set(thing_classes=list(CLASSES), evaluator_type="coco")
    return names


def faster_rcnn_cfg(
    output_dir: Path | str,
    datasets: tuple[str, str],
    *,
    base_lr: float = 1e-5,
    max_iter: int = 4,
    eval_period: int = 2,
) -> Any:
    """Faster R-CNN R50-FPN from the model zoo, random weights, on CPU, sized for 96x96 images."""
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(CLASSES)
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 64
    cfg.DATASETS.TRAIN = (datasets[0],)
    cfg.DATASETS.TEST = (datasets[1],)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TRAIN = (IMAGE_SIZE,)
    cfg.INPUT.MAX_SIZE_TRAIN = IMAGE_SIZE * 2
    cfg.INPUT.MIN_SIZE_TEST = IMAGE_SIZE
    cfg.INPUT.MAX_SIZE_TEST = IMAGE_SIZE * 2
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.BASE_LR = base_lr
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.STEPS = ()
    cfg.SOLVER.CHECKPOINT_PERIOD = 100000
    cfg.TEST.EVAL_PERIOD = eval_period
    cfg.OUTPUT_DIR = str(output_dir)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    return cfg


def trainer_class() -> type:
    """``DefaultTrainer`` with a ``COCOEvaluator(use_fast_impl=False)`` (no compiled ops)."""
    from detectron2.engine import DefaultTrainer
    from detectron2.evaluation import COCOEvaluator

    class Trainer(DefaultTrainer):  # type: ignore[misc]
        @classmethod
        def build_evaluator(
            cls, cfg: Any, dataset_name: str, output_folder: str | None = None
        ) -> Any:
            output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
            return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)

    return Trainer


# -- a backend wrapper that counts what reaches the backend -----------------------------------


class _CountingWriter:
    """Delegates to a real RunWriter; counts points per (name, context, step)."""

    def __init__(
        self, inner: Any, counts: dict[tuple[Any, ...], int], log_dir: Path | None
    ) -> None:
        self._inner = inner
        self._counts = counts
        self._log_dir = log_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def id(self) -> str:
        return str(self._inner.id)

    def write_points(self, points: Any) -> None:
        self._inner.write_points(points)
        for p in points:
            key = (p.name, p.context, p.step)
            self._counts[key] = self._counts.get(key, 0) + 1

    def close(self, status: Any, error: str | None) -> None:
        self._inner.close(status, error)
        if self._log_dir is not None:
            _record(
                self._log_dir,
                f"close-{self.id}",
                {"status": status.value, "error": error, "points": sum(self._counts.values())},
            )


def _record(log_dir: Path, stem: str, data: dict[str, Any]) -> None:
    import json

    from track_core import distributed

    data = dict(data, pid=os.getpid(), rank=distributed.rank())
    (log_dir / f"{stem}-pid{os.getpid()}.json").write_text(json.dumps(data))


class RecordingBackend:
    """A real track backend (the memory backend) that counts every point written, and, with
    ``log_dir``, leaves one file per created run there: visible across processes."""

    def __init__(self, location: str = "default", log_dir: Path | None = None) -> None:
        import track_core as track

        self._inner = track.get_backend(f"memory:{location}")
        self.counts: dict[tuple[Any, ...], int] = {}
        self._log_dir = log_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        return str(self._inner.name)

    @property
    def location(self) -> str:
        return str(self._inner.location)

    @property
    def capabilities(self) -> Any:
        return self._inner.capabilities

    def create_run(self, spec: Any) -> Any:
        writer = self._inner.create_run(spec)
        if self._log_dir is not None:
            _record(self._log_dir, f"run-{writer.id}", {"name": spec.name})
        return _CountingWriter(writer, self.counts, self._log_dir)

    def resume_run(self, run_id: str) -> Any:
        return _CountingWriter(self._inner.resume_run(run_id), self.counts, self._log_dir)


# -- two processes on CPU -------------------------------------------------------------------


def launch_supports_cpu() -> bool:
    """Detectron2 v0.6's ``launch`` asserts CUDA and uses NCCL; later versions fall back to gloo."""
    import importlib
    import inspect

    launch_module = importlib.import_module("detectron2.engine.launch")

    return "GLOO" in inspect.getsource(launch_module._distributed_worker).upper()


def _gloo_worker(
    local_rank: int, main_func: Any, world_size: int, port: int, args: tuple[Any, ...]
) -> None:
    # Mirrors detectron2.engine.launch._distributed_worker, with gloo and without CUDA.
    import torch.distributed as dist
    from detectron2.utils import comm

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=world_size, rank=local_rank
    )
    comm._LOCAL_PROCESS_GROUP = dist.new_group(list(range(world_size)))
    comm.synchronize()
    try:
        main_func(*args)
        # rank 0 hosts the TCP store: no rank may tear it down while another still talks to it
        comm.synchronize()
    finally:
        dist.destroy_process_group()


def cpu_launch(main_func: Any, num_processes: int, args: tuple[Any, ...] = ()) -> None:
    """``detectron2.engine.launch(main_func, num_processes, dist_url="auto")`` on CPU (gloo)."""
    if launch_supports_cpu():
        from detectron2.engine import launch

        launch(main_func, num_processes, dist_url="auto", args=args)
        return
    import importlib

    import torch.multiprocessing as mp

    _find_free_port = importlib.import_module("detectron2.engine.launch")._find_free_port

    mp.spawn(
        _gloo_worker,
        nprocs=num_processes,
        args=(main_func, num_processes, _find_free_port(), args),
        daemon=False,
    )


def ddp_train_worker(output_dir: str, log_dir: str, max_iter: int) -> None:
    """One rank of a 2-process training: a small model in DDP (CPU), ``SimpleTrainer``, Detectron2's
    writer hooks on the main process, and ``TrackHook`` on every rank, as users add it."""
    from detectron2.engine import SimpleTrainer, hooks
    from detectron2.engine.defaults import default_writers
    from detectron2.utils import comm
    from torch.nn.parallel import DistributedDataParallel

    from track_detectron2 import TrackHook

    torch.manual_seed(0)
    model = DistributedDataParallel(SmallModel())  # CPU module: no device_ids
    data = synthetic_batches(seed=comm.get_rank())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = SimpleTrainer(model, data, optimizer)
    hook = TrackHook(
        backend=RecordingBackend("ddp", Path(log_dir)),
        run_name="ddp",
        output_dir=output_dir,
        config={"world_size": comm.get_world_size(), "max_iter": max_iter},
        write_period=2,
    )
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.PeriodicWriter(default_writers(output_dir, max_iter), period=2)
            if comm.is_main_process()
            else None,
            hook,
        ]
    )
    trainer.train(0, max_iter)
    _record(
        Path(log_dir),
        f"done-rank{comm.get_rank()}",
        {"hook_run": type(hook.run).__name__ if hook.run is not None else None},
    )


# -- a small model for SimpleTrainer ------------------------------------------------------------


class SmallModel(torch.nn.Module):
    """An MLP whose forward returns a dict of ``n_losses`` losses (what SimpleTrainer sums)."""

    def __init__(self, n_losses: int = 4, width: int = 64) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(32, width), torch.nn.ReLU(), torch.nn.Linear(width, n_losses)
        )
        self.n_losses = n_losses

    def forward(self, batch: Any) -> dict[str, Any]:
        x, y = batch
        out = self.body(x)
        return {f"loss_{i}": ((out[:, i] - y[:, i]) ** 2).mean() for i in range(self.n_losses)}


def synthetic_batches(seed: int = 0, n_losses: int = 4, batch: int = 16) -> Any:
    """An endless iterator of (x, y) batches."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(64, batch, 32, generator=g)
    ys = torch.randn(64, batch, n_losses, generator=g)

    def gen() -> Any:
        while True:
            yield from zip(xs, ys, strict=False)

    return gen()
