"""Real Detectron2 building blocks shared by the tests (and importable by spawned workers).

A tiny synthetic detection dataset (96x96 black images, one white square each) registered in
Detectron2's ``DatasetCatalog`` / ``MetadataCatalog``, and a Faster R-CNN R50-FPN config from the
model zoo (random weights, CPU) that trains in a few seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGE_SIZE = 96
CLASSES = ["square"]


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

        def load(folder: Path = folder, count: int = count, seed: int = seed) -> list[dict[str, Any]]:
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
        def build_evaluator(cls, cfg: Any, dataset_name: str, output_folder: str | None = None) -> Any:
            output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
            return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)

    return Trainer
