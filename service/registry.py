"""The registry: which model versions exist, their state, which one serves a request, and readiness."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from contract.manifest import Manifest
from contract.versions import VersionDir, discover

from .batching import BatchConfig, QueueWorker
from .errors import ModelNotFound, ModelNotReady
from .metrics import Metrics
from .providers import requested_providers, unavailable_providers, uses_gpu
from .repository import load_version, read_manifest
from .runtimes import Runtime, RuntimeLoadError
from .settings import Settings
from .versions import VersionPolicy, fingerprint

logger = logging.getLogger(__name__)

B = TypeVar("B", bound=QueueWorker[Any, Any])


class ModelState(StrEnum):
    """Life cycle of a model version."""

    LOADING = "loading"
    READY = "ready"
    UNLOADED = "unloaded"  # not served: by the version policy, by request, or removed from the repository
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
    # the files as they were when the version was last tried: one that failed is tried again once they change
    files: tuple[tuple[str, int, int], ...] = ()

    @property
    def task(self) -> str | None:
        """The task, once the manifest was read."""
        return self.manifest.task if self.manifest is not None else None

    def actual_providers(self) -> list[str]:
        """The providers its sessions actually got, over all graphs."""
        return sorted({p for providers in self.providers.values() for p in providers})

    def serving_batcher(self, kind: type[B]) -> B:
        """The version's batching queue, of the ``kind`` its runtime makes (``Runtime.batcher``); 503 once
        it is stopped."""
        if not isinstance(self.batcher, kind):
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
        self.policy = VersionPolicy.parse(settings.version_policy)
        # replaced whole, never changed in place: request threads read it while the repository changes
        self.versions = [ModelVersion(v) for v in self._discover()]
        self.loading_done = False
        self.shutting_down = False
        self._stop = threading.Event()
        self._changing = threading.RLock()  # one repository change at a time (start-up, poll, load, unload)
        self._unloaded_by_request: set[str] = set()
        self._retiring: list[Retirement] = []
        self._poller: threading.Thread | None = None

    def _discover(self) -> list[VersionDir]:
        enabled = set(self.settings.enabled_models)
        return [v for v in discover(self.settings.models_dir) if not enabled or v.name in enabled]

    def load_all(self) -> None:
        """Load and warm up the versions the version policy serves, newest first (blocking); then, with
        ``repository_poll_s``, watch the repository in a thread of its own."""
        self.unavailable_providers = unavailable_providers(self.settings)
        with self._changing:
            for name in sorted({v.name for v in self.versions}):
                self._apply_policy(name, self.versions)
        self.loading_done = True
        logger.info(
            "loading finished: %d of %d versions ready", len(self.ready_versions()), len(self.versions)
        )
        if self.settings.repository_poll_s > 0 and not self._stop.is_set():
            self._poller = threading.Thread(target=self._poll, name="repository-poll", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.repository_poll_s):
            try:
                self.sync()
            except Exception:  # a repository that cannot be read now may be readable at the next poll
                logger.exception("scanning the model repository %s failed", self.settings.models_dir)

    def sync(self) -> None:
        """Bring what is served in line with the repository on disk: new versions are loaded and warmed,
        and only then served; versions whose files changed since they failed are tried again; versions
        removed from disk, or beyond the version policy, are retired once what replaces them serves."""
        with self._changing:
            found = {(v.name, v.version): v for v in self._discover()}
            known = {(e.name, e.version) for e in self.versions}
            gone = [e for e in self.versions if (e.name, e.version) not in found]
            for entry in self.versions:
                if entry.state is ModelState.FAILED and fingerprint(entry.source.path) != entry.files:
                    entry.state, entry.reason = ModelState.LOADING, None
            added = [ModelVersion(source) for key, source in found.items() if key not in known]
            if added:
                self.versions = sorted([*self.versions, *added], key=lambda v: (v.name, v.version))
            remaining = [e for e in self.versions if e not in gone]
            for name in sorted({e.name for e in self.versions}):
                self._apply_policy(name, remaining)
            for entry in gone:
                self._retire(entry, "removed from the repository")
            if gone:
                self.versions = [e for e in self.versions if e not in gone]

    def load(self, name: str) -> None:
        """The repository extension's load: serve ``name`` again (after ``unload``) and pick up what
        changed on disk. ``ModelNotFound`` when it has no version; ``ModelNotReady`` when none loads."""
        with self._changing:
            self._unloaded_by_request.discard(name)
            self.sync()
            entries = [v for v in self.versions if v.name == name]
            if not entries:
                raise ModelNotFound(f"no model '{name}' in the repository")
            if not any(v.state is ModelState.READY for v in entries):
                reasons = sorted({v.reason or v.state.value for v in entries})
                raise ModelNotReady(f"no version of '{name}' loads: {'; '.join(reasons)}")

    def unload(self, name: str) -> None:
        """The repository extension's unload: stop serving every version of ``name`` (each drained and
        released as a retired version is) until ``load`` asks for it again."""
        with self._changing:
            entries = [v for v in self.versions if v.name == name]
            if not entries:
                raise ModelNotFound(f"no model '{name}' in the repository")
            self._unloaded_by_request.add(name)
            self._apply_policy(name, self.versions)

    def _apply_policy(self, name: str, candidates: list[ModelVersion]) -> None:
        """Load, keep or retire the versions of ``name`` among ``candidates`` as the version policy says,
        newest first: a version is loaded and warmed before an older one is retired for it."""
        served = 0
        for entry in sorted((v for v in candidates if v.name == name), key=lambda v: -v.version):
            if name in self._unloaded_by_request:
                wanted, why = False, "unloaded by request"
            else:
                wanted = self.policy.admits(entry.version) and not self.policy.enough(served)
                why = f"not served under the version policy {self.policy}"
            if wanted:
                if entry.state in (ModelState.LOADING, ModelState.UNLOADED):
                    self._load(entry)
                served += entry.state is ModelState.READY
            elif entry.state is ModelState.READY:
                self._retire(entry, why)
            elif entry.state is ModelState.LOADING:
                entry.state, entry.reason = ModelState.UNLOADED, why

    def _retire(self, entry: ModelVersion, reason: str) -> None:
        """Stop serving a version: new requests no longer reach it at once; its batcher and sessions are
        kept ``retire_grace_s`` for the requests that resolved it just before, then drained and released."""
        was_serving = entry.state is ModelState.READY
        entry.state, entry.reason = ModelState.UNLOADED, reason
        if not was_serving:
            return
        retirement = Retirement(entry, entry.batcher, entry.runtime)
        retirement.timer = threading.Timer(self.settings.retire_grace_s, retirement.release)
        retirement.timer.daemon = True
        self._retiring = [r for r in self._retiring if not r.released] + [retirement]
        retirement.timer.start()
        logger.info("model %s/%d retired (%s)", entry.name, entry.version, reason)

    def _load(self, entry: ModelVersion) -> None:
        if self._stop.is_set():
            entry.state, entry.reason = ModelState.FAILED, "shut down before loading"
            return
        entry.state, entry.reason = ModelState.LOADING, None
        entry.files = fingerprint(entry.source.path)
        started = time.perf_counter()
        try:
            entry.manifest = read_manifest(entry.source)
            runtime = load_version(entry.manifest, entry.source.path, self.settings)
        except RuntimeLoadError as exc:
            entry.state, entry.reason = ModelState.FAILED, str(exc)
            logger.error("model %s/%d skipped: %s", entry.name, entry.version, exc)
            return
        entry.runtime, entry.providers = runtime, runtime.providers()
        config = BatchConfig.for_model(self.settings, entry.name)
        metrics = self.metrics.model(entry.name, entry.version)
        entry.batcher = runtime.batcher(f"{entry.name}/{entry.version}", config, metrics)
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
        ``default`` name when the repository has it (ready or not: a default that failed, or was unloaded,
        says so with 503, never answers through another model), else the first ready model of the task by
        name."""
        if model is None and any(v.name == default for v in self.versions):
            model = default
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
        is set, no ready version runs on CPU only; every default model the repository holds serves; and the
        server is not shutting down."""
        if self.shutting_down:
            return ["shutting down"]
        if not self.loading_done:
            return ["models are still loading"]
        reasons = [
            f"enabled model {name!r} has no loadable version"
            for name in sorted(self.settings.enabled_models)
            if self.serving(name) is None
        ]
        settings = self.settings
        for default in (
            settings.default_image_classifier,
            settings.default_sentiment_model,
            settings.default_captioner,
        ):
            entries = [v for v in self.versions if v.name == default]
            if entries and self.serving(default) is None:  # it would answer 503, not another model
                why = sorted({v.reason or v.state.value for v in entries})
                reasons.append(f"default model {default!r} has no version that serves: {'; '.join(why)}")
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
        """Stop watching the repository; stop every batcher once the requests it holds are answered, then
        release every runtime (those of retired versions too)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        for retirement in self._retiring:
            retirement.release()
        for entry in self.versions:
            if entry.batcher is not None:
                entry.batcher.close()
                entry.batcher = None
            if entry.runtime is not None:
                entry.runtime.close()
                entry.runtime = None


@dataclass
class Retirement:
    """A retired version's batcher and runtime, released once (by its timer, or at shutdown)."""

    entry: ModelVersion
    batcher: QueueWorker[Any, Any] | None
    runtime: Runtime | None
    timer: threading.Timer | None = None
    released: bool = False

    def release(self) -> None:
        """Drain the batcher (it answers what it holds), then release the sessions; the version is
        cleared only if it was not loaded again meanwhile."""
        if self.released:
            return
        self.released = True
        if self.timer is not None:
            self.timer.cancel()
        if self.batcher is not None:
            self.batcher.close()
        if self.runtime is not None:
            self.runtime.close()
        if self.entry.batcher is self.batcher and self.entry.state is not ModelState.READY:
            self.entry.batcher, self.entry.runtime = None, None
