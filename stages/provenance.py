"""What made an artifact: config hash, seed, package versions, host and device."""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import time
from importlib import metadata
from typing import Any

import stages

_PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "h5py", "pandas")


def config_hash(config: Any) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of ``config``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour can change results."""
    versions = {"python": platform.python_version(), "stages": stages.__version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(config: Any, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """A record to store with every artifact: config and its hash, seed, versions, host, time."""
    return {
        "config": config,
        "config_hash": config_hash(config),
        "seed": seed,
        "versions": package_versions(),
        "host": socket.gethostname(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
