"""onnxruntime sessions: execution-provider preference and options from the settings, and what each
session actually got (onnxruntime falls back to CPU silently; ``session.get_providers()`` tells the truth)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
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
    unknown = [p for p in settings.providers if p not in available and p not in _unknown_logged]
    if unknown:  # once per process and name, as for providers that cannot be created (check_provider)
        _unknown_logged.update(unknown)
        logger.warning("execution providers not in this onnxruntime build, ignored: %s", ", ".join(unknown))
    return [p for p in settings.providers if p in available] or [CPU]


_unknown_logged: set[str] = set()


@dataclass(frozen=True)
class ProviderCheck:
    """Whether a GPU provider can be created in this process, with the options the settings give it."""

    name: str
    usable: bool
    reason: str = ""


_checks: dict[tuple[str, str], ProviderCheck] = {}
_checking = threading.Lock()


def check_provider(name: str, settings: Settings) -> ProviderCheck:
    """Create a session of a one-node graph with ``name`` (and CPU) once per process and options, and see
    whether ``name`` is among the providers it got. onnxruntime-gpu lists CUDA and TensorRT on every
    machine; creating them where their libraries or the GPU are missing prints a screenful of errors per
    session (and the Python wrapper's "EP Error" banner) before falling back. The check takes that output,
    keeps the reason in a line, and leaves the other sessions to ask only for providers that can work."""
    if name not in GPU_PROVIDERS:
        return ProviderCheck(name, usable=True)
    options = provider_options(name, settings)
    key = (name, repr(sorted(options.items())))
    with _checking:
        if key not in _checks:
            _checks[key] = _probe(name, options)
        return _checks[key]


def usable_providers(settings: Settings) -> list[str]:
    """The requested providers that can be created in this process (CPU always can)."""
    return [name for name in requested_providers(settings) if check_provider(name, settings).usable] or [CPU]


def unavailable_providers(settings: Settings) -> dict[str, str]:
    """The requested providers that cannot be created in this process, each with the reason."""
    checks = [check_provider(name, settings) for name in requested_providers(settings)]
    return {check.name: check.reason for check in checks if not check.usable}


def _probe(name: str, options: dict[str, Any]) -> ProviderCheck:
    error = ""
    with _native_output() as lines:
        try:
            session = ort.InferenceSession(_probe_model(), providers=[(name, options), CPU])
            usable = name in session.get_providers()
        except Exception as exc:  # onnxruntime raises its own types (a provider failing without fallback)
            usable, error = False, str(exc)
    if lines:
        logger.debug("onnxruntime's output while creating %s:\n%s", name, "\n".join(lines))
    if usable:
        logger.info("%s can be created", name)
        return ProviderCheck(name, usable=True)
    reason = _reason(name, lines) or next(iter(error.strip().splitlines()), "")
    reason = reason or "onnxruntime did not create it and gave no reason"
    logger.warning("%s cannot be created here, not asked for again by this process: %s", name, reason)
    return ProviderCheck(name, usable=False, reason=reason)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LIBRARY = re.compile(r"Failed to load library (?P<library>\S+) with error: (?P<error>.+)")
_CREATE = re.compile(r"Failed to create (?P<provider>\w+)\. (?P<why>.+)")


def _reason(name: str, lines: list[str]) -> str:
    """What onnxruntime's output says about why ``name`` was not created: the library that failed to load
    and why, and the first sentence of its "Failed to create" warning; empty when it says neither."""
    library = "libonnxruntime_providers_" + name.removesuffix("ExecutionProvider").lower()
    reasons = []
    for line in lines:
        found = _LIBRARY.search(line)
        if found and Path(found["library"]).name.startswith(library):
            reasons.append(f"{Path(found['library']).name}: {found['error'].strip()}")
            break
    for line in lines:
        found = _CREATE.search(line)
        if found and found["provider"] == name:
            # its first sentence: "Require cuDNN 9.* and CUDA 13.*"
            reasons.append(found["why"].split(". ")[0].strip().rstrip("."))
            break
    return "; ".join(reasons)


def _onnxruntime_lines(lines: list[str]) -> list[bool]:
    """Per line, whether onnxruntime wrote it: its log lines, and the wrapper's "EP Error" banner."""
    marks, banner = [], False
    for line in lines:
        if line.startswith("*************** EP Error"):
            banner = True
        marks.append(banner or "onnxruntime" in line or line.startswith(("EP Error", "Falling back to")))
        if banner and line.startswith("****") and "EP Error" not in line:
            banner = False
    return marks


@contextlib.contextmanager
def _native_output() -> Iterator[list[str]]:
    """Collect, as lines without colour codes, what is written to file descriptor 2 (onnxruntime's C++
    log) and to ``sys.stdout`` (its Python wrapper prints) meanwhile; lines that are not onnxruntime's
    (another thread's log, say) are written to stderr afterwards."""
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        printed = io.StringIO()
        try:
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(printed):
                yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace") + printed.getvalue()
            captured = [_ANSI.sub("", line).rstrip() for line in text.splitlines()]
            captured = [line for line in captured if line.strip()]
            lines.extend(captured)
            marks = _onnxruntime_lines(captured)
            others = [line for line, ours in zip(captured, marks, strict=True) if not ours]
            if others:
                sys.stderr.write("\n".join(others) + "\n")


def _probe_model() -> bytes:
    """A serialized ONNX model with one node, ``y = Relu(x)`` on a float tensor of shape [1] (opset 13, IR
    version 7, which every onnxruntime this package allows reads); written here as protobuf bytes so that
    the service needs no ``onnx`` package."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    def field(number: int, payload: bytes | int) -> bytes:
        if isinstance(payload, int):
            return varint(number << 3) + varint(payload)
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    # TypeProto.Tensor: elem_type 1 (FLOAT), shape with one dimension of value 1
    tensor_type = field(1, 1) + field(2, field(1, field(1, 1)))
    value_info = {name: field(1, name.encode()) + field(2, field(1, tensor_type)) for name in ("x", "y")}
    node = field(1, b"x") + field(2, b"y") + field(4, b"Relu")  # NodeProto: input, output, op_type
    graph = field(1, node) + field(2, b"probe") + field(11, value_info["x"]) + field(12, value_info["y"])
    opset = field(2, 13)  # OperatorSetIdProto: version (default domain)
    return field(1, 7) + field(7, graph) + field(8, opset)  # ModelProto: ir_version, graph, opset_import


def session_options(settings: Settings) -> ort.SessionOptions:
    """Graph optimisation and thread settings shared by every session."""
    options = ort.SessionOptions()
    options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization_level]
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.enable_cpu_mem_arena = settings.cpu_memory_arena
    spinning = "1" if settings.intra_op_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    return options


def create_session(path: Path, settings: Settings) -> ort.InferenceSession:
    """Create a session with the preferred providers that can be created here (``check_provider``); log
    the providers it actually got."""
    names = usable_providers(settings)
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
