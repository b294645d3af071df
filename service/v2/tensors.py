"""The Open Inference Protocol v2 on the wire: inference requests and responses in JSON, and the binary
tensor data extension (tensors after the JSON object, whose length ``Inference-Header-Content-Length``
gives). Tensors become numpy arrays in row-major order; a BYTES tensor is an object array of ``bytes``,
serialized in binary as a 4-byte little-endian length before each element's bytes."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadRequest

# The datatypes the service's tensors have, and the element type of each in binary.
DATATYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "INT64": np.dtype("<i8"),
    "BYTES": np.dtype(object),
}
# A manifest's dtype -> its v2 datatype.
MANIFEST_DATATYPES = {"float32": "FP32", "int64": "INT64"}
# numpy kinds a JSON array may hold for each numeric datatype (bools and strings are refused).
_JSON_KINDS = {"FP32": "iuf", "INT64": "i"}
_LENGTH = struct.Struct("<I")
_JSON_TYPES: dict[type, str] = {str: "string", list: "array", dict: "object"}
_END = object()  # marks an exhausted iterator


@dataclass(frozen=True)
class InputTensor:
    """One input of a request, not yet checked against the model: ``data`` is the JSON ``data``, or the
    tensor's bytes when it came as binary data."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any
    binary: bool


@dataclass(frozen=True)
class RequestedOutput:
    """An output the request asks for, and whether it wants it as binary data."""

    name: str
    binary: bool


@dataclass(frozen=True)
class InferenceRequest:
    """A parsed inference request. ``outputs`` is None when the request names none (then every output is
    returned, as binary data if ``binary_outputs``)."""

    id: str | None
    parameters: dict[str, Any]
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None
    binary_outputs: bool


@dataclass(frozen=True)
class OutputTensor:
    """One output of a response."""

    name: str
    datatype: str
    array: np.ndarray
    binary: bool


# ------------------------------------------------------------------------------------------ request


