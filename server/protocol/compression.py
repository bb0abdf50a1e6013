"""Compressed request bodies (``Content-Encoding: gzip`` or ``deflate``), as tritonclient sends
them with ``request_compression_algorithm``.

The body limit applies to the inflated size: ``zlib``'s incremental decompressor is asked for at
most ``limit + 1`` bytes, so a decompression bomb never grows past the limit in memory (413).
A stream that is corrupt, truncated, or followed by trailing bytes is a 400. ``deflate`` is the
zlib format (RFC 1950, what ``zlib.compress`` and tritonclient write); a raw RFC 1951 stream is
accepted too, as browsers and curl send either.
"""

from __future__ import annotations

import zlib

from server.core.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

__all__ = ["ENCODINGS", "content_encoding", "inflate"]

#: wbits per encoding: gzip header (16 + 15), zlib header (15); raw deflate (-15) as fallback
_WBITS = {"gzip": (16 + zlib.MAX_WBITS,), "x-gzip": (16 + zlib.MAX_WBITS,),
          "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS)}
ENCODINGS = ("gzip", "deflate")


def content_encoding(value: str | None) -> str | None:
    """The request's encoding: ``None`` for identity, else gzip / deflate; 415 otherwise."""
    text = (value or "").strip().lower()
    if text in {"", "identity"}:
        return None
    if text not in _WBITS:
        raise UnsupportedMediaTypeError(f"unsupported Content-Encoding {value.strip()!r}: send "
                                        "the body uncompressed, gzip or deflate")
    return text


def inflate(body: bytes, encoding: str, limit: int, what: str = "request body") -> bytes:
    """The inflated body; 413 when it would exceed ``limit`` bytes, 400 when it is not one
    complete stream of ``encoding``."""
    for wbits in _WBITS[encoding]:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error:
            continue  # try the next container format (deflate: zlib, then raw)
        if len(out) > limit:
            raise PayloadTooLargeError(f"{what} inflates past the server's limit of {limit} "
                                       "bytes")
        if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
            raise BadRequestError(f"{encoding} body is truncated or has trailing bytes")
        return out
    raise BadRequestError(f"{encoding} body is corrupt (not a valid {encoding} stream)")
