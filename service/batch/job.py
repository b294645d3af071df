"""A batch job's model: which version of the repository answers (chosen once, by the command), and
loading it where the work runs (in process, or in each Ray actor)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contract.manifest import Manifest
from contract.versions import discover

from ..repository import load_version, read_manifest, verify_files
from ..runtimes import RuntimeLoadError
from ..settings import Settings
from .inputs import InputError
from .tasks import TASKS, BatchTask, Options


@dataclass(frozen=True)
class Job:
    """What every worker of a job needs to build the same task: picklable, so it travels to Ray."""

    directory: Path  # the version directory
    manifest: Manifest
    settings: Settings
    options: Options

    @property
    def task(self) -> type[BatchTask]:
        """The batch task of the model's runtime."""
        return TASKS[self.manifest.task]

    def load(self) -> BatchTask:
        """Load (verify, create the sessions, warm up) and wrap the model version; ``InputError`` with
        the reason when it cannot be served."""
        try:
            runtime = load_version(self.manifest, self.directory, self.settings)
        except RuntimeLoadError as exc:
            raise InputError(
                f"model {self.manifest.name}/{self.manifest.version} cannot be loaded: {exc}"
            ) from exc
        return self.task(runtime, self.settings, self.options)


def choose_version(models_dir: Path, requested: str) -> tuple[Path, Manifest]:
    """The version ``requested`` names (``name`` or ``name:version``): the pinned one, or the highest
    whose manifest and files check out. ``InputError`` when there is none, with what there is."""
    name, _, pinned = requested.partition(":")
    if pinned and not pinned.isdigit():
        raise InputError(f"model {requested!r}: a version is a number (name:2)")
    found = discover(models_dir)
    versions = sorted((v for v in found if v.name == name), key=lambda v: v.version, reverse=True)
    if pinned:
        versions = [v for v in versions if v.version == int(pinned)]
    if not versions:
        names = sorted({v.name for v in found})
        have = f"it has {', '.join(names)}" if names else "it holds no models"
        raise InputError(f"no model {requested!r} in {models_dir}; {have}")
    reasons = []
    for version in versions:
        try:
            manifest = read_manifest(version)
            verify_files(manifest, version.path)
        except RuntimeLoadError as exc:
            reasons.append(f"{version.name}/{version.version}: {exc}")
            continue
        if manifest.task not in TASKS:
            reasons.append(f"{version.name}/{version.version}: task {manifest.task!r} has no batch task")
            continue
        return version.path, manifest
    raise InputError(f"no version of {requested!r} can be served: {'; '.join(reasons)}")
