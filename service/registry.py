"""The registry: which model versions exist, their state, which one serves a request, and readiness."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .batching import BatchConfig, Batcher, QueueWorker
from .errors import ModelNotFound, ModelNotReady
from .manifest import Manifest
from .metrics import Metrics
from .providers import requested_providers, unavailable_providers, uses_gpu
from .repository import VersionDir, discover, load_version, read_manifest
from .runtimes import CaptionerRuntime, ClassifierRuntime, Runtime, RuntimeLoadError, SentimentRuntime
from .settings import Settings
from .step_batching import CaptionBatcher

logger = logging.getLogger(__name__)


class ModelState(StrEnum):
    """Life cycle of a model version."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class ModelVersion:
    """One version of the repository, whatever became of it."""

    source: VersionDir
    state: ModelState = ModelState.LOADING
    manifest: Manifest | None = None
    reason: str | None = None
    runtime: Runtime | None = None
    batcher: QueueWorker[Any, Any] | None = None
    load_time_s: float | None = None
    providers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def task(self) -> str | None:
        """The task, once the manifest was read."""
        return self.manifest.task if self.manifest is not None else None

    def actual_providers(self) -> list[str]:
        """The providers its sessions actually got, over all graphs."""
        return sorted({p for providers in self.providers.values() for p in providers})

    def item_batcher(self) -> Batcher[Any, Any]:
        """The batching queue of a classifier or sentiment model; 503 once it is stopped."""
        if not isinstance(self.batcher, Batcher):
            raise ModelNotReady(f"model {self.name}/{self.version} is not serving")
        return self.batcher

    def caption_batcher(self) -> CaptionBatcher:
        """The step-level decoding queue of a captioner; 503 once it is stopped."""
        if not isinstance(self.batcher, CaptionBatcher):
            raise ModelNotReady(f"model {self.name}/{self.version} is not serving")
        return self.batcher

    @property
    def name(self) -> str:
        """The model's name."""
        return self.source.name

    @property
    def version(self) -> int:
        """The version number."""
        return self.source.version


