"""What does tracking add to a Detectron2 training step?

The same ``SimpleTrainer`` loop (a small MLP whose forward returns ``--losses`` losses, so with
``total_loss``, ``data_time``, ``time`` and ``lr`` the event storage holds about 30 scalars per
step) is run:

- with no tracking hook (the baseline),
- with the seeds' style of hook: every value of ``storage.latest()`` logged one call at a time at
  every step (``mlflow.log_metric`` for MLflow, ``aim.Run.track`` for Aim),
- with ``track_detectron2.TrackHook`` (``mlflow:sqlite:///...`` and ``aim:/path``), its SDK calls
  in a writer process (the default) and in a writer thread (``writer_process="off"``),

and reports, per variant, the training-loop time per step, the time it adds per step over the
baseline (the median over ``--repeats`` rounds of the difference with the same round's baseline,
and the range of those differences: on a shared machine single rounds vary by several ms), that
as a ratio of the baseline step and of a 50 ms step,
the time the training thread spends inside the hook's ``after_step`` ("hook ms": the part of the
cost that does not depend on timing noise; the wall-clock difference also includes what a
background writer takes from the training process), the time before the first step (opening
the run; a writer process starts there) and the time spent at the end (closing / flushing the
run). The loop is timed from its first step. Usage::

    python benchmarks/bench_detectron2.py                  # both backends, 200 steps
    python benchmarks/bench_detectron2.py --backends mlflow --steps 100 --json out.json

Needs Detectron2 and torch; ``track-mlflow`` (+ mlflow) and/or ``track-aim`` (+ aim) for the
backends to measure; a backend whose packages are missing is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from detectron2.engine import HookBase, SimpleTrainer, hooks

REFERENCE_STEP_S = 0.050


class SmallModel(torch.nn.Module):
    def __init__(self, losses: int, width: int) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(256, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, losses),
        )
        self.losses = losses

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        out = self.body(x)
        return {f"loss_{i:02d}": ((out[:, i] - y[:, i]) ** 2).mean() for i in range(self.losses)}


def batches(losses: int, batch: int) -> Any:
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(16, batch, 256, generator=g)
    ys = torch.randn(16, batch, losses, generator=g)
    while True:
        yield from zip(xs, ys, strict=False)


class Stopwatch(HookBase):  # type: ignore[misc]
    """Registered first: times the loop from its first step (after every hook's before_train,
    where a run is opened) to after_train, which runs before the tracking hook closes its run."""

    def before_train(self) -> None:
        self.opened = time.perf_counter()
        self.start: float | None = None

    def before_step(self) -> None:
        if self.start is None:
            self.start = time.perf_counter()

    def after_train(self) -> None:
        self.loop_end = time.perf_counter()


class LR(HookBase):  # type: ignore[misc]
    def after_step(self) -> None:
        self.trainer.storage.put_scalar("lr", 0.01, smoothing_hint=False)


class SeedMLflowHook(HookBase):  # type: ignore[misc]
    """The per-value style of the seeds, for MLflow."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def before_train(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment("bench")
        mlflow.start_run()

    def after_step(self) -> None:
        import mlflow

        storage = self.trainer.storage
        for name, (value, _) in storage.latest().items():
            mlflow.log_metric(name, value, step=storage.iter)

    def after_train(self) -> None:
        import mlflow

        mlflow.end_run()


class SeedAimHook(HookBase):  # type: ignore[misc]
    """Seed 000's AimHook (per value from storage.latest() at every step)."""

    def __init__(self, repo: str) -> None:
        self.repo = repo

    def before_train(self) -> None:
        from aim import Run

        self.run = Run(repo=self.repo, experiment="bench")

    def after_step(self) -> None:
        storage = self.trainer.storage
        for name, (value, _) in storage.latest().items():
            self.run.track(name=name, value=value, step=storage.iter)

    def after_train(self) -> None:
        self.run.close()


def _timed(hook: HookBase, spent: list[float]) -> None:
    """Measure the time the training thread spends in ``hook.after_step``."""
    inner = hook.after_step

    def after_step() -> None:
        start = time.perf_counter()
        inner()
        spent[0] += time.perf_counter() - start

    hook.after_step = after_step  # type: ignore[method-assign]


