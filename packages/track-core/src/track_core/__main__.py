"""``python -m track_core``: list backends, list and replay spool files."""

from __future__ import annotations

import argparse
import sys

from track_core.api import pending_spools, replay
from track_core.discovery import installed_backends


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m track_core")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backends", help="list the installed backends")
    spools = commands.add_parser("spools", help="list spool files waiting to be replayed")
    spools.add_argument("--dir", default=None)
    replaying = commands.add_parser("replay", help="write spool files to their backends")
    replaying.add_argument("paths", nargs="*", help="spool files (default: all pending)")
    replaying.add_argument("--backend", default=None, help="backend string overriding the file's")
    arguments = parser.parse_args(argv)
    if arguments.command == "backends":
        for name, entry_point in sorted(installed_backends().items()):
            print(f"{name}\t{entry_point.value}")
        return 0
    if arguments.command == "spools":
        for path in pending_spools(arguments.dir):
            print(path)
        return 0
    paths = arguments.paths or [str(path) for path in pending_spools()]
    failed = 0
    for path in paths:
        try:
            count = replay(path, arguments.backend)
        except Exception as error:
            failed += 1
            print(f"{path}: not replayed: {error!r}", file=sys.stderr)
        else:
            print(f"{path}: {count} item(s) written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