class ModelRegistry:
    """Holds every discovered version; loading runs in a worker thread while requests are answered."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.requested_providers = requested_providers(settings)
        # requested providers that cannot be created in this process, and why: known once loading starts
        self.unavailable_providers: dict[str, str] = {}
        enabled = set(settings.enabled_models)
        self.versions = [
            ModelVersion(v) for v in discover(settings.models_dir) if not enabled or v.name in enabled
        ]
        self.loading_done = False
        self.shutting_down = False
        self._stop = threading.Event()

    def load_all(self) -> None:
        """Load and warm up every version, one after the other (blocking)."""
        self.unavailable_providers = unavailable_providers(self.settings)
        for entry in self.versions:
            if self._stop.is_set():
                entry.state, entry.reason = ModelState.FAILED, "shut down before loading"
                continue
            self._load(entry)
        self.loading_done = True
        logger.info(
            "loading finished: %d of %d versions ready", len(self.ready_versions()), len(self.versions)
        )

    def _load(self, entry: ModelVersion) -> None:
        started = time.perf_counter()
        try:
            entry.manifest = read_manifest(entry.source)
            runtime = load_version(entry.manifest, entry.source.path, self.settings)
        except RuntimeLoadError as exc:
            entry.state, entry.reason = ModelState.FAILED, str(exc)
            logger.error("model %s/%d skipped: %s", entry.name, entry.version, exc)
            return
        entry.runtime, entry.providers = runtime, runtime.providers()
        entry.batcher = self._batcher(entry, runtime)
        entry.load_time_s = round(time.perf_counter() - started, 4)
        self.metrics.model_info.labels(
            model=entry.name,
            version=str(entry.version),
            task=runtime.task,
            providers=",".join(entry.actual_providers()),
            requested_providers=",".join(self.requested_providers),
        ).set(1)
        entry.state = ModelState.READY
        logger.info(
            "model %s/%d ready in %.2fs; requested %s, actual %s",
            entry.name,
            entry.version,
            entry.load_time_s,
            self.requested_providers,
            entry.providers,
        )

    def _batcher(self, entry: ModelVersion, runtime: Runtime) -> QueueWorker[Any, Any]:
        config = BatchConfig.for_model(self.settings, entry.name)
        metrics = self.metrics.model(entry.name, entry.version)
        label = f"{entry.name}/{entry.version}"
        if isinstance(runtime, CaptionerRuntime):
            return CaptionBatcher(label, runtime, config, metrics)
        assert isinstance(runtime, ClassifierRuntime | SentimentRuntime)
        run: Callable[[list[Any]], Iterable[Any]] = runtime.infer_items
        return Batcher(label, run, config, metrics)

    def stop_loading(self) -> None:
        """Ask ``load_all`` to stop after the version it is loading."""
        self._stop.set()

    def begin_shutdown(self) -> None:
        """The server is going to stop: readiness is false from now on, and loading stops."""
        self.shutting_down = True
        self.stop_loading()

    def ready_versions(self) -> list[ModelVersion]:
        """Versions that are loaded and warmed up."""
        return [v for v in self.versions if v.state is ModelState.READY]

    def serving(self, name: str) -> ModelVersion | None:
        """The version served for a name by default: the highest that is ready."""
        ready = [v for v in self.ready_versions() if v.name == name]
        return max(ready, key=lambda v: v.version) if ready else None

    def resolve(self, task: str, model: str | None, default: str) -> ModelVersion:
        """The version that serves a request: ``model`` is ``name`` or ``name:version``; without it, the
        ``default`` name, else the first ready model of the task by name."""
        if model is None:
            names = sorted({v.name for v in self.ready_versions() if v.task == task})
            if not names:
                if not self.loading_done:
                    raise ModelNotReady(f"no {task} model is ready yet")
                raise ModelNotFound(f"no {task} model is loaded")
            model = default if default in names else names[0]
        name, pin, pinned = model.partition(":")  # "name:" pins no version that exists
        candidates = [v for v in self.versions if v.name == name and (not pin or str(v.version) == pinned)]
        if not candidates:
            raise ModelNotFound(f"unknown model {model!r}")
        other_tasks = {v.task for v in candidates if v.task is not None and v.task != task}
        if other_tasks and all(v.task != task for v in candidates):
            raise ModelNotFound(f"model {model!r} is a {other_tasks.pop()} model, not {task}")
        ready = [v for v in candidates if v.state is ModelState.READY]
        if not ready:
            reasons = sorted({v.reason or "loading" for v in candidates})
            raise ModelNotReady(f"model {model!r} is not ready: {'; '.join(reasons)}")
        return max(ready, key=lambda v: v.version)

    def readiness(self) -> list[str]:
        """Why the service is not ready; empty when it is. Ready means: loading has finished, every
        enabled model has a ready version (enabled: ``enabled_models``, or every model found if that is
        empty, in which case a model none of whose versions loads is skipped), and, when ``require_gpu``
        is set, no ready version runs on CPU only; and the server is not shutting down."""
        if self.shutting_down:
            return ["shutting down"]
        if not self.loading_done:
            return ["models are still loading"]
        reasons = [
            f"enabled model {name!r} has no loadable version"
            for name in sorted(self.settings.enabled_models)
            if self.serving(name) is None
        ]
        if self.settings.require_gpu:
            on_cpu = [
                f"model {v.name}/{v.version} runs on {v.actual_providers()}, and require_gpu is set"
                for v in self.ready_versions()
                if not all(uses_gpu(providers) for providers in v.providers.values())
            ]
            if on_cpu:
                on_cpu += [f"{name}: {why}" for name, why in self.unavailable_providers.items()]
            reasons += on_cpu
        return reasons

    def close(self) -> None:
        """Stop every batcher once the requests it holds are answered, then release every runtime."""
        for entry in self.versions:
            if entry.batcher is not None:
                entry.batcher.close()
                entry.batcher = None
            if entry.runtime is not None:
                entry.runtime.close()
                entry.runtime = None