def parse_request(body: bytes, header_length: str | None) -> InferenceRequest:
    """Parse an inference request body; ``header_length`` is the ``Inference-Header-Content-Length``
    header, present when binary tensors follow the JSON object. Raises ``BadRequest``."""
    if header_length is None:
        head, binary = body, b""
    else:
        digits = header_length.strip()
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses (a 500), and a body can
        # hold no more than 20 digits' worth (int() refuses over 4,300)
        length = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 20 else 0
        if not 0 < length <= len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length {_shortened(header_length)!r} is not a length within the "
                f"body of {len(body)} bytes"
            )
        head, binary = body[:length], body[length:]
    request = parse_json_object(head, "the inference request")
    parameters = _parameters(request, "the request")
    inputs = _field(request, "inputs", list, "the request")
    if not inputs:
        raise BadRequest("the request has no inputs")
    offset = 0
    tensors = []
    for i, item in enumerate(inputs):
        tensor, size = _input(item, i, binary, offset)
        tensors.append(tensor)
        offset += size
    if offset != len(binary):
        raise BadRequest(
            f"the body has {len(binary)} bytes of binary data after the JSON object, but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    binary_outputs = _flag(parameters, "binary_data_output", "the request's parameters")
    outputs = None
    if "outputs" in request:
        requested = _field(request, "outputs", list, "the request")
        outputs = [_requested_output(item, i, binary_outputs) for i, item in enumerate(requested)]
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("the request's id must be a string")
    return InferenceRequest(request_id, parameters, tensors, outputs, binary_outputs)


def _shortened(text: str, most: int = 40) -> str:
    """``text``, cut to its first ``most`` characters (an error message must not echo a huge header)."""
    return text if len(text) <= most else text[:most] + "..."


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object from bytes, or ``BadRequest``."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest(f"{what} is nested too deeply") from exc
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _input(item: Any, index: int, binary: bytes, offset: int) -> tuple[InputTensor, int]:
    """One ``$request_input`` and the number of binary bytes it takes, starting at ``offset``."""
    where = f"input {index}"
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be a JSON object")
    name = _field(item, "name", str, where)
    where = f"input '{name}'"
    datatype = _field(item, "datatype", str, where)
    shape = _field(item, "shape", list, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(f"{where}: shape must be a list of non-negative integers, got {shape}")
    parameters = _parameters(item, where)
    if "shared_memory_region" in parameters:
        raise BadRequest(f"{where}: shared memory is not supported; send the data in the body")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in item:
            raise BadRequest(f"{where} has neither data nor parameters.binary_data_size")
        return InputTensor(name, datatype, tuple(shape), item["data"], binary=False), 0
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"{where}: binary_data_size must be a non-negative integer, got {size!r}")
    if "data" in item:
        raise BadRequest(f"{where} has both data and parameters.binary_data_size")
    if offset + size > len(binary):
        raise BadRequest(
            f"{where}: binary_data_size {size} runs past the end of the body "
            f"({len(binary) - offset} bytes of binary data left)"
        )
    data = binary[offset : offset + size]
    return InputTensor(name, datatype, tuple(shape), data, binary=True), size


def _requested_output(item: Any, index: int, binary_default: bool) -> RequestedOutput:
    if not isinstance(item, dict):
        raise BadRequest(f"output {index} must be a JSON object")
    name = _field(item, "name", str, f"output {index}")
    parameters = _parameters(item, f"output '{name}'")
    for unsupported in ("classification", "shared_memory_region"):
        if unsupported in parameters:
            raise BadRequest(f"output '{name}': the {unsupported} parameter is not supported")
    binary = _flag(parameters, "binary_data", f"output '{name}'", default=binary_default)
    return RequestedOutput(name, binary)


def _field(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise BadRequest(f"{where} has no {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise BadRequest(f"{where}: {key!r} must be a JSON {_JSON_TYPES[kind]}")
    return value


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = obj.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: 'parameters' must be a JSON object")
    return parameters


def _flag(parameters: dict[str, Any], key: str, where: str, default: bool = False) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: {key} must be true or false")
    return value


# ------------------------------------------------------------------------------------------ tensors


def to_numpy(tensor: InputTensor) -> np.ndarray:
    """The tensor's data as an array of its shape; its element count and types must match it. Only the
    datatypes in ``DATATYPES`` are read; the caller has checked the datatype against the model."""
    count = math.prod(tensor.shape)
    where = f"input '{tensor.name}'"
    if tensor.datatype == "BYTES":
        items = _read_bytes(tensor.data, where) if tensor.binary else _json_strings(tensor.data, where)
        _check_count(tensor, len(items))
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(tensor.shape)
    dtype = DATATYPES[tensor.datatype]
    if tensor.binary:
        if len(tensor.data) != count * dtype.itemsize:
            raise BadRequest(
                f"{where} has {len(tensor.data)} bytes of binary data, its shape {list(tensor.shape)} "
                f"of {tensor.datatype} needs {count * dtype.itemsize}"
            )
        return np.frombuffer(tensor.data, dtype=dtype).reshape(tensor.shape)
    try:
        values = np.array(tensor.data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(f"{where}: data is not a regular array of numbers") from exc
    _check_count(tensor, values.size)
    if values.dtype.kind not in _JSON_KINDS[tensor.datatype]:
        expected = "integers" if tensor.datatype == "INT64" else "numbers"
        raise BadRequest(f"{where}: {tensor.datatype} data must be {expected}")
    return values.astype(dtype).reshape(tensor.shape)


def _check_count(tensor: InputTensor, count: int) -> None:
    needed = math.prod(tensor.shape)
    if count != needed:
        raise BadRequest(
            f"input '{tensor.name}' has {count} elements, its shape {list(tensor.shape)} needs {needed}"
        )


def _json_strings(data: Any, where: str) -> list[bytes]:
    """The UTF-8 bytes of every string in a (nested) JSON array, in row-major order."""
    if not isinstance(data, list):
        raise BadRequest(f"{where}: data must be a JSON array")
    items: list[bytes] = []
    stack = [iter(data)]
    while stack:
        value = next(stack[-1], _END)
        if value is _END:
            stack.pop()
        elif isinstance(value, list):
            stack.append(iter(value))
        elif isinstance(value, str):
            try:
                items.append(value.encode("utf-8"))
            except UnicodeEncodeError as exc:  # JSON can spell a lone surrogate: "\ud800"
                raise BadRequest(f"{where}: a string is not valid Unicode (a lone surrogate)") from exc
        else:
            raise BadRequest(f"{where}: BYTES data must be strings")
    return items


def _read_bytes(data: bytes, where: str) -> list[bytes]:
    """Binary BYTES elements: each a 4-byte little-endian length, then that many bytes."""
    items: list[bytes] = []
    offset, view = 0, memoryview(data)
    while offset < len(view):
        if offset + _LENGTH.size > len(view):
            raise BadRequest(f"{where}: BYTES binary data ends inside an element's length")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise BadRequest(f"{where}: BYTES element {len(items)} of {length} bytes runs past the data")
        items.append(bytes(view[offset : offset + length]))
        offset += length
    return items


# ----------------------------------------------------------------------------------------- response


def encode_response(
    model_name: str, model_version: str, request_id: str | None, outputs: list[OutputTensor]
) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON object when binary outputs follow it (the
    ``Inference-Header-Content-Length``; None when the body is all JSON)."""
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    entries, chunks = [], []
    for output in outputs:
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.array.shape),
        }
        if output.binary:
            raw = _binary(output)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _json_data(output)
        entries.append(entry)
    response["outputs"] = entries
    head = json.dumps(response, separators=(",", ":")).encode()
    if not chunks:
        return head, None
    return head + b"".join(chunks), len(head)


def _binary(output: OutputTensor) -> bytes:
    flat = output.array.ravel()
    if output.datatype == "BYTES":
        return b"".join(_LENGTH.pack(len(item)) + item for item in flat)
    return flat.astype(DATATYPES[output.datatype]).tobytes()


def _json_data(output: OutputTensor) -> list[Any]:
    flat = output.array.ravel()
    if output.datatype == "BYTES":
        return [item.decode("utf-8") for item in flat]  # the service's BYTES outputs are text
    values: list[Any] = flat.tolist()
    return values
