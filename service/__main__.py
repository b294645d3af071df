"""``python -m service``: run the HTTP server. Every option overrides the setting of the same name
(``MODELSERVE_<NAME>`` in the environment)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from .main import create_app
from .server import Supervisor, serve
from .settings import Settings

EXIT_BAD_SETTINGS = 2
EXIT_CANNOT_BIND = 3  # as uvicorn exits when its port cannot be bound


def parse_args(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The options given on the command line, as settings overrides."""
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m service", description=__doc__)
    parser.add_argument("--host", help="interface to bind (MODELSERVE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (MODELSERVE_PORT, default 8000)")
    parser.add_argument(
        "--models-dir", type=Path, help="model repository (MODELSERVE_MODELS_DIR, default models)"
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="(MODELSERVE_LOG_LEVEL, default info)",
    )
    parser.add_argument(
        "--providers",
        nargs="+",
        metavar="PROVIDER",
        help="execution providers by preference (MODELSERVE_PROVIDERS)",
    )
    parser.add_argument(
        "--require-gpu", action="store_true", default=None, help="unready unless every model runs on a GPU"
    )
    parser.add_argument(
        "--workers", type=int, help="server processes sharing the port (MODELSERVE_WORKERS, default 1)"
    )
    args = vars(parser.parse_args(argv))
    return {key: value for key, value in args.items() if value is not None}


def load_settings(overrides: dict[str, Any]) -> Settings:
    """The settings, or exit with status 2 and a line per problem (not pydantic's traceback)."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            given = error.get("input")
            print(f"error: setting {name}: {error['msg']} (given: {given!r})", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTINGS)
    except SettingsError as exc:  # a list or mapping setting in the environment that is not JSON
        print(
            f"error: {exc}; list and mapping settings are JSON in the environment, e.g. "
            """MODELSERVE_PROVIDERS='["CPUExecutionProvider"]'""",
            file=sys.stderr,
        )
        sys.exit(EXIT_BAD_SETTINGS)
    if not settings.models_dir.is_dir():
        what = "is not a directory" if settings.models_dir.exists() else "does not exist"
        print(f"error: the model repository {settings.models_dir} {what} (--models-dir)", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTINGS)
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    """Build the settings (environment, then command line) and serve. Exit status 2 for settings that
    are not valid (or a model repository that is not a directory), 3 when the port cannot be bound."""
    settings = load_settings(parse_args(argv))
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1:
        try:
            sys.exit(Supervisor(settings).run())
        except OSError as exc:  # binding the port: in use, not allowed
            print(f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
            sys.exit(EXIT_CANNOT_BIND)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
