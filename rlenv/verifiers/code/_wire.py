"""Framing and a strict value codec for the channel between the verifier and sandboxed code.

Frames are a 4-byte big-endian length and a UTF-8 JSON body, at most ``MAX_FRAME`` bytes.
Values cross as *plain data only*: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``,
``complex``, and ``list``/``tuple``/``dict``/``set``/``frozenset`` of those — checked with
``type(x) is ...``, never ``isinstance``, so a subclass with a lying ``__eq__`` cannot cross.
The verifier compares what it decodes; code under test never sees an expected value.

This module is imported by the sandboxed child too, so it uses the standard library only.
"""

from __future__ import annotations

import json
import math
import socket
import struct
from typing import Any

MAX_FRAME = 8 * 1024 * 1024
MAX_DEPTH = 100


class WireError(Exception):
    """A frame or value that breaks the protocol (the run then fails)."""


def encode(value: Any, depth: int = 0) -> Any:
    """Plain data → JSON-compatible tagged form; raises :class:`WireError` on anything else."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if abs(value) < 2**53 else {"i": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {"f": repr(value)}
    if kind is list:
        return [encode(item, depth + 1) for item in value]
    if kind is tuple:
        return {"t": [encode(item, depth + 1) for item in value]}
    if kind in (set, frozenset):
        items = [encode(item, depth + 1) for item in value]
        return {"s" if kind is set else "fs": sorted(items, key=json.dumps)}
    if kind is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [encode(value.real), encode(value.imag)]}
    raise WireError(f"a {kind.__name__} is not plain data")


def decode(data: Any, depth: int = 0) -> Any:
    """The inverse of :func:`encode`; raises :class:`WireError` on anything malformed."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if kind is list:
        return [decode(item, depth + 1) for item in data]
    if kind is dict and len(data) == 1:
        ((tag, body),) = data.items()
        try:
            if tag == "i":
                return int(body)
            if tag == "f":
                return float(body)
            if tag == "t":
                return tuple(decode(item, depth + 1) for item in body)
            if tag == "s":
                return {decode(item, depth + 1) for item in body}
            if tag == "fs":
                return frozenset(decode(item, depth + 1) for item in body)
            if tag == "d":
                return {decode(k, depth + 1): decode(v, depth + 1) for k, v in body}
            if tag == "b":
                return bytes.fromhex(body)
            if tag == "c":
                return complex(decode(body[0]), decode(body[1]))
        except (TypeError, ValueError) as error:
            raise WireError(f"malformed {tag!r} value: {error}") from None
    raise WireError("malformed value")


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise WireError("frame too large")
    sock.sendall(struct.pack(">I", len(body)) + body)


def receive(sock: socket.socket) -> dict[str, Any]:
    """One frame; raises ``EOFError`` when the peer is gone, ``WireError`` on garbage."""
    header = _read_exact(sock, 4)
    (length,) = struct.unpack(">I", header)
    if length > MAX_FRAME:
        raise WireError("frame too large")
    try:
        message = json.loads(_read_exact(sock, length))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WireError(f"not JSON: {error}") from None
    if type(message) is not dict:
        raise WireError("a frame must be a JSON object")
    return message


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("the peer closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
