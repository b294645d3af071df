"""The Open Inference Protocol v2 (KServe, Triton): health, server and model metadata, inference in JSON
and with the binary tensor data extension, and the model repository index. The models are those of
service/v2/catalogue.py, over the same registry and runtimes as /v1; errors are the protocol's
``{"error": "..."}`` (service/errors.py renders every error under /v2 that way)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from ..deps import RegistryDep, SettingsDep
from ..errors import BadRequest, ModelNotReady
from ..registry import ModelRegistry
from ..settings import Settings
from ..v2.base import Servable, Started, TensorMeta
from ..v2.catalogue import ready_versions, repository_index, resolve
from ..v2.schemas import ErrorV2, IndexEntry, ModelMetadata, ServerMetadata
from ..v2.tensors import InferenceRequest, OutputTensor, encode_response, parse_json_object, parse_request
from .common import answer_unless_gone

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])

EXTENSIONS = ["binary_tensor_data", "model_repository"]
HEADER_LENGTH = "Inference-Header-Content-Length"
_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorV2}, 404: {"model": ErrorV2}}
_HEALTH: dict[int | str, dict[str, Any]] = {200: {"description": "True"}, 400: {"description": "False"}}
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "description": "The inference request as JSON; with the binary tensor data extension, binary "
        f"tensors follow it and the {HEADER_LENGTH} header gives the JSON's length.",
        "content": {"application/json": {}, "application/octet-stream": {}},
    }
}


@router.get("", response_model=ServerMetadata)
async def server_metadata(request: Request) -> ServerMetadata:
    """The server's name, version and protocol extensions."""
    return ServerMetadata(name=request.app.title, version=request.app.version, extensions=EXTENSIONS)


@router.get("/health/live", responses=_HEALTH, response_class=Response)
async def server_live() -> Response:
    """200 while the process answers."""
    return Response(status_code=200)


@router.get("/health/ready", responses=_HEALTH, response_class=Response)
async def server_ready(registry: RegistryDep) -> Response:
    """200 when the service is ready (as ``/health/ready``), else 400."""
    return Response(status_code=400 if registry.readiness() else 200)


@router.get("/models/{name}", response_model=ModelMetadata, responses=_ERRORS)
async def model_metadata(name: str, registry: RegistryDep, settings: SettingsDep) -> ModelMetadata:
    """A model's platform, versions, inputs and outputs (datatype, shape; -1: any size)."""
    return _metadata(resolve(registry, settings, name, None), registry)


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata, responses=_ERRORS)
async def model_version_metadata(
    name: str, version: str, registry: RegistryDep, settings: SettingsDep
) -> ModelMetadata:
    """The metadata of one version of a model."""
    return _metadata(resolve(registry, settings, name, version), registry)


@router.get("/models/{name}/ready", responses={**_HEALTH, 404: {"model": ErrorV2}})
async def model_ready(name: str, registry: RegistryDep, settings: SettingsDep) -> Response:
    """200 when a version of the model serves requests, else 400; 404 for an unknown model."""
    return _ready(registry, settings, name, None)


@router.get("/models/{name}/versions/{version}/ready", responses={**_HEALTH, 404: {"model": ErrorV2}})
async def model_version_ready(
    name: str, version: str, registry: RegistryDep, settings: SettingsDep
) -> Response:
    """200 when the version serves requests, else 400; 404 for an unknown model or version."""
    return _ready(registry, settings, name, version)


@router.post("/models/{name}/infer", responses=_ERRORS, openapi_extra=_INFER_BODY)
async def model_infer(name: str, request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    """Inference on the highest ready version of the model."""
    return await _infer(resolve(registry, settings, name, None), request)


@router.post("/models/{name}/versions/{version}/infer", responses=_ERRORS, openapi_extra=_INFER_BODY)
async def model_version_infer(
    name: str, version: str, request: Request, registry: RegistryDep, settings: SettingsDep
) -> Response:
    """Inference on one version of the model."""
    return await _infer(resolve(registry, settings, name, version), request)


@router.post("/repository/index", response_model=list[IndexEntry], responses=_ERRORS)
async def index(request: Request, registry: RegistryDep) -> list[IndexEntry]:
    """Every model version of the repository with its state (``{"ready": true}``: only those ready)."""
    body = await request.body()
    ready_only = False
    if body.strip():
        ready_only = parse_json_object(body, "the index request").get("ready", False)
        if not isinstance(ready_only, bool):
            raise BadRequest("'ready' must be true or false")
    return [IndexEntry(**entry) for entry in repository_index(registry, ready_only)]


@router.post("/repository/models/{name}/load", responses=_ERRORS)
async def load(name: str, registry: RegistryDep) -> Response:
    """Serve the model again after an unload, rescanning the repository: its versions are loaded and
    warmed as the version policy says; 200 once one serves, 400 with the reasons when none loads."""
    try:
        await asyncio.to_thread(registry.load, name)
    except ModelNotReady as exc:
        raise BadRequest(exc.message) from exc
    return Response(status_code=200)


@router.post("/repository/models/{name}/unload", responses=_ERRORS)
async def unload(name: str, registry: RegistryDep) -> Response:
    """Stop serving every version of the model (requests in flight are answered first) until a load."""
    await asyncio.to_thread(registry.unload, name)
    return Response(status_code=200)


def _metadata(servable: Servable, registry: ModelRegistry) -> ModelMetadata:
    return ModelMetadata(**servable.metadata(ready_versions(registry, servable.name)))


def _ready(registry: ModelRegistry, settings: Settings, name: str, version: str | None) -> Response:
    try:
        ready = resolve(registry, settings, name, version).ready()
    except ModelNotReady:
        ready = False
    return Response(status_code=200 if ready else 400)


async def _infer(servable: Servable, request: Request) -> Response:
    servable.runtime()  # 503 before reading the body when the version is not ready
    body = await request.body()
    # parse, check and start in a worker thread; wait for the batcher without holding one (a thread per
    # waiting request would cap the requests in flight at the pool's size); finish and encode in one
    parsed, wanted, started = await run_in_threadpool(
        _start, servable, body, request.headers.get(HEADER_LENGTH)
    )
    result = await answer_unless_gone(request.receive, started.future)
    content, header_length = await run_in_threadpool(_finish, servable, parsed, wanted, started, result)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)}
    )


def _start(
    servable: Servable, body: bytes, header_length: str | None
) -> tuple[InferenceRequest, list[tuple[TensorMeta, bool]], Started]:
    """Parse, check and start inference (blocking: runs in a worker thread); the request, the outputs
    it wants (and whether as binary data), and the inference under way."""
    request = parse_request(body, header_length)
    inputs = servable.read_inputs(request.inputs)
    wanted = servable.select_outputs(request)
    return request, wanted, servable.infer(inputs, [spec.name for spec, _ in wanted], request.parameters)


def _finish(
    servable: Servable,
    request: InferenceRequest,
    wanted: list[tuple[TensorMeta, bool]],
    started: Started,
    result: Any,
) -> tuple[bytes, int | None]:
    """The outputs of finished inference, encoded (in a worker thread: a large response costs time)."""
    results = started.finish(result)
    outputs = [OutputTensor(spec.name, spec.datatype, results[spec.name], binary) for spec, binary in wanted]
    return encode_response(servable.name, servable.version, request.id, outputs)
