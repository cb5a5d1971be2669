"""Which process is this? Rank helpers that never import torch themselves.

When the user's program has initialized ``torch.distributed``, its rank is used; otherwise the
variables that launchers set (``RANK`` from torchrun / torch.distributed.launch, Slurm, Open MPI,
MPICH/PMI; ``LOCAL_RANK`` last).
"""

from __future__ import annotations

import os
import sys

_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "LOCAL_RANK")
_WORLD_VARIABLES = ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def _initialized_torch_distributed() -> object | None:
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return None
    try:
        if dist.is_available() and dist.is_initialized():
            return dist
    except Exception:  # a half-imported or broken torch must not break tracking
        return None
    return None


def _from_environment(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise ValueError(
                    f"the environment variable {name}={value!r} is not an integer"
                ) from None
    return default


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    dist = _initialized_torch_distributed()
    if dist is not None:
        return int(dist.get_rank())  # type: ignore[attr-defined]
    return _from_environment(_RANK_VARIABLES, 0)


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    dist = _initialized_torch_distributed()
    if dist is not None:
        return int(dist.get_world_size())  # type: ignore[attr-defined]
    return _from_environment(_WORLD_VARIABLES, 1)


def is_main_process() -> bool:
    """True on global rank 0: the one process that should track."""
    return rank() == 0