def run_once(
    make_hook: Callable[[], HookBase | None], steps: int, losses: int, width: int, batch: int
) -> tuple[float, float, float, float]:
    """Return (loop s/step, s spent after the loop, s/step inside the hook's after_step, s
    before the first step)."""
    torch.manual_seed(0)
    model = SmallModel(losses, width)
    trainer = SimpleTrainer(
        model, batches(losses, batch), torch.optim.SGD(model.parameters(), lr=0.01)
    )
    watch = Stopwatch()
    hook = make_hook()
    spent = [0.0]
    if hook is not None:
        _timed(hook, spent)
    trainer.register_hooks([watch, hooks.IterationTimer(), LR(), hook])
    trainer.train(0, steps)
    end = time.perf_counter()
    assert watch.start is not None
    return (
        (watch.loop_end - watch.start) / steps,
        end - watch.loop_end,
        spent[0] / steps,
        watch.start - watch.opened,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--losses", type=int, default=26, help="losses per step (+4 other scalars)")
    parser.add_argument("--width", type=int, default=1024, help="MLP width: sets the step time")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--backends", default="mlflow,aim")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--no-seeds", action="store_true", help="leave out the seeds-style hooks (slow)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from track_detectron2 import TrackHook

    tmp = Path(tempfile.mkdtemp(prefix="bench-d2-"))
    variants: dict[str, Callable[[], HookBase | None]] = {"no hook": lambda: None}
    counter = iter(range(1_000_000))
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in wanted:
        if backend == "mlflow":
            if not (
                importlib.util.find_spec("mlflow") and importlib.util.find_spec("track_mlflow")
            ):
                print("skipping mlflow: install track-mlflow", file=sys.stderr)
                continue
            import mlflow  # noqa: F401  (import time is not training time)

            variants["seeds-style mlflow"] = lambda: SeedMLflowHook(
                f"sqlite:///{tmp}/seed-{next(counter)}.db"
            )
            variants["track mlflow"] = lambda: TrackHook(
                backend=f"mlflow:sqlite:///{tmp}/track-{next(counter)}.db",
                experiment="bench",
                upload=[],
            )
            variants["track mlflow thread"] = lambda: TrackHook(
                backend=f"mlflow:sqlite:///{tmp}/track-{next(counter)}.db",
                experiment="bench",
                upload=[],
                writer_process="off",
            )
        elif backend == "aim":
            if not (importlib.util.find_spec("aim") and importlib.util.find_spec("track_aim")):
                print("skipping aim: install track-aim", file=sys.stderr)
                continue
            import aim  # noqa: F401

            variants["seeds-style aim"] = lambda: SeedAimHook(
                str(tmp / f"seed-aim-{next(counter)}")
            )
            variants["track aim"] = lambda: TrackHook(
                backend=f"aim:{tmp}/track-aim-{next(counter)}", experiment="bench", upload=[]
            )
            variants["track aim thread"] = lambda: TrackHook(
                backend=f"aim:{tmp}/track-aim-{next(counter)}",
                experiment="bench",
                upload=[],
                writer_process="off",
            )
        else:
            parser.error(f"unknown backend {backend!r}")

    if args.no_seeds:
        variants = {name: make for name, make in variants.items() if "seeds" not in name}
    run_once(lambda: None, 20, args.losses, args.width, args.batch)  # warm up torch
    samples: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved, so drifts hit every variant alike
        for name, make in variants.items():
            samples[name].append(run_once(make, args.steps, args.losses, args.width, args.batch))

    base = statistics.median(run[0] for run in samples["no hook"])
    baselines = [run[0] for run in samples["no hook"]]
    results = []
    print(
        f"{args.steps} steps x {args.repeats} repeats, {args.losses + 4} scalars per step, "
        f"baseline step {base * 1e3:.2f} ms"
    )
    print(
        f"{'variant':<22}{'step ms':>10}{'added ms':>10}{'spread':>16}{'added %':>10}"
        f"{'% of 50ms':>11}{'hook ms':>9}{'start s':>9}{'end s':>8}"
    )
    for name, runs in samples.items():
        step = statistics.median(run[0] for run in runs)
        end = statistics.median(run[1] for run in runs)
        inside = statistics.median(run[2] for run in runs)
        opening = statistics.median(run[3] for run in runs)
        # each repeat against the baseline of the same round: drifts of the machine cancel
        paired = sorted(run[0] - baseline for run, baseline in zip(runs, baselines, strict=True))
        added = statistics.median(paired)
        row = {
            "variant": name,
            "step_ms": step * 1e3,
            "added_ms_per_step": added * 1e3,
            "added_ms_per_round": [d * 1e3 for d in paired],
            "added_ratio": added / base,
            "added_ratio_of_50ms": added / REFERENCE_STEP_S,
            "end_s": end,
            "start_s": opening,
            "hook_after_step_ms": inside * 1e3,
            "steps": args.steps,
            "repeats": args.repeats,
        }
        results.append(row)
        print(
            f"{name:<22}{step * 1e3:>10.2f}{added * 1e3:>10.3f}"
            f"{f'{paired[0] * 1e3:.1f}..{paired[-1] * 1e3:.1f}':>16}{100 * added / base:>9.2f}%"
            f"{100 * added / REFERENCE_STEP_S:>10.2f}%{inside * 1e3:>9.3f}{opening:>9.2f}"
            f"{end:>8.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"baseline_step_ms": base * 1e3, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
