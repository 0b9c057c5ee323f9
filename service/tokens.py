"""NextTokens: signed, opaque cursors bound to the query that made them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from typing import NamedTuple

from . import errors

_VERSION = b"1"
_MAC_BYTES = 32
_INVALID = "Invalid NextToken: it is malformed, altered, or from another query"


class Cursor(NamedTuple):
    """The last training job a page returned: its name, and score if scored."""

    name: str
    score: float | None = None


def issue(secret: bytes, query: bytes, cursor: Cursor) -> str:
    """Return the token that resumes `query` after `cursor`."""
    score = b"" if cursor.score is None else repr(cursor.score).encode()
    payload = b"\0".join((_VERSION, score, cursor.name.encode()))
    mac = hmac.digest(secret, query + b"\0" + payload, hashlib.sha256)
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()


def read(secret: bytes, query: bytes, token: str) -> Cursor:
    """Return the cursor in `token`, or raise ValidationError if it is not ours.

    The token must have been issued for this very `query` and be unaltered,
    character for character.
    """
    raw = _decode(token)
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    expected = hmac.digest(secret, query + b"\0" + payload, hashlib.sha256)
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, expected):
        raise errors.ValidationError(_INVALID)

    parts = payload.split(b"\0")
    if len(parts) != 3 or parts[0] != _VERSION or not parts[2]:
        raise errors.ValidationError(_INVALID)
    score = float(parts[1]) if parts[1] else None
    if score is not None and not math.isfinite(score):
        raise errors.ValidationError(_INVALID)
    return Cursor(parts[2].decode(), score)


def _decode(token: str) -> bytes:
    try:
        text = token.encode("ascii")
        raw = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise errors.ValidationError(_INVALID) from None
    # Base64 can map two spellings to the same bytes; only ours is accepted.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != text:
        raise errors.ValidationError(_INVALID)
    return raw
