"""A reader for CTranslate2 ``model.bin`` files (no ``ctranslate2`` package needed).

Layout of version 6, little-endian: u32 version, string spec name, u32 spec revision, u32 variable count,
then per variable: string name, u8 rank, rank x u32 dims, u8 dtype, u32 byte count, raw bytes; then u32 alias
count and (alias, target) string pairs. A string is a u16 length (counting a trailing NUL) followed by its
bytes.

Example::

    variables, aliases = read_ct2_model(Path("model/model.bin"))   # {"encoder/conv1/weight": array, ...}
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CheckpointError

logger = logging.getLogger(__name__)

SUPPORTED_VERSION = 6
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"),
           4: np.dtype("<f2"), 5: np.dtype("<u2")}  # 5 = bfloat16, widened to float32 on read
_BFLOAT16 = 5


class _Reader:
    """A cursor over the file's bytes that raises CheckpointError instead of reading past the end."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int) -> int:
        """Advance past ``n`` bytes and return the offset where they start."""
        start = self.pos
        if start + n > len(self.data):
            raise CheckpointError(f"{self.path}: truncated CTranslate2 model (needs {n} bytes at offset {start}, "
                                  f"file has {len(self.data)}); download it again")
        self.pos += n
        return start

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        """Read little-endian ``struct`` values."""
        size = struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.data, self.take(size))

    def string(self) -> str:
        """Read a u16-length-prefixed UTF-8 string (its trailing NUL dropped)."""
        (n,) = self.unpack("H")
        raw = self.data[self.take(n):self.pos]
        try:
            return (raw[:-1] if raw.endswith(b"\0") else raw).decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.path}: unreadable name at offset {self.pos - n}; file is damaged") from None


def read_ct2_model(path: Path, spec: str | None = "WhisperSpec") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a CTranslate2 ``model.bin``: ``(variables by name, aliases {alias: target})``.

    Arrays are views on the file bytes (bfloat16 is widened to float32). ``spec`` checks the stored spec
    name (None skips it). Raises CheckpointError on another format version, a wrong spec or a damaged file.
    """
    path = Path(path)
    reader = _Reader(path.read_bytes(), path)
    (version,) = reader.unpack("I")
    if version != SUPPORTED_VERSION:
        raise CheckpointError(f"{path}: CTranslate2 model.bin version {version} is not supported "
                              f"(this reader handles version {SUPPORTED_VERSION})")
    spec_name = reader.string()
    (revision,) = reader.unpack("I")
    if spec is not None and spec_name != spec:
        raise CheckpointError(f"{path}: holds a CTranslate2 {spec_name!r}, expected {spec!r}")
    (count,) = reader.unpack("I")
    variables = dict(_read_variable(reader) for _ in range(count))
    (n_aliases,) = reader.unpack("I")
    aliases = dict((reader.string(), reader.string()) for _ in range(n_aliases))
    if reader.pos != len(reader.data):
        raise CheckpointError(f"{path}: {len(reader.data) - reader.pos} unexpected bytes after the aliases")
    logger.info("read %s: %s revision %d, %d variables, %d aliases", path, spec_name, revision, count, n_aliases)
    return variables, aliases


def _read_variable(reader: _Reader) -> tuple[str, np.ndarray]:
    """One ``(name, array)`` record at the reader's position."""
    name = reader.string()
    (rank,) = reader.unpack("B")
    dims = reader.unpack(f"{rank}I")
    dtype_id, nbytes = reader.unpack("BI")
    if dtype_id not in _DTYPES:
        raise CheckpointError(f"{reader.path}: variable {name!r} has unknown dtype code {dtype_id}")
    dtype = _DTYPES[dtype_id]
    if nbytes != int(np.prod(dims, dtype=np.int64)) * dtype.itemsize:
        raise CheckpointError(f"{reader.path}: variable {name!r} of shape {dims} holds {nbytes} bytes; file is damaged")
    array = np.frombuffer(reader.data, dtype=dtype, count=nbytes // dtype.itemsize,
                          offset=reader.take(nbytes)).reshape(dims)
    if dtype_id == _BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return name, array
