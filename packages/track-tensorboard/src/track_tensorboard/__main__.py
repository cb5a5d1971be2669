"""``python -m track_tensorboard import LOGDIR --to BACKEND [--experiment E]``."""

from __future__ import annotations

import argparse
import sys
import warnings

from track_core import BackendNotFoundError, TrackError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m track_tensorboard",
        description="TensorBoard event files into a track backend (Aim, MLflow, ...).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "import",
        help="import every run directory under LOGDIR as one run",
        description="Every directory under LOGDIR holding event files becomes one run (scalars, "
        "histograms, images, texts and hparams, with their steps and wall times). Running it "
        "again skips what was imported and adds only what is new.",
    )
    command.add_argument("logdir", metavar="LOGDIR")
    command.add_argument(
        "--to",
        required=True,
        metavar="BACKEND",
        help='a track backend string: "aim:./repo", '
        '"mlflow:sqlite:///mlflow.db", "mlflow:http://127.0.0.1:5000", ...',
    )
    command.add_argument("--experiment", metavar="E", default=None)
    command.add_argument(
        "--raw-names", action="store_true", help="keep tags as names (no train/val contexts)"
    )
    bar = command.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None, help="always show progress")
    bar.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    from track_tensorboard.importer import EventFileError, import_logdir

    progress = False if arguments.quiet else arguments.progress
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            report = import_logdir(
                arguments.logdir,
                arguments.to,
                arguments.experiment,
                names=not arguments.raw_names,
                progress=progress,
            )
    except (EventFileError, BackendNotFoundError, ValueError) as error:
        print(f"track-tensorboard: error: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(
            f"track-tensorboard: error: {error} (the import needs the tensorboard package: "
            'pip install "track-tensorboard[import]")',
            file=sys.stderr,
        )
        return 2
    except TrackError as error:
        print(f"track-tensorboard: error: {error}", file=sys.stderr)
        return 1
    for run in report.runs:
        if run.action == "failed":
            print(f"failed     {run.name}: {run.error}", file=sys.stderr)
        elif not arguments.quiet:
            skipped = ", ".join(f"{count} {plugin}" for plugin, count in run.skipped.items())
            note = f" (not imported: {skipped})" if skipped else ""
            print(f"{run.action:<10} {run.name}: {run.values} values, run {run.run_id}{note}")
    if not arguments.quiet:
        print(f"{len(report.runs)} run directories, {report.values} values imported")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
