"""``python -m service.healthcheck``: exit 0 when the local server answers ``GET /health/ready`` with 200, 1
otherwise (the image's ``HEALTHCHECK``). Standard library only, so that a check every few seconds costs
little: it reads ``MODELSERVE_HOST`` and ``MODELSERVE_PORT`` directly, never the settings class."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

# A server bound to every interface is checked over loopback.
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def ready_url(host: str, port: int) -> str:
    """The readiness URL of a server bound to ``host``:``port``."""
    host = _LOOPBACK.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/health/ready"


def check(url: str, timeout_s: float) -> tuple[bool, str]:
    """Whether ``url`` answers 200, and what to print about it."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return response.status == 200, f"ready ({response.status})"
    except urllib.error.HTTPError as exc:
        try:
            reasons = json.loads(exc.read()).get("reasons", [])
        except ValueError:
            reasons = []
        return False, f"not ready ({exc.code}): {'; '.join(reasons) or exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"no answer from {url}: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """Check the local server's readiness; the exit status is the answer."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="python -m service.healthcheck", description=__doc__
    )
    parser.add_argument("--host", default=os.environ.get("MODELSERVE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MODELSERVE_PORT", "8000")))
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    ok, message = check(ready_url(args.host, args.port), args.timeout)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
