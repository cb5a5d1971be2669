"""The drop-in SummaryWriter on the memory backend: every method, steps, wall times, bad input."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from readers import by_sequence, event_scalars, event_tags, read, steps_values

import track_core as track
from track_tensorboard import SummaryWriter, UnsupportedWarning


def test_scalars_with_steps_wall_times_and_contexts(memory: str, tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run", backend=memory, experiment="tb") as writer:
        for step in range(5):
            writer.add_scalar("train/loss", 1.0 / (step + 1), step, walltime=1_700_000_000.0 + step)
            writer.add_scalar("val/loss", np.float32(0.5) + step, global_step=np.int64(step))
        writer.add_scalar("lr", 0.1)  # no step: the sequence's next step
        writer.add_scalar("lr", 0.2)
        run_id = writer.run.id
    assert writer.run.status is track.Status.FINISHED  # the writer started it: close() ends it
    stored = read(memory, run_id)
    assert stored.name == "run" and stored.experiment == "tb"
    sequences = by_sequence(stored)
    train = sequences[("loss", (("subset", "train"),))]
    assert steps_values(train) == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert [p.timestamp for p in train.points()] == [1_700_000_000.0 + s for s in range(5)]
    val = sequences[("loss", (("subset", "val"),))]
    assert steps_values(val) == [(s, 0.5 + s) for s in range(5)]
    assert all(abs(p.timestamp - time.time()) < 600 for p in val.points())
    assert steps_values(sequences[("lr", ())]) == [(0, 0.1), (1, 0.2)]


def test_add_scalars_maps_sub_tags(memory: str, tmp_path: Path) -> None:
    with SummaryWriter(tmp_path, backend=memory) as writer:
        writer.add_scalars("loss", {"train": 1.0, "val": 2.0}, 3)
        writer.add_scalars("run", {"xsinx": 0.5, "xcosx": 0.25}, 3, walltime=1_600_000_000)
        run_id = writer.run.id
    sequences = by_sequence(read(memory, run_id))
    assert steps_values(sequences[("loss", (("subset", "train"),))]) == [(3, 1.0)]
    assert steps_values(sequences[("loss", (("subset", "val"),))]) == [(3, 2.0)]
    xsinx = sequences[("run", (("series", "xsinx"),))]
    assert steps_values(xsinx) == [(3, 0.5)]
    assert xsinx.points()[0].timestamp == 1_600_000_000.0


@pytest.mark.parametrize("bins", ["tensorflow", "auto", "fd", 10, [0.0, 0.5, 1.0]])
def test_histograms(memory: str, tmp_path: Path, bins: object) -> None:
    values = np.random.default_rng(0).random(1000)
    with SummaryWriter(tmp_path, backend=memory) as writer:
        writer.add_histogram("weights/fc", values, 7, bins=bins)
        run_id = writer.run.id
    (point,) = by_sequence(read(memory, run_id))[("weights/fc", ())].points()
    assert point.step == 7
    distribution = point.value
    assert isinstance(distribution, track.Distribution) and distribution.is_uniform
    assert sum(distribution.counts) == pytest.approx(1000)
    assert distribution.range[0] == pytest.approx(values.min() if bins != [0.0, 0.5, 1.0] else 0.0)
    if bins == 10:
        assert len(distribution.counts) == 10
        assert distribution.counts == tuple(float(c) for c in np.histogram(values, bins=10)[0])


def test_histogram_raw_and_max_bins(memory: str, tmp_path: Path) -> None:
    with SummaryWriter(tmp_path, backend=memory) as writer:
        writer.add_histogram_raw(
            "raw", min=0.0, max=10.0, num=6, sum=30.0, sum_squares=200.0,
            bucket_limits=[2.0, 4.0, 6.0, 8.0, 10.0], bucket_counts=[1, 2, 0, 2, 1], global_step=1,
        )  # fmt: skip
        writer.add_histogram("capped", np.arange(100.0), 1, bins=50, max_bins=10)
        run_id = writer.run.id
    sequences = by_sequence(read(memory, run_id))
    raw = sequences[("raw", ())].points()[0].value
    assert raw.bin_edges == (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    assert raw.counts == (1.0, 2.0, 0.0, 2.0, 1.0)
    capped = sequences[("capped", ())].points()[0].value
    assert len(capped.counts) <= 10 and sum(capped.counts) == 100


@pytest.mark.parametrize(
    ("shape", "dataformats", "size"),
    [
        ((3, 8, 6), "CHW", (6, 8)),
        ((8, 6, 3), "HWC", (6, 8)),
        ((8, 6), "HW", (6, 8)),
        ((6, 8), "WH", (6, 8)),
        ((1, 8, 6), "CHW", (6, 8)),
        ((8, 6, 4), "HWC", (6, 8)),
    ],
)
def test_add_image_dataformats(
    memory: str, tmp_path: Path, shape: tuple[int, ...], dataformats: str, size: tuple[int, int]
) -> None:
    pixels = np.random.default_rng(1).random(shape)
    with SummaryWriter(tmp_path, backend=memory) as writer:
        writer.add_image("sample", pixels, 2, dataformats=dataformats)
        run_id = writer.run.id
    (point,) = by_sequence(read(memory, run_id))[("sample", ())].points()
    image = point.value
    assert isinstance(image, track.Image) and (image.width, image.height) == size
    # TensorBoard's scaling: floats in [0, 1] times 255
    hwc = np.moveaxis(pixels, 0, -1) if dataformats == "CHW" else pixels
    if dataformats == "WH":
        hwc = pixels.T
    stored = np.asarray(image.to_pil())
    assert np.array_equal(stored.reshape(hwc.shape), np.round(hwc * 255).astype(np.uint8))


@pytest.mark.parametrize(
    ("shape", "dataformats", "size"),
    [
        ((4, 3, 5, 6), "NCHW", (24, 5)),
        ((4, 5, 6, 3), "NHWC", (24, 5)),
        ((10, 5, 6), "NHW", (48, 10)),  # 8 per row, as TensorBoard tiles them
        ((1, 1, 5, 6), "NCHW", (6, 5)),
    ],
)
def test_add_images_tiles_them(
    memory: str, tmp_path: Path, shape: tuple[int, ...], dataformats: str, size: tuple[int, int]
) -> None:
    batch = (np.random.default_rng(2).random(shape) * 255).astype(np.uint8)
    with SummaryWriter(tmp_path, backend=memory) as writer:
        writer.add_images("batch", batch, 0, dataformats=dataformats)
        run_id = writer.run.id
    image = by_sequence(read(memory, run_id))[("batch", ())].points()[0].value
    assert (image.width, image.height) == size
    first = batch[0] if dataformats != "NCHW" else np.moveaxis(batch[0], 0, -1)
    tile = np.asarray(image.to_pil())[: shape[-2] if dataformats != "NHWC" else shape[1]]
    assert np.array_equal(tile[:, : first.shape[1]].reshape(first.shape), first)


def test_text_and_hparams(memory: str, tmp_path: Path) -> None:
    with SummaryWriter(tmp_path, backend=memory) as writer:
        writer.add_text("notes", "first", 0)
        writer.add_text("notes", "**second**", 1)
        writer.add_hparams({"lr": 0.01, "optimizer": "adam", "layers": 2}, {"hp/accuracy": 0.9})
        writer.add_hparams({"seed": 3}, {"hp/accuracy": 0.95}, global_step=1)
        run_id = writer.run.id
    stored = read(memory, run_id)
    texts = steps_values(by_sequence(stored)[("notes", ())])
    assert texts == [(0, track.Text("first")), (1, track.Text("**second**"))]
    assert stored.params["hparams"] == {"lr": 0.01, "optimizer": "adam", "layers": 2, "seed": 3}
    assert steps_values(by_sequence(stored)[("hp/accuracy", ())]) == [(0, 0.9), (1, 0.95)]


def test_unsupported_methods_warn_once_each(memory: str, tmp_path: Path) -> None:
    with SummaryWriter(tmp_path, backend=memory) as writer:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                writer.add_graph(object())
                writer.add_embedding(np.zeros((2, 2)))
                writer.add_audio("a", np.zeros(10))
            writer.add_video("v", np.zeros((1, 1, 3, 2, 2)))
            writer.add_pr_curve("pr", np.zeros(3), np.zeros(3))
            writer.add_mesh("m", np.zeros((1, 3, 3)))
            writer.add_custom_scalars({})
        messages = [str(w.message) for w in caught if w.category is UnsupportedWarning]
    assert len(messages) == 7
    assert any("SummaryWriter.add_graph is not tracked" in m for m in messages)
    with pytest.raises(AttributeError):
        writer.add_something_else  # noqa: B018


def test_bad_input_raises_a_clear_error_and_the_writer_goes_on(memory: str, tmp_path: Path) -> None:
    with SummaryWriter(tmp_path, backend=memory) as writer:
        with pytest.raises(TypeError, match=r"add_scalar\('loss'\): a str is not a scalar"):
            writer.add_scalar("loss", "0.5", 0)
        with pytest.raises(TypeError, match="expected a scalar, got a ndarray of shape \\(3,\\)"):
            writer.add_scalar("loss", np.zeros(3), 0)
        with pytest.raises(TypeError, match="expected a number"):
            writer.add_scalar("loss", object(), 0)
        with pytest.raises(ValueError, match="dataformats='CHW' needs a 3-d tensor, got shape"):
            writer.add_image("img", np.zeros((4, 4)), 0)
        with pytest.raises(ValueError, match="an image needs 1, 3 or 4 channels, got 5"):
            writer.add_image("img", np.zeros((5, 4, 4)), 0)
        with pytest.raises(ValueError, match="dataformats must be an order of H and W"):
            writer.add_image("img", np.zeros((3, 4, 4)), 0, dataformats="XYZ")
        with pytest.raises(ValueError, match="NaN or infinity"):
            writer.add_image("img", np.full((3, 4, 4), np.nan), 0)
        with pytest.raises(TypeError, match="must be a tensor or an array, got str"):
            writer.add_histogram("h", "abc", 0)
        with pytest.raises(ValueError, match="the values are empty"):
            writer.add_histogram("h", np.array([]), 0)
        with pytest.raises(TypeError, match="text_string must be a str"):
            writer.add_text("t", 3, 0)
        with pytest.raises(ValueError, match="step must be >= 0"):
            writer.add_scalar("loss", 1.0, -1)
        writer.add_scalar("loss", 0.5, 0)  # still works
        run_id = writer.run.id
    assert steps_values(by_sequence(read(memory, run_id))[("loss", ())]) == [(0, 0.5)]


def test_a_given_run_stays_open(memory: str, tmp_path: Path) -> None:
    run = track.start_run(memory)
    with pytest.raises(TypeError, match="either run= or backend"):
        SummaryWriter(tmp_path, run=run, backend=memory)
    writer = SummaryWriter(tmp_path, run=run, names=False)
    writer.add_scalar("train/loss", 1.0, 0)
    writer.close()
    assert run.status is track.Status.RUNNING
    assert [s.name for s in run.sequences()] == ["train/loss"]
    run.close()


def test_the_current_run_is_found(memory: str, tmp_path: Path) -> None:
    run = track.start_run(memory)
    with track.using_run(run):
        assert track.current_run() is run
        with SummaryWriter(tmp_path / "val") as writer:  # a log dir named after a subset
            writer.add_scalar("loss", 2.0, 0)
        assert writer.run is run and run.status is track.Status.RUNNING
    assert track.current_run() is None
    assert steps_values(by_sequence(run)[("loss", (("subset", "val"),))]) == [(0, 2.0)]
    run.close()


def test_an_exception_ends_the_writers_run_failed(memory: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), SummaryWriter(tmp_path, backend=memory) as writer:
        writer.add_scalar("loss", 1.0, 0)
        raise RuntimeError("diverged")
    stored = read(memory, writer.run.id)
    assert stored.status is track.Status.FAILED


def test_tee_writes_the_event_files_too(memory: str, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    log_dir = tmp_path / "teed"
    with SummaryWriter(log_dir, backend=memory, tee=True) as writer:
        for step in range(3):
            writer.add_scalar("train/loss", 0.5 * step, step)
        writer.add_histogram("w", np.arange(10.0), 0)
        writer.add_text("note", "hello", 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsupportedWarning)
            writer.add_pr_curve("pr", np.array([0, 1, 1]), np.array([0.1, 0.6, 0.9]), 0)
        run_id = writer.run.id
    scalars = event_scalars(log_dir)
    assert {step: value for step, (value, _) in scalars["train/loss"].items()} == {
        0: 0.0, 1: 0.5, 2: 1.0,
    }  # fmt: skip
    tags = event_tags(log_dir)
    assert tags["w"] == "histograms" and tags["note/text_summary"] == "text"
    assert tags["pr"] == "pr_curves"  # only in the event files
    stored = by_sequence(read(memory, run_id))
    assert steps_values(stored[("loss", (("subset", "train"),))]) == [(0, 0.0), (1, 0.5), (2, 1.0)]
