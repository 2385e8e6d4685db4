"""Read the tensors of a CTranslate2 `model.bin` (format version 6) into numpy arrays.

The Whisper packages ship CTranslate2 conversions only; their tensors are the original weights in float16, so a
PyTorch module can be rebuilt from them (see `models/whisper_encoder.py`). The format is a flat list of named
tensors (CTranslate2's `ModelSpec._serialize`): a little-endian header, then for each variable its name, shape,
dtype id and raw bytes, then aliases, which are ignored here. Nothing is unpickled.
"""

from __future__ import annotations

import struct

import numpy as np

from modelyard.errors import BundleError

VERSION = 6
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # CTranslate2's DataType ids


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.unpack("H")  # with its trailing NUL
        text = self.data[self.pos : self.pos + size - 1].decode("utf-8")
        self.pos += size
        return text


def read_variables(data: bytes, prefix: str = "") -> dict[str, np.ndarray]:
    """Variables whose names start with `prefix`, as float32 (floating) or integer arrays."""
    reader = _Reader(data)
    version = reader.unpack("I")
    if version != VERSION:
        raise BundleError(f"CTranslate2 model.bin format version {version}; modelyard reads version {VERSION}")
    reader.string()  # spec name, e.g. WhisperSpec
    reader.unpack("I")  # spec revision
    out: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        shape = [reader.unpack("I") for _ in range(reader.unpack("B"))]
        dtype_id = reader.unpack("B")
        size = reader.unpack("I")
        start, reader.pos = reader.pos, reader.pos + size
        if not name.startswith(prefix):
            continue
        if dtype_id not in DTYPES:
            raise BundleError(f"CTranslate2 variable {name} has dtype id {dtype_id}, which modelyard cannot read")
        array = np.frombuffer(reader.data, DTYPES[dtype_id], size // np.dtype(DTYPES[dtype_id]).itemsize, start)
        array = array.reshape(shape)
        out[name] = array.astype(np.float32) if array.dtype == np.float16 else array.copy()
    return out
