"""``python -m track_core``: list backends, list and replay spool files.

``replay`` exits 0 when every file was written whole, 2 when some file was damaged (its intact
items were written, what was lost is printed, and the file is kept as ``PATH.damaged``), and 1
when some file could not be replayed at all (it is left as it is).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from track_core.api import pending_spools, replay
from track_core.discovery import installed_backends
from track_core.errors import SpoolDamagedWarning

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DAMAGED = 2


def _replay_one(path: str, backend: str | None) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpoolDamagedWarning)
        try:
            count = replay(path, backend)
        except Exception as error:
            print(f"{path}: not replayed: {error}", file=sys.stderr)
            return EXIT_FAILED
    damaged = [w.message for w in caught if isinstance(w.message, SpoolDamagedWarning)]
    for other in caught:
        if not isinstance(other.message, SpoolDamagedWarning):
            warnings.showwarning(
                other.message, other.category, other.filename, other.lineno, other.file
            )
    if not damaged:
        print(f"{path}: {count} item(s) written")
        return EXIT_OK
    report = damaged[0]
    lost = report.lost_items if report.exact else f"at least {report.lost_items}"
    print(f"{path}: {count} item(s) written; DAMAGED: {lost} item(s) lost")
    print(str(report), file=sys.stderr)
    return EXIT_DAMAGED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m track_core",
        epilog="replay exits 0 when all was written, 2 when a file was damaged "
        "(intact items written, losses printed), 1 when a file could not be replayed",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backends", help="list the installed backends")
    spools = commands.add_parser("spools", help="list spool files waiting to be replayed")
    spools.add_argument("--dir", default=None)
    spools.add_argument(
        "--damaged", action="store_true", help="also list damaged files kept after a replay"
    )
    replaying = commands.add_parser("replay", help="write spool files to their backends")
    replaying.add_argument("paths", nargs="*", help="spool files (default: all pending)")
    replaying.add_argument("--backend", default=None, help="backend string overriding the file's")
    arguments = parser.parse_args(argv)
    if arguments.command == "backends":
        for name, entry_point in sorted(installed_backends().items()):
            print(f"{name}\t{entry_point.value}")
        return EXIT_OK
    if arguments.command == "spools":
        for path in pending_spools(arguments.dir, damaged=arguments.damaged):
            print(path)
        return EXIT_OK
    paths = arguments.paths or [str(path) for path in pending_spools()]
    results = {_replay_one(path, arguments.backend) for path in paths}
    if EXIT_FAILED in results:
        return EXIT_FAILED
    return EXIT_DAMAGED if EXIT_DAMAGED in results else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
