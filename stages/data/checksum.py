"""SHA-256 of files, read in blocks."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike, block_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_size):
            digest.update(block)
    return digest.hexdigest()
