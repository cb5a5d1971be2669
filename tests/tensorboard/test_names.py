"""The tag rule: TensorBoard tags to track names and contexts (the README's table)."""

from __future__ import annotations

import pytest

from track_tensorboard.names import Namer, raw_tag, split_tag


@pytest.mark.parametrize(
    ("tag", "name", "context"),
    [
        ("train/loss", "loss", {"subset": "train"}),
        ("val/loss", "loss", {"subset": "val"}),
        ("loss/train", "loss", {"subset": "train"}),
        ("Loss/validation", "loss", {"subset": "val"}),
        ("Loss/Validation", "loss", {"subset": "val"}),
        ("test/accuracy", "accuracy", {"subset": "test"}),
        ("training/acc", "acc", {"subset": "train"}),
        ("eval/f1", "f1", {"subset": "val"}),
        ("train/loss/total", "loss/total", {"subset": "train"}),
        ("train/metrics/accuracy", "metrics/accuracy", {"subset": "train"}),
        ("loss/total/val", "loss/total", {"subset": "val"}),
        ("loss", "loss", {}),
        ("Loss", "Loss", {}),
        ("batch/loss", "batch/loss", {}),
        ("weights/fc.weight", "weights/fc.weight", {}),
        ("model/train/loss", "model/train/loss", {}),
        ("train", "train", {}),
        ("/train/loss/", "loss", {"subset": "train"}),
    ],
)
def test_default_rule(tag: str, name: str, context: dict[str, str]) -> None:
    assert split_tag(tag) == (name, context)
    assert Namer()(tag) == (name, context)


def test_names_off_keep_tags() -> None:
    namer = Namer(False)
    assert namer("train/loss") == ("train/loss", {})
    assert namer.series("loss", "train") == ("loss/train", {})
    assert Namer(None)("Loss/validation") == ("Loss/validation", {})
    assert raw_tag("a/b") == ("a/b", {})


def test_a_user_rule_replaces_the_default() -> None:
    def rule(tag: str) -> tuple[str, dict[str, str]]:
        head, _, tail = tag.partition(".")
        return head, {"part": tail} if tail else {}

    namer = Namer(rule)
    assert namer("loss.a") == ("loss", {"part": "a"})
    assert namer("loss") == ("loss", {})


def test_a_broken_rule_says_so() -> None:
    with pytest.raises(TypeError, match="must return \\(name, context\\)"):
        Namer(lambda tag: tag)("x")  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="names= takes"):
        Namer(3)  # type: ignore[arg-type]


def test_add_scalars_sub_tags() -> None:
    namer = Namer()
    assert namer.series("loss", "train") == ("loss", {"subset": "train"})
    assert namer.series("loss", "Validation") == ("loss", {"subset": "val"})
    assert namer.series("run_14h", "xsinx") == ("run_14h", {"series": "xsinx"})
    assert namer.series("train/metrics", "acc") == ("metrics", {"subset": "train", "series": "acc"})
    # the main tag names the subset already: the sub tag is a series
    assert namer.series("train/loss", "val") == ("loss", {"subset": "train", "series": "val"})


def test_a_writer_per_subset_log_dir() -> None:
    namer = Namer(True, default_subset="val")
    assert namer("loss") == ("loss", {"subset": "val"})
    assert namer("train/loss") == ("loss", {"subset": "train"})  # the tag wins
    assert Namer(False, default_subset="val")("loss") == ("loss", {})
