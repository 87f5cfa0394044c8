"""KServe v2 over HTTP, with Triton's binary-tensor extension: the wire form both sides of the HTTPS transport
share (the client in engines.remote.http, the server's HTTP door in serve.http_gate).

A request or answer body is a JSON header, then the tensors' bytes back to back; the header's length is in
the `Inference-Header-Content-Length` HTTP header and each tensor says its byte count in
`parameters.binary_data_size`. Tensors may also travel as a flat JSON list in `data` (tritonclient.http sends
either). Only numeric tensors: the swap models take none of another kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
TOKEN_HEADER = "triton-access-token"  # the HTTP form of Triton's restricted-protocol header (gRPC prefixes it)
DTYPES: dict[str, str] = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "int8",
    "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}
MAX_DIMS = 8


class WireError(ValueError):
    """A body that is not KServe v2 as this side reads it; the message is one line."""


class Tensor(NamedTuple):
    name: str
    datatype: str
    shape: list[int]
    data: bytes  # little-endian, row-major


def triton_type(array: np.ndarray) -> str:
    for name, dt in DTYPES.items():
        if np.dtype(dt) == array.dtype:
            return name
    raise WireError(f"a {array.dtype} tensor cannot travel (numeric tensors only)")


def to_tensor(name: str, array: np.ndarray) -> Tensor:
    dtype = triton_type(array)
    data = np.ascontiguousarray(array, dtype=np.dtype(DTYPES[dtype])).tobytes()
    return Tensor(name, dtype, [int(d) for d in array.shape], data)


def to_array(t: Tensor) -> np.ndarray:
    return np.frombuffer(t.data, np.dtype(DTYPES[t.datatype])).reshape(t.shape)


def expected_bytes(datatype: str, shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[datatype]).itemsize


def encode(header: dict[str, Any], tensors: Sequence[Tensor], key: str) -> tuple[bytes, int]:
    """(body, JSON header length): `header[key]` lists each tensor with its byte count; bytes follow."""
    header = {**header, key: [{**entry, "parameters": {**entry.get("parameters", {}), "binary_data_size": len(t.data)}}
                              for entry, t in zip(header.get(key, [{}] * len(tensors)), tensors, strict=True)]}
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([head, *(t.data for t in tensors)]), len(head)


def split(body: bytes, header_length: str | None) -> tuple[dict[str, Any], memoryview]:
    """The JSON header (a dict) and the bytes after it."""
    n = len(body)
    if header_length is not None:
        if not header_length.strip().isdigit() or int(header_length) > len(body):
            raise WireError(f"{HEADER_LENGTH} {header_length[:20]!r} is not a length within the body")
        n = int(header_length)
    try:
        header = json.loads(bytes(body[:n]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"the JSON header is not JSON ({str(e)[:80]})") from None
    if not isinstance(header, dict):
        raise WireError("the JSON header is not an object")
    return header, memoryview(body)[n:]


def tensors(entries: object, rest: memoryview, what: str) -> list[Tensor]:
    """The tensors the header's `entries` describe, their bytes taken in order from `rest`; WireError else."""
    if not isinstance(entries, list) or not entries:
        raise WireError(f"the request lists no {what}")
    out, offset = [], 0
    for entry in entries:
        if not isinstance(entry, dict):
            raise WireError(f"an entry of {what} is not an object")
        name, dtype, shape = entry.get("name"), entry.get("datatype"), entry.get("shape")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise WireError(f"an entry of {what} has no usable name")
        if dtype not in DTYPES:
            raise WireError(f"{name}: datatype {str(dtype)[:16]!r} is not served (numeric tensors only)")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 31 for d in shape)):
            raise WireError(f"{name}: the shape is not a list of sizes")
        need = expected_bytes(dtype, shape)
        params = entry.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or size != need or offset + size > len(rest):
                raise WireError(f"{name}: binary_data_size {str(size)[:16]} does not match its shape or the body")
            data = bytes(rest[offset:offset + size])
            offset += size
        else:
            data = _json_data(name, dtype, shape, entry.get("data"), need)
        out.append(Tensor(name, dtype, shape, data))
    if offset != len(rest):
        raise WireError(f"the body holds {len(rest) - offset} bytes no tensor claims")
    return out


def _json_data(name: str, dtype: str, shape: list[int], data: object, need: int) -> bytes:
    if not isinstance(data, list):
        raise WireError(f"{name}: neither binary_data_size nor data")
    try:
        array = np.asarray(data, dtype=np.dtype(DTYPES[dtype]))
    except (TypeError, ValueError, OverflowError):
        raise WireError(f"{name}: data is not a list of {dtype} numbers") from None
    raw = array.tobytes()
    if len(raw) != need:
        raise WireError(f"{name}: data holds {array.size} values, the shape {shape} needs another count")
    return raw


def infer_request(inputs: Sequence[tuple[str, np.ndarray]], output: str) -> tuple[bytes, int]:
    """The body of POST /v2/models/M/infer asking for `output` in binary."""
    ts = [to_tensor(n, a) for n, a in inputs]
    header = {"inputs": [{"name": t.name, "datatype": t.datatype, "shape": t.shape} for t in ts],
              "outputs": [{"name": output, "parameters": {"binary_data": True}}]}
    return encode(header, ts, "inputs")


def infer_answer(body: bytes, headers: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The named outputs of an answer to POST .../infer; WireError when it is not one."""
    header, rest = split(body, headers.get(HEADER_LENGTH))
    return {t.name: to_array(t) for t in tensors(header.get("outputs"), rest, "outputs")}


def error_body(line: str) -> bytes:
    return json.dumps({"error": line}).encode()


def error_text(body: bytes) -> str:
    """The one line of an error answer ({"error": ...}); the start of the body when it is something else."""
    try:
        value = json.loads(body[:4096]) if body[:1] == b"{" else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        value = None
    title = re.search(rb"<title>([^<]{1,100})</title>", body[:2048], re.I)
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        text = value["error"]
    elif title:  # a proxy's or tunnel's error page: its title says it
        text = "the proxy answered " + title.group(1).decode("utf-8", "replace")
    else:
        text = body[:200].decode("utf-8", "replace")
    return " ".join(text.split())[:200]
