"""Request and response bodies on the wire: size limits, and gzip/deflate both ways.

A body is read chunk by chunk and refused (413) as soon as it passes the limit, before it
is all in memory; ``Content-Length`` is checked first. Decompression is bounded by the same
limit, so a small "zip bomb" cannot expand without bound. Responses are compressed when the
client's ``Accept-Encoding`` allows gzip or deflate and the body is worth it.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Mapping

import anyio

from .errors import PayloadTooLarge, ProtocolError, UnsupportedEncoding

__all__ = ["choose_encoding", "compress", "decompress", "read_body"]

_THREAD_BYTES = 1 << 20
"""Bodies larger than this are (de)compressed on a worker thread, off the event loop."""


async def read_body(headers: Mapping[str, str], chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Reads a whole body of at most ``limit`` bytes; PayloadTooLarge past it."""
    declared = headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ProtocolError(f"Content-Length {declared!r} is not an integer") from None
        if length > limit:
            raise PayloadTooLarge(f"the body has {length} bytes; this server takes at most {limit}")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than this server's limit of {limit} bytes")
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _inflate(body: bytes, wbits: int, limit: int, encoding: str) -> bytes:
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(f"the body is not valid {encoding} data: {exc}") from exc
    if len(out) > limit or decoder.unconsumed_tail:
        raise PayloadTooLarge(f"the body decompresses past this server's limit of {limit} bytes")
    if not decoder.eof:
        raise ProtocolError(f"the {encoding} body is truncated")
    return out


def _decompress_sync(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding == "gzip":
        return _inflate(body, 16 + zlib.MAX_WBITS, limit, encoding)
    try:  # RFC 9110 deflate is zlib-wrapped; some clients send it raw
        return _inflate(body, zlib.MAX_WBITS, limit, encoding)
    except ProtocolError:
        return _inflate(body, -zlib.MAX_WBITS, limit, encoding)


async def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Returns the body decoded from its ``Content-Encoding``; 415 for an unknown encoding."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding not in ("gzip", "deflate", "x-gzip"):
        raise UnsupportedEncoding(
            f"Content-Encoding {content_encoding!r} is not supported; use gzip, deflate or identity"
        )
    encoding = "gzip" if encoding == "x-gzip" else encoding
    if len(body) > _THREAD_BYTES:
        return await anyio.to_thread.run_sync(_decompress_sync, body, encoding, limit)
    return _decompress_sync(body, encoding, limit)


def choose_encoding(accept_encoding: str | None) -> str | None:
    """Returns ``gzip`` or ``deflate`` when ``Accept-Encoding`` allows it (q > 0), else None."""
    if not accept_encoding:
        return None
    allowed: dict[str, float] = {}
    for part in accept_encoding.split(","):
        token, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        allowed[token.strip().lower()] = q
    for encoding in ("gzip", "deflate"):
        if allowed.get(encoding, 0.0) > 0:
            return encoding
    return None


def _compress_sync(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, compresslevel=1, mtime=0)
    return zlib.compress(body, 1)


async def compress(body: bytes, encoding: str) -> bytes:
    """Compresses a response body (fast level; on a thread when large)."""
    if len(body) > _THREAD_BYTES:
        return await anyio.to_thread.run_sync(_compress_sync, body, encoding)
    return _compress_sync(body, encoding)
