"""onnxruntime sessions: execution-provider preference and options from the settings, and what each
session actually got (onnxruntime falls back to CPU silently; ``session.get_providers()`` tells the truth)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .settings import Settings

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = frozenset({CUDA, TENSORRT})

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def provider_options(name: str, settings: Settings) -> dict[str, Any]:
    """The options the settings give to one execution provider."""
    if name == CUDA:
        options: dict[str, Any] = {
            "device_id": settings.device_id,
            "arena_extend_strategy": settings.cuda_arena_extend_strategy,
            "cudnn_conv_algo_search": settings.cudnn_conv_algo_search,
        }
        if settings.cuda_mem_limit_bytes is not None:
            options["gpu_mem_limit"] = settings.cuda_mem_limit_bytes
        return options
    if name == TENSORRT:
        options = {"device_id": settings.device_id, "trt_fp16_enable": settings.trt_fp16}
        if settings.trt_engine_cache_dir is not None:
            options["trt_engine_cache_enable"] = True
            options["trt_engine_cache_path"] = str(settings.trt_engine_cache_dir)
        return options
    return {}


def requested_providers(settings: Settings) -> list[str]:
    """The preferred providers this onnxruntime build knows (others are logged and dropped)."""
    available = set(ort.get_available_providers())
    unknown = [p for p in settings.providers if p not in available]
    if unknown:
        logger.warning("execution providers not in this onnxruntime build, ignored: %s", ", ".join(unknown))
    return [p for p in settings.providers if p in available] or [CPU]


def session_options(settings: Settings) -> ort.SessionOptions:
    """Graph optimisation and thread settings shared by every session."""
    options = ort.SessionOptions()
    options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization_level]
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    spinning = "1" if settings.intra_op_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    return options


def create_session(path: Path, settings: Settings) -> ort.InferenceSession:
    """Create a session with the preferred providers; log the providers it actually got."""
    names = requested_providers(settings)
    session = _session(path, names, settings)
    actual = session.get_providers()
    if TENSORRT in names and TENSORRT not in actual and CUDA in actual:
        # TensorRT failed (its libraries are missing, say) and onnxruntime fell back to CUDA and CPU
        # *without* their options (device_id, memory limit, cuDNN search): ask again without TensorRT.
        logger.warning("%s: TensorRT could not be used; creating the session again without it", path)
        names = [name for name in names if name != TENSORRT]
        session = _session(path, names, settings)
        actual = session.get_providers()
    if actual[0] != names[0]:
        logger.warning("%s: requested %s, running on %s", path, names, actual)
    else:
        logger.info("%s: running on %s", path, actual)
    return session


def _session(path: Path, names: list[str], settings: Settings) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(path),
        sess_options=session_options(settings),
        providers=[(name, provider_options(name, settings)) for name in names],
    )


def uses_gpu(providers: list[str]) -> bool:
    """Whether a session's actual providers include a GPU provider."""
    return any(p in GPU_PROVIDERS for p in providers)
