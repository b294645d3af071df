"""Which versions of a model are served (the version policy, as Triton has it), and how a version's files
are told apart from the last time they were tried (so that one copied in half-written is tried again once
it is whole)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

POLICY_PATTERN = r"^(all|latest:[1-9][0-9]*|specific:[1-9][0-9]*(,[1-9][0-9]*)*)$"


@dataclass(frozen=True)
class VersionPolicy:
    """``all`` versions that load; the ``latest:N`` highest that load (a newer version that fails to load
    never displaces a working one); or a ``specific:1,3`` set."""

    kind: str
    count: int = 0
    versions: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        """``all``, ``latest:N`` or ``specific:V[,V...]`` (the setting is checked against POLICY_PATTERN)."""
        if not re.match(POLICY_PATTERN, text):
            raise ValueError(f"version policy {text!r} is not all, latest:N or specific:V,V,...")
        kind, _, arguments = text.partition(":")
        if kind == "latest":
            return cls(kind, count=int(arguments))
        if kind == "specific":
            return cls(kind, versions=frozenset(int(v) for v in arguments.split(",")))
        return cls(kind)

    def admits(self, version: int) -> bool:
        """Whether the policy may serve ``version`` at all (``latest`` decides by what loads)."""
        return self.kind != "specific" or version in self.versions

    def enough(self, ready: int) -> bool:
        """Whether ``ready`` served versions of a model are all the policy wants."""
        return self.kind == "latest" and ready >= self.count

    def __str__(self) -> str:
        if self.kind == "latest":
            return f"latest:{self.count}"
        if self.kind == "specific":
            return "specific:" + ",".join(map(str, sorted(self.versions)))
        return "all"


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """The files of a version directory with their sizes and modification times."""
    try:
        files = sorted(p for p in directory.rglob("*") if p.is_file())
        return tuple((str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except OSError:  # the directory went away meanwhile
        return ()
