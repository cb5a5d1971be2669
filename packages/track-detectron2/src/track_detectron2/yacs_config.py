"""The yacs config class ``add_track_config`` gives a Detectron2 ``get_cfg()`` config.

``default_setup`` writes ``cfg.dump()`` to ``OUTPUT_DIR/config.yaml``, and that file is loaded
again with ``get_cfg().merge_from_file(...)`` (``--eval-only``, ``demo.py``), which refuses keys
that the default config does not have: a ``TRACK`` node in it would make the file unloadable
without ``add_track_config(cfg)`` first. So the config's ``dump()`` leaves ``TRACK`` out; the
node is still there for everything else (``cfg.TRACK.BACKEND``, ``merge_from_list``, ``clone``).
"""

from __future__ import annotations

from typing import Any

from detectron2.config import CfgNode  # type: ignore[import-untyped]

TRACK_KEY = "TRACK"


class TrackedCfgNode(CfgNode):  # type: ignore[misc]
    """A Detectron2 ``CfgNode`` whose YAML dump leaves out its ``TRACK`` node."""

    def dump(self, *args: Any, **kwargs: Any) -> str:
        """The config as YAML, without ``TRACK``: loadable with a plain ``get_cfg()``."""
        if TRACK_KEY not in self:
            return str(super().dump(*args, **kwargs))
        rest = CfgNode({key: value for key, value in self.items() if key != TRACK_KEY})
        return str(rest.dump(*args, **kwargs))


def leave_track_out_of_dump(cfg: Any) -> None:
    """Make ``cfg.dump()`` leave out ``TRACK`` (for a plain Detectron2 ``CfgNode`` root)."""
    if type(cfg) is CfgNode:
        object.__setattr__(cfg, "__class__", TrackedCfgNode)
