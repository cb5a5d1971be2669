"""The ``track`` command: list backends and runs, show a run, copy runs, replay spool files.

    track backends
    track runs BACKEND [--experiment E] [--json]
    track show BACKEND RUN [--json]
    track copy SOURCE DEST [--experiment E] [--run ID ...] [--progress | --no-progress]
    track spools [--dir DIR]
    track replay [PATH ...] [--backend BACKEND]

``backends``, ``spools`` and ``replay`` are ``python -m track_core``'s commands. Exit codes (also
in ``track --help``) are the ``EXIT_*`` constants below.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, TextIO

from track_core.backend import Backend, Point, RunInfo, RunReader
from track_core.context import Context
from track_core.errors import BackendNotFoundError
from track_core.values import Distribution, Image, Text, Value

EXIT_OK: Final = 0
#: Something else failed (a run that could not be copied, a spool file not replayed).
EXIT_FAILED: Final = 1
#: The command line is wrong (argparse's own code).
EXIT_USAGE: Final = 2
#: No backend of that name is installed, or the backend string is malformed.
EXIT_UNKNOWN_BACKEND: Final = 3
#: The backend cannot be reached (a server down, a connection refused, a disk error).
EXIT_UNREACHABLE: Final = 4
#: The backend has no run with that id.
EXIT_NO_SUCH_RUN: Final = 5
#: ``track copy`` copied every run, but the destination could not hold everything (listed).
EXIT_INCOMPLETE: Final = 6

_EPILOG: Final = f"""\
exit codes:
  {EXIT_OK}  success
  {EXIT_FAILED}  something failed (a run not copied, a spool file not replayed)
  {EXIT_USAGE}  bad command line
  {EXIT_UNKNOWN_BACKEND}  unknown backend, or a malformed backend string
  {EXIT_UNREACHABLE}  the backend cannot be reached (server down, connection refused, disk error)
  {EXIT_NO_SUCH_RUN}  no run with that id
  {EXIT_INCOMPLETE}  copied, but the destination cannot hold some of it (listed on stderr)

