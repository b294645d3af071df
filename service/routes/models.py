"""The model listing."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import RegistryDep
from ..registry import ModelRegistry, ModelVersion
from ..schemas import GraphInfo, ModelInfo, ModelsResponse, TensorInfo

router = APIRouter(prefix="/v1", tags=["models"])


def _model_info(entry: ModelVersion, registry: ModelRegistry) -> ModelInfo:
    graphs = {}
    if entry.manifest is not None:
        for key, graph in entry.manifest.graphs.items():
            graphs[key] = GraphInfo(
                file=graph.file,
                inputs=[TensorInfo(**t.model_dump()) for t in graph.inputs],
                outputs=[TensorInfo(**t.model_dump()) for t in graph.outputs],
                providers=entry.providers.get(key, []),
            )
    return ModelInfo(
        name=entry.name,
        version=entry.version,
        task=entry.task,
        status=entry.state.value,
        reason=entry.reason,
        serving=registry.serving(entry.name) is entry,
        load_time_s=entry.load_time_s,
        requested_providers=registry.requested_providers,
        unavailable_providers=registry.unavailable_providers,
        providers=entry.actual_providers(),
        graphs=graphs,
    )


@router.get("/models", response_model=ModelsResponse)
async def list_models(registry: RegistryDep) -> ModelsResponse:
    """Every version in the repository: task, tensors, requested and actual execution providers, status
    (with the reason when not loaded) and load time."""
    return ModelsResponse(models=[_model_info(entry, registry) for entry in registry.versions])
