"""Digests of files (SHA-256, or MD5 for files pinned only by MD5), read in blocks."""

from __future__ import annotations

import hashlib
import os

#: algorithms a raw file can be checked with (stages.data.registry.HASH_HEX_LENGTH)
ALGORITHMS = ("sha256", "md5")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256",
                block_size: int = 1 << 20) -> str:
    """Hex digest of the file at ``path`` with ``algorithm`` (``sha256`` or ``md5``)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown hash algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike, block_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of the file at ``path``."""
    return file_digest(path, "sha256", block_size)
