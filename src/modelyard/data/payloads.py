"""Request payloads that carry a file's bytes: base64 strings (optionally a `data:` URL) or raw bytes."""

from __future__ import annotations

import base64
import binascii
from typing import Any


def payload_bytes(item: Any, what: str) -> bytes:
    """The bytes a request sent for one `what` (image, audio): raw bytes, or base64 text with or without a
    `data:...;base64,` prefix. ValueError says why not, naming `what`."""
    if isinstance(item, str):
        text = item.strip()
        if text.startswith("data:"):
            text = text.partition(",")[2]
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"not a valid base64 string (send the {what} file's bytes base64-encoded)") from None
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    raise ValueError(f"expected {what} as a base64 string, got {type(item).__name__}")
