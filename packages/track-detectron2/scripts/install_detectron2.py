#!/usr/bin/env python3
"""Install Detectron2 v0.6 (Python sources only) into the current environment, from PyPI.

Detectron2 is not published on PyPI under its own name.  ``pb1-detectron2==0.6`` is an sdist of
Detectron2 v0.6 whose Python sources (engine, hooks, events, config, model-zoo configs, modeling,
evaluation, ...) are complete, but whose C++/CUDA sources (``detectron2/layers/csrc``) are missing,
so ``pip install pb1-detectron2`` fails while compiling the extension.

This script, stdlib only, for the interpreter that runs it:

1. ``pip download``s the ``pb1-detectron2==0.6`` sdist (no dependencies, no binaries);
2. extracts the ``detectron2`` package from it, including ``detectron2/model_zoo/configs/**`` (the
   YAML/py model-zoo configs that ``detectron2.model_zoo.get_config_file`` resolves), into
   ``sysconfig.get_paths()["purelib"]`` (or ``--target``);
3. adds a placeholder ``detectron2/_C.py`` for the compiled ops (see ``_PLACEHOLDER_C`` below);
4. writes ``detectron2-0.6.dist-info`` (METADATA, INSTALLER, top_level.txt, RECORD) so that
   ``importlib.metadata.version("detectron2") == "0.6"`` and ``pip uninstall detectron2`` works.

It is idempotent: when this script's install is already complete it does nothing (``--force``
reinstalls).  An install of Detectron2 made by other means (e.g. a real build from source) is
left untouched.

It installs Detectron2 only.  Its runtime dependencies are expected in the environment already
(they are Hatch environment dependencies of track-detectron2's test environment):
``torch torchvision "Pillow<10" "setuptools<81" "fvcore>=0.1.5,<0.1.6" "iopath>=0.1.7,<0.1.10"
yacs tabulate termcolor cloudpickle tqdm matplotlib pycocotools "omegaconf>=2.1" "hydra-core>=1.1"
tensorboard opencv-python-headless``.  The sdist is fetched from the package index's simple
API (``$PIP_INDEX_URL``, default PyPI) and checked against a pinned sha256; nothing of it is
built or run.

Usage::

    python packages/track-detectron2/scripts/install_detectron2.py [--force] [--sdist FILE]
        [--target DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import json
import os
import shutil
import sysconfig
import tarfile
import tempfile
import urllib.request
from pathlib import Path

SDIST_REQUIREMENT = "pb1-detectron2==0.6"
SDIST_TOP = "pb1-detectron2-0.6"
NAME = "detectron2"
VERSION = "0.6"
INSTALLER = "track-detectron2-install-script"
DIST_INFO = f"{NAME}-{VERSION}.dist-info"

# Runtime requirements recorded in METADATA (so `pip check` is meaningful).  `black`, `future` and
# `pydot` from the original setup.py are left out: nothing on a training/evaluation path imports
# them (black only formats `LazyConfig.to_py` output).
REQUIRES_DIST = (
    "Pillow>=7.1",
    "matplotlib",
    "pycocotools>=2.0.2",
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "tensorboard",
    "fvcore<0.1.6,>=0.1.5",
    "iopath<0.1.10,>=0.1.7",
    "omegaconf>=2.1",
    "hydra-core>=1.1",
)

# The compiled module `detectron2._C` cannot be built: the pb1-detectron2 sdist does not contain
# `detectron2/layers/csrc`.  It is imported (but not called) when these modules load:
# layers/deform_conv.py, layers/rotated_boxes.py, layers/roi_align_rotated.py and
# evaluation/fast_eval_api.py.  Nothing on the path of a standard Faster R-CNN training run, its
# hooks, event writers, or `COCOEvaluator(..., use_fast_impl=False)` calls into it, so an importable
# placeholder is enough there.  Calling a compiled op (deformable conv, rotated boxes / ROIAlign,
# COCOEvaluator's fast C++ evaluation) fails with an AttributeError that says why.
_PLACEHOLDER_C = '''\
"""Placeholder for Detectron2's compiled ops (written by install_detectron2.py).

