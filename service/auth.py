"""API keys: off unless ``api_keys_file`` names a file of hashed keys. Each line of the file is a scope and
the hex sha256 of a key (``python -m service.keys new`` makes one); the keys themselves are never stored
nor logged. A request carries its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The
``inference`` scope reaches the task endpoints, the v2 protocol's models and the docs; ``admin`` also
reaches ``/metrics``, ``/v1/models`` and the v2 repository operations. The health endpoints stay open for
probes."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from .admission import PROBE_PATHS
from .errors import Forbidden, Unauthorized, error_response

ADMIN_PATHS = frozenset({"/metrics", "/v1/models"})
ADMIN_PREFIXES = ("/v2/repository",)


class KeyScope(IntEnum):
    """What a key may reach; a higher scope includes the lower ones."""

    INFERENCE = 1
    ADMIN = 2


def key_digest(key: str) -> str:
    """The hex sha256 of a key, as the keys file stores it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def required_scope(path: str) -> KeyScope | None:
    """The scope a path needs; None for the open ones."""
    if path in PROBE_PATHS:
        return None
    if path in ADMIN_PATHS or path.startswith(ADMIN_PREFIXES):
        return KeyScope.ADMIN
    return KeyScope.INFERENCE


@dataclass(frozen=True)
class KeyRing:
    """The hashed keys of a keys file, with their scopes."""

    entries: tuple[tuple[KeyScope, bytes], ...]

    @classmethod
    def read(cls, path: Path) -> KeyRing:
        """Parse a keys file; ``ValueError`` naming the line at fault."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read the API keys file {path}: {exc.strerror or exc}") from exc
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0].upper() not in KeyScope.__members__:
                raise ValueError(f"{path}, line {number}: expected '<inference|admin> <sha256 hex>'")
            try:
                digest = bytes.fromhex(parts[1])
            except ValueError:
                digest = b""
            if len(digest) != hashlib.sha256().digest_size:
                raise ValueError(f"{path}, line {number}: the second field is not a sha256 hex digest")
            entries.append((KeyScope[parts[0].upper()], digest))
        if not entries:
            raise ValueError(f"{path} holds no key: every request would be refused")
        return cls(tuple(entries))

    def scope_of(self, key: str) -> KeyScope | None:
        """The scope of ``key``, or None. Every entry is compared, in constant time, whatever matches."""
        digest = hashlib.sha256(key.encode("utf-8", errors="surrogateescape")).digest()
        found: KeyScope | None = None
        for scope, stored in self.entries:
            if hmac.compare_digest(digest, stored) and (found is None or scope > found):
                found = scope
        return found


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>``, else ``X-API-Key``."""
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


class ApiKeys:
    """ASGI middleware: a request to a path that needs a scope is answered 401 (no key, or a key not in
    the file; with ``WWW-Authenticate``) or 403 (a key of a lower scope) before it reaches a route."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["path"])
        if needed is not None:
            key = presented_key(dict(scope["headers"]))
            held = self.keys.scope_of(key) if key is not None else None
            error: Unauthorized | Forbidden | None = None
            if held is None:
                what = "no API key" if key is None else "an API key that is not known"
                error = Unauthorized(
                    f"this endpoint needs an API key (Authorization: Bearer <key>, or X-API-Key); the "
                    f"request has {what}"
                )
            elif held < needed:
                error = Forbidden(f"this endpoint needs an API key of scope {needed.name.lower()}")
            if error is not None:
                await error_response(error, scope)(scope, receive, send)
                return
        await self.app(scope, receive, send)
