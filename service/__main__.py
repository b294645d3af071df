"""``python -m service``: run the HTTP server. Every option overrides the setting of the same name
(``MODELSERVE_<NAME>`` in the environment)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .main import create_app
from .server import Supervisor, serve
from .settings import Settings


def parse_args(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The options given on the command line, as settings overrides."""
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
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


def main(argv: Sequence[str] | None = None) -> None:
    """Build the settings (environment, then command line) and serve."""
    settings = Settings(**parse_args(argv))
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1:
        sys.exit(Supervisor(settings).run())
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