A BACKEND is a backend string: aim, aim:./runs, aim://host:53800, mlflow:sqlite:///mlflow.db,
mlflow:http://host:5000, memory, ...
"""

#: Commands that ``python -m track_core`` implements; ``track`` hands them over as they are.
_DELEGATED: Final = ("backends", "spools", "replay")


class _Failure(Exception):
    """Ends the command with a message on stderr and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says a backend could not be reached."""
    for each in _chain(error):
        if isinstance(each, (OSError, TimeoutError)):
            return True
        module = type(each).__module__ or ""
        if module.startswith(("requests", "urllib3", "websockets", "http.client")):
            return True
    return False


def _exit_code(error: BaseException) -> int:
    if isinstance(error, BackendNotFoundError):
        return EXIT_UNKNOWN_BACKEND
    if is_unreachable(error):
        return EXIT_UNREACHABLE
    if isinstance(error, KeyError):
        return EXIT_NO_SUCH_RUN
    return EXIT_FAILED


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error) or type(error).__name__


def _open_backend(spec: str) -> Backend:
    from track_core.discovery import get_backend
    from track_core.redaction import redact_text

    shown = redact_text(spec)
    try:
        return get_backend(spec)
    except BackendNotFoundError as error:
        raise _Failure(str(error), EXIT_UNKNOWN_BACKEND) from None
    except Exception as error:
        if is_unreachable(error):
            raise _Failure(f"cannot reach backend {shown}: {error}", EXIT_UNREACHABLE) from None
        if isinstance(error, (ValueError, TypeError)):
            raise _Failure(f"bad backend string {shown!r}: {error}", EXIT_UNKNOWN_BACKEND) from None
        raise _Failure(f"cannot open backend {shown}: {error!r}", EXIT_FAILED) from None


def _on(backend: Backend, action: str, call: Callable[[], Any]) -> Any:
    """``call()``, its errors turned into messages and exit codes."""
    try:
        return call()
    except _Failure:
        raise
    except Exception as error:
        code = _exit_code(error)
        if code == EXIT_UNREACHABLE:
            text = f"cannot reach {backend.location} ({action}): {_message(error)}"
        else:
            text = f"{action} on {backend.location}: {_message(error)}"
        raise _Failure(text, code) from None


# -- formatting ---------------------------------------------------------------------------------


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(seconds).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _run_duration(info: RunInfo, ended_at: float | None) -> float | None:
    if info.created_at is None:
        return None
    if ended_at is not None:
        return ended_at - info.created_at
    if info.status.value == "running":
        return time.time() - info.created_at
    return None


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


def _context_text(context: Mapping[str, Any]) -> str:
    if not context:
        return ""
    return "{" + ", ".join(f"{key}={value!r}" for key, value in context.items()) + "}"


def _value_text(value: Value) -> str:
    if isinstance(value, Image):
        caption = f" {value.caption!r}" if value.caption else ""
        return f"image {value.width}x{value.height} {value.mode}{caption}"
    if isinstance(value, Text):
        text = value.text if len(value.text) <= 60 else value.text[:57] + "..."
        return f"text {text!r}"
    if isinstance(value, Distribution):
        low, high = value.range
        return f"distribution of {sum(value.counts):g} over [{low:g}, {high:g}]"
    return repr(value)


def _value_json(value: Value) -> Any:
    if isinstance(value, Image):
        return {
            "image": {
                "width": value.width,
                "height": value.height,
                "mode": value.mode,
                "caption": value.caption,
            }
        }
    if isinstance(value, Text):
        return {"text": value.text}
    if isinstance(value, Distribution):
        return {"bin_edges": list(value.bin_edges), "counts": list(value.counts)}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _flatten(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, path + ".")
        else:
            yield path, value


# -- commands -----------------------------------------------------------------------------------


def _runs(arguments: argparse.Namespace, out: TextIO) -> int:
    backend = _open_backend(arguments.backend)
    try:
        infos = _on(backend, "listing runs", lambda: backend.list_runs(arguments.experiment))
        records = []
        for info in infos:
            try:
                reader: RunReader | None = backend.read_run(info.id)
            except KeyError:  # deleted meanwhile
                reader = None
            except Exception as error:
                raise _Failure(
                    f"reading run {info.id} on {backend.location}: {_message(error)}",
                    _exit_code(error),
                ) from None
            sequences = None if reader is None else len(reader.sequences())
            records.append((info, sequences, _run_duration(info, info.ended_at)))
    finally:
        backend.close()
    if arguments.json:
        json.dump(
            [
                {
                    "id": info.id,
                    "name": info.name,
                    "experiment": info.experiment,
                    "status": info.status.value,
                    "start": info.created_at,
                    "duration": duration,
                    "sequences": sequences,
                }
                for info, sequences, duration in records
            ],
            out,
            indent=1,
        )
        out.write("\n")
        return EXIT_OK
    if not records:
        where = f" in experiment {arguments.experiment!r}" if arguments.experiment else ""
        print(f"no runs{where} on {backend.location}", file=sys.stderr)
        return EXIT_OK
    rows = [("ID", "NAME", "EXPERIMENT", "STATUS", "START", "DURATION", "SEQUENCES")]
    for info, sequences, duration in records:
        rows.append(
            (
                info.id,
                info.name or "-",
                info.experiment or "-",
                info.status.value,
                _time(info.created_at),
                _duration(duration),
                "-" if sequences is None else str(sequences),
            )
        )
    _table(rows, out)
    return EXIT_OK


def _show(arguments: argparse.Namespace, out: TextIO) -> int:
    backend = _open_backend(arguments.backend)
    try:
        reader: RunReader = _on(
            backend, f"reading run {arguments.run}", lambda: backend.read_run(arguments.run)
        )
        sequences: list[tuple[str, Context, str, int, Point | None]] = []
        for info in _on(backend, "reading sequences", reader.sequences):
            context = Context.of(info.context)
            points: Sequence[Point] = _on(
                backend,
                f"reading {info.name!r}",
                functools.partial(reader.points, info.name, context),
            )
            last = points[-1] if points else None
            sequences.append((info.name, context, info.kind.value, len(points), last))
        artifacts = list(_on(backend, "listing artifacts", reader.artifacts))
        params = dict(reader.params)
        details = {
            "id": reader.id,
            "name": reader.name,
            "experiment": reader.experiment,
            "description": reader.description,
            "status": reader.status.value,
            "error": reader.error,
            "archived": reader.archived,
            "tags": sorted(reader.tags),
        }
    finally:
        backend.close()
    if arguments.json:
        document = {
            **details,
            "params": params,
            "sequences": [
                {
                    "name": name,
                    "context": context.to_dict(),
                    "kind": kind,
                    "points": count,
                    "last": None
                    if last is None
                    else {
                        "step": last.step,
                        "epoch": last.epoch,
                        "timestamp": last.timestamp,
                        "value": _value_json(last.value),
                    },
                }
                for name, context, kind, count, last in sequences
            ],
            "artifacts": artifacts,
        }
        json.dump(document, out, indent=1, default=str)
        out.write("\n")
        return EXIT_OK
    for label in ("id", "name", "experiment", "description", "status", "error"):
        if details[label] is not None:
            out.write(f"{label + ':':<13}{details[label]}\n")
    out.write(f"{'archived:':<13}{'yes' if details['archived'] else 'no'}\n")
    out.write(f"{'tags:':<13}{', '.join(details['tags']) or '-'}\n")  # type: ignore[arg-type]
    out.write(f"params ({len(params)}):\n")
    for key, value in _flatten(params):
        out.write(f"  {key} = {json.dumps(value, ensure_ascii=False, default=str)}\n")
    out.write(f"sequences ({len(sequences)}):\n")
    if sequences:
        rows = [("  NAME", "CONTEXT", "KIND", "POINTS", "LAST STEP", "EPOCH", "LAST VALUE")]
        for name, context, kind, count, last in sequences:
            rows.append(
                (
                    f"  {name}",
                    _context_text(context) or "-",
                    kind,
                    str(count),
                    "-" if last is None else str(last.step),
                    "-" if last is None or last.epoch is None else str(last.epoch),
                    "-" if last is None else _value_text(last.value),
                )
            )
        _table(rows, out)
    out.write(f"artifacts ({len(artifacts)}):\n")
    for name in artifacts:
        out.write(f"  {name}\n")
    return EXIT_OK


def _copy(arguments: argparse.Namespace, out: TextIO) -> int:
    from track_core.copying import CopyError, copy_runs

    source = _open_backend(arguments.source)
    try:
        dest = _open_backend(arguments.dest)
    except _Failure:
        source.close()
        raise
    try:
        run_ids: list[str] | None = arguments.run or None
        if run_ids is not None:
            missing = []
            for run_id in run_ids:
                try:
                    reader = source.read_run(run_id)
                except KeyError:
                    missing.append(run_id)
                    continue
                except Exception as error:
                    code = _exit_code(error)
                    raise _Failure(
                        f"reading run {run_id} on {source.location}: {_message(error)}",
                        EXIT_FAILED if code == EXIT_NO_SUCH_RUN else code,
                    ) from None
                if arguments.experiment is not None and reader.experiment != arguments.experiment:
                    raise _Failure(
                        f"run {run_id} of {source.location} is in experiment "
                        f"{reader.experiment!r}, not {arguments.experiment!r}",
                        EXIT_NO_SUCH_RUN,
                    )
            if missing:
                raise _Failure(
                    f"{source.location} has no run {', '.join(missing)}", EXIT_NO_SUCH_RUN
                )
        # Reach both ends before copying anything: a clear error for one that is down.
        _on(source, "listing runs", lambda: source.list_runs(arguments.experiment))
        _on(dest, "listing runs", dest.list_runs)
        try:
            results = copy_runs(
                source,
                dest,
                experiment=arguments.experiment,
                run_ids=run_ids,
                progress=arguments.progress,
            )
            failures: Mapping[str, BaseException] = {}
        except CopyError as copy_error:
            results, failures = copy_error.results, copy_error.failures
        except ValueError as bad:  # the same store on both sides
            raise _Failure(str(bad), EXIT_USAGE) from None
    finally:
        source.close()
        dest.close()
    incomplete = 0
    for result in results:
        out.write(
            f"{result.action.value:<8} {result.source_id} -> {result.dest_id}  "
            f"{result.points:,} points, {result.artifacts} artifacts\n"
        )
        for item in result.not_copied:
            incomplete += 1
            count = f" ({item.values} values)" if item.values else ""
            print(
                f"not copied from run {result.source_id}: {item.what}{count}: {item.reason}",
                file=sys.stderr,
            )
    for run_id, failure in failures.items():
        print(f"run {run_id} not copied: {_message(failure)}", file=sys.stderr)
    if failures:
        codes = {_exit_code(failure) for failure in failures.values()}
        print("copying again finishes the job", file=sys.stderr)
        return EXIT_UNREACHABLE if EXIT_UNREACHABLE in codes else EXIT_FAILED
    if not results:
        where = f" in experiment {arguments.experiment!r}" if arguments.experiment else ""
        print(f"no runs{where} to copy", file=sys.stderr)
    return EXIT_INCOMPLETE if incomplete else EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="track",
        description="Experiment runs on any track backend: list, show, copy; spool files.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("backends", help="list the installed backends")
    runs = commands.add_parser("runs", help="list the runs of a backend")
    runs.add_argument("backend", metavar="BACKEND")
    runs.add_argument("--experiment", "-e", default=None, help="only the runs of this experiment")
    runs.add_argument("--json", action="store_true", help="print JSON")
    show = commands.add_parser("show", help="show a run: params, tags, sequences, last values")
    show.add_argument("backend", metavar="BACKEND")
    show.add_argument("run", metavar="RUN", help="the run's id")
    show.add_argument("--json", action="store_true", help="print JSON")
    copy = commands.add_parser(
        "copy",
        help="copy runs from one backend to another",
        description="Copy whole runs from SOURCE to DEST. A run copied before is updated or "
        "skipped, not copied twice; an interrupted copy finishes when run again.",
    )
    copy.add_argument("source", metavar="SOURCE")
    copy.add_argument("dest", metavar="DEST")
    copy.add_argument("--experiment", "-e", default=None, help="only the runs of this experiment")
    copy.add_argument(
        "--run", "-r", action="extend", nargs="+", default=[], metavar="ID", help="runs to copy"
    )
    copy.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: when stderr is a terminal)",
    )
    commands.add_parser("spools", help="list spool files waiting to be replayed", add_help=False)
    commands.add_parser("replay", help="write spool files to their backends", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``track`` console script; returns the exit code."""
    arguments_list = list(sys.argv[1:] if argv is None else argv)
    if arguments_list and arguments_list[0] in _DELEGATED:
        from track_core.__main__ import main as track_core_main

        return track_core_main(arguments_list)
    parser = _parser()
    arguments = parser.parse_args(arguments_list)
    handlers: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
        "runs": _runs,
        "show": _show,
        "copy": _copy,
    }
    try:
        return handlers[arguments.command](arguments, sys.stdout)
    except _Failure as failure:
        print(f"track {arguments.command}: {failure}", file=sys.stderr)
        return failure.code
    except KeyboardInterrupt:
        print(f"track {arguments.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # track runs ... | head
        return EXIT_OK
    except Exception as error:  # a backend's own error: its message, not a traceback
        print(f"track {arguments.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return _exit_code(error)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
