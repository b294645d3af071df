"""``python -m service.keys``: make an API key and add its hash to a keys file (``api_keys_file``).

  python -m service.keys new --scope admin --file api-keys     # prints the new key, once
  python -m service.keys hash --scope inference < key.txt      # the file line for a key you have

The file holds only hashes; the key is printed once, on standard output, and nowhere else."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from .auth import KeyScope, key_digest


def line(scope: str, key: str) -> str:
    """The keys file's line for ``key``."""
    return f"{scope} {key_digest(key)}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m service.keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    scopes = [scope.name.lower() for scope in KeyScope]
    new = commands.add_parser(
        "new", allow_abbrev=False, help="make a key, append its hash to --file, print the key"
    )
    new.add_argument("--scope", choices=scopes, default="inference")
    new.add_argument(
        "--file",
        type=Path,
        required=True,
        help="the keys file (made if absent; it holds hashes only, so the container user may read it)",
    )
    hashed = commands.add_parser(
        "hash", allow_abbrev=False, help="the file line for a key read from standard input"
    )
    hashed.add_argument("--scope", choices=scopes, default="inference")
    args = parser.parse_args(argv)
    if args.command == "hash":
        key = sys.stdin.read().strip()
        if not key:
            print("error: no key on standard input", file=sys.stderr)
            return 2
        sys.stdout.write(line(args.scope, key))
        return 0
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        print(f"error: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(line(args.scope, key))
    print(f"added a key of scope {args.scope} to {args.file}; the key (shown once):", file=sys.stderr)
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
