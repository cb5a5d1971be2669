"""A tiny real corpus and training config for the spaCy logger's tests.

The corpus is synthetic: short sentences with PERSON / GPE entities and dependency heads, saved as
``.spacy`` files. The config comes from ``spacy init config`` (blank ``en``; no pretrained model).
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

spacy = pytest.importorskip("spacy")

from spacy.tokens import Doc, DocBin  # noqa: E402
from thinc.api import Config  # noqa: E402

PEOPLE = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"]
PLACES = ["Paris", "Berlin", "Tokyo", "Lima", "Oslo", "Cairo", "Delhi", "Quito"]
VERBS = ["visited", "left", "loves", "likes"]

TRAIN_DOCS = 48
DEV_DOCS = 8


def _doc(vocab: Any, rng: random.Random) -> Doc:
    person, place = rng.choice(PEOPLE), rng.choice(PLACES)
    if rng.random() < 0.5:
        # Alice lives in Paris .
        words = [person, "lives", "in", place, "."]
        heads = [1, 1, 1, 2, 1]
        deps = ["nsubj", "ROOT", "prep", "pobj", "punct"]
        ents = ["B-PERSON", "O", "O", "B-GPE", "O"]
    else:
        # Alice visited Paris yesterday .
        words = [person, rng.choice(VERBS), place, "yesterday", "."]
        heads = [1, 1, 1, 1, 1]
        deps = ["nsubj", "ROOT", "dobj", "npadvmod", "punct"]
        ents = ["B-PERSON", "O", "B-GPE", "O", "O"]
    return Doc(
        vocab,
        words=words,
        spaces=[True, True, True, False, False],
        heads=heads,
        deps=deps,
        ents=ents,
    )


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train.spacy, dev.spacy and base.cfg (from ``spacy init config``) in a session folder."""
    folder = tmp_path_factory.mktemp("spacy-corpus")
    nlp = spacy.blank("en")
    rng = random.Random(7)
    for name, count in (("train", TRAIN_DOCS), ("dev", DEV_DOCS)):
        DocBin(docs=[_doc(nlp.vocab, rng) for _ in range(count)]).to_disk(folder / f"{name}.spacy")
    base = folder / "base.cfg"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "init",
            "config",
            str(base),
            "--lang",
            "en",
            "--pipeline",
            "ner,parser",
            "--optimize",
            "efficiency",
            "--force",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {"train": folder / "train.spacy", "dev": folder / "dev.spacy", "base": base}


@pytest.fixture
def write_config(corpus: dict[str, Path], tmp_path: Path) -> Callable[..., Path]:
    """Write a training config that uses ``track.Logger.v1`` with the given options."""

    def write(
        logger: Mapping[str, Any] | None = None,
        *,
        max_steps: int = 12,
        eval_frequency: int = 4,
        training: Mapping[str, Any] | None = None,
        name: str = "config.cfg",
    ) -> Path:
        config = Config().from_disk(corpus["base"], interpolate=False)
        config["paths"]["train"] = str(corpus["train"])
        config["paths"]["dev"] = str(corpus["dev"])
        config["system"]["seed"] = 1
        config["training"]["max_steps"] = max_steps
        config["training"]["eval_frequency"] = eval_frequency
        config["training"]["max_epochs"] = 0
        config["training"]["patience"] = 0
        # A small batch: several steps per epoch, so that steps and epochs differ.
        config["training"]["batcher"]["size"] = 60
        for key, value in (training or {}).items():
            config["training"][key] = value
        if logger is not None:
            config["training"]["logger"] = {"@loggers": "track.Logger.v1", **logger}
        path = tmp_path / name
        config.to_disk(path)
        return path

    return write
