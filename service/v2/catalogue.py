"""The v2 models of the repository: ``<name>`` for each task pipeline, ``<name>.<graph>`` for each ONNX
graph; which version serves a name, and the repository index."""

from __future__ import annotations

from contract.manifest import Manifest

from ..errors import ModelNotFound, ModelNotReady
from ..registry import ModelRegistry, ModelState, ModelVersion
from ..settings import Settings
from .base import Servable
from .graphs import GraphModel
from .pipelines import PIPELINES

GRAPH_SEPARATOR = "."  # model names never hold one (models/README.md), so `<name>.<graph>` is unambiguous
_STATES = {
    ModelState.LOADING: "LOADING",
    ModelState.READY: "READY",
    ModelState.FAILED: "UNAVAILABLE",
    ModelState.UNLOADED: "UNAVAILABLE",
}


def model_names(manifest: Manifest) -> list[str]:
    """The v2 models of a version: its pipeline, then one per graph."""
    return [manifest.name, *(f"{manifest.name}{GRAPH_SEPARATOR}{key}" for key in manifest.graphs)]


def _split(name: str) -> tuple[str, str | None]:
    """A v2 name's model and graph (None: the task model; ``"name."`` names the graph "", which none is)."""
    model, separator, graph = name.partition(GRAPH_SEPARATOR)
    return model, graph if separator else None


def _describes(entry: ModelVersion, graph: str | None) -> bool:
    return entry.manifest is not None and (graph is None or graph in entry.manifest.graphs)


def resolve(registry: ModelRegistry, settings: Settings, name: str, version: str | None) -> Servable:
    """The v2 model ``name`` (at ``version``, else the highest ready version, else the highest whose
    manifest was read). 404 for an unknown name or version; 503 when no version could be read."""
    model, graph = _split(name)
    entries = [v for v in registry.versions if v.name == model]
    if not entries:
        raise ModelNotFound(f"unknown model '{name}'")
    if version is not None:
        entries = [v for v in entries if str(v.version) == version]
        if not entries:
            raise ModelNotFound(f"model '{name}' has no version {version}")
    described = [v for v in entries if _describes(v, graph)]
    if not described:
        if all(v.manifest is not None for v in entries):
            raise ModelNotFound(f"unknown model '{name}'")
        reasons = sorted({v.reason or "loading" for v in entries})
        raise ModelNotReady(f"model '{name}' is not ready: {'; '.join(reasons)}")
    ready = [v for v in described if v.state is ModelState.READY]
    entry = max(ready or described, key=lambda v: v.version)
    assert entry.manifest is not None
    if graph is not None:
        return GraphModel(name, entry, entry.manifest, settings, graph)
    return PIPELINES[entry.manifest.task](name, entry, entry.manifest, settings)


def ready_versions(registry: ModelRegistry, name: str) -> list[str]:
    """The versions of a v2 model that serve requests, lowest first."""
    model, graph = _split(name)
    return [str(v.version) for v in registry.ready_versions() if v.name == model and _describes(v, graph)]


def repository_index(registry: ModelRegistry, ready_only: bool) -> list[dict[str, str]]:
    """The repository extension's index: every v2 model of every version, with its state and reason."""
    index = []
    for entry in registry.versions:
        if ready_only and entry.state is not ModelState.READY:
            continue
        names = model_names(entry.manifest) if entry.manifest is not None else [entry.name]
        state, reason = _STATES[entry.state], entry.reason or ""
        index += [{"name": n, "version": str(entry.version), "state": state, "reason": reason} for n in names]
    return sorted(index, key=lambda item: (item["name"], int(item["version"])))