The pb1-detectron2==0.6 sdist on PyPI lacks the C++/CUDA sources (detectron2/layers/csrc), so the
extension cannot be built.  Nothing on the path of a standard Faster R-CNN training run or of
COCOEvaluator(..., use_fast_impl=False) calls into this module; deformable convolutions, rotated
boxes / ROIAlignRotated and the fast C++ COCO evaluation need a real build of Detectron2.
"""

PLACEHOLDER = True


def get_compiler_version() -> str:
    return "not built (placeholder detectron2._C, sources without csrc)"


def get_cuda_version() -> str:
    return "not built (placeholder detectron2._C, sources without csrc)"


def has_cuda() -> bool:
    return False


def __getattr__(name: str):
    raise AttributeError(
        f"detectron2._C.{name} is not available: this Detectron2 was installed from the "
        "pb1-detectron2 sdist, which has no C++ sources, so the compiled ops were not built. "
        "Use COCOEvaluator(..., use_fast_impl=False) and avoid deformable/rotated ops, or "
        "build Detectron2 from its source repository."
    )
'''


def _log(msg: str) -> None:
    print(f"[install_detectron2] {msg}", flush=True)


def _record_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _our_install_is_complete(target: Path) -> bool:
    dist_info = target / DIST_INFO
    installer = dist_info / "INSTALLER"
    record = dist_info / "RECORD"
    if not (installer.is_file() and record.is_file()):
        return False
    if installer.read_text().strip() != INSTALLER:
        return False
    for line in record.read_text().splitlines():
        rel = line.rsplit(",", 2)[0]
        if rel and not (target / rel).exists():
            return False
    return (target / NAME / "_C.py").is_file()


def _foreign_install(target: Path) -> str | None:
    """Describe a Detectron2 installed by something else than this script, if any."""
    for dist in importlib.metadata.distributions(path=[str(target)]):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in ("detectron2", "pb1-detectron2"):
            installer = (dist.read_text("INSTALLER") or "").strip()
            if installer != INSTALLER:
                return f"{dist.metadata['Name']} {dist.version} (installer: {installer or '?'})"
    return None


SDIST_FILENAME = "pb1-detectron2-0.6.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"


def _download_sdist(dest: Path) -> Path:
    """Fetch the sdist through PyPI's simple index (JSON form) and check its pinned sha256.

    Not ``pip download``: pip prepares the sdist's metadata, and pip >= 25 refuses it because
    one of its extras names a direct URL dependency.
    """
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(
        f"{index}/pb1-detectron2/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    _log(f"looking up {SDIST_FILENAME} in {index}")
    with urllib.request.urlopen(request, timeout=60) as reply:
        files = json.load(reply)["files"]
    [entry] = [f for f in files if f["filename"] == SDIST_FILENAME]
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / SDIST_FILENAME
    with urllib.request.urlopen(entry["url"], timeout=300) as reply:
        data = reply.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{SDIST_FILENAME}: sha256 {digest} is not the pinned {SDIST_SHA256}")
    target.write_bytes(data)
    return target


def _extract_package(sdist: Path, staging: Path) -> None:
    prefix = f"{SDIST_TOP}/{NAME}/"
    with tarfile.open(sdist, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(prefix):
                continue
            if not (member.isfile() or member.isdir()):
                continue  # no links or devices from an archive
            if member.name.endswith((".pyc", ".so")) or "/__pycache__/" in member.name:
                continue
            member.name = member.name[len(f"{SDIST_TOP}/") :]
            members.append(member)
        if not any(m.name == f"{NAME}/__init__.py" for m in members):
            raise SystemExit(f"{sdist} does not contain {NAME}/__init__.py")
        if not any(m.name.startswith(f"{NAME}/model_zoo/configs/") for m in members):
            raise SystemExit(f"{sdist} does not contain the model-zoo configs")
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(staging, members=members, **kwargs)


def _write_dist_info(target: Path) -> None:
    dist_info = target / DIST_INFO
    if dist_info.exists():
        shutil.rmtree(dist_info)
    dist_info.mkdir()
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {NAME}",
        f"Version: {VERSION}",
        "Summary: Detectron2 v0.6 Python sources from the pb1-detectron2 sdist "
        "(compiled ops not built)",
        "Home-page: https://github.com/facebookresearch/detectron2",
        "Author: FAIR",
        "License: Apache-2.0",
        "Requires-Python: >=3.6",
        *(f"Requires-Dist: {req}" for req in REQUIRES_DIST),
        "",
    ]
    (dist_info / "METADATA").write_text("\n".join(metadata))
    (dist_info / "INSTALLER").write_text(INSTALLER + "\n")
    (dist_info / "top_level.txt").write_text(NAME + "\n")
    rows = []
    for path in sorted((target / NAME).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(target).as_posix()
            rows.append(f"{rel},{_record_hash(path)},{path.stat().st_size}")
    for name in ("METADATA", "INSTALLER", "top_level.txt"):
        path = dist_info / name
        rows.append(f"{DIST_INFO}/{name},{_record_hash(path)},{path.stat().st_size}")
    rows.append(f"{DIST_INFO}/RECORD,,")
    (dist_info / "RECORD").write_text("\n".join(rows) + "\n")


def install(target: Path, sdist: Path | None = None, force: bool = False) -> bool:
    """Install Detectron2 into ``target``; return False when there was nothing to do."""
    target.mkdir(parents=True, exist_ok=True)
    if not force and _our_install_is_complete(target):
        _log(f"detectron2 {VERSION} already installed in {target} (use --force to reinstall)")
        return False
    foreign = _foreign_install(target)
    if foreign and not force:
        _log(f"{foreign} is already installed in {target}; leaving it alone (--force overrides)")
        return False
    with tempfile.TemporaryDirectory(prefix="install-detectron2-") as tmp:
        tmp_path = Path(tmp)
        if sdist is None:
            sdist = _download_sdist(tmp_path / "download")
        # Stage next to the destination so that the final move is a rename on one filesystem.
        staging = Path(tempfile.mkdtemp(prefix=".detectron2-staging-", dir=target))
        try:
            _extract_package(sdist, staging)
            (staging / NAME / "_C.py").write_text(_PLACEHOLDER_C)
            dest = target / NAME
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(staging / NAME, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _write_dist_info(target)
    _log(f"installed detectron2 {VERSION} (Python sources, placeholder _C) into {target}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target",
        type=Path,
        default=Path(sysconfig.get_paths()["purelib"]),
        help="site-packages to install into (default: this interpreter's purelib)",
    )
    parser.add_argument(
        "--sdist", type=Path, default=None, help="use this pb1-detectron2-0.6.tar.gz, no download"
    )
    parser.add_argument("--force", action="store_true", help="reinstall even if present")
    args = parser.parse_args(argv)
    install(args.target, sdist=args.sdist, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
