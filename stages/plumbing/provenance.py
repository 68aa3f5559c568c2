"""What made an artifact: config hash, seed, package versions, host and device."""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import subprocess
import time
from functools import cache
from importlib import metadata
from pathlib import Path
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


@cache
def code_version() -> dict[str, Any]:
    """The git commit the ``stages`` package runs at and whether its tracked files differ
    from it (``dirty``); ``commit`` is None outside a git checkout."""
    root = Path(stages.__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def provenance(config: Any, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """A record to store with every artifact: config and its hash, seed, versions, host, time."""
    return {
        "config": config,
        "config_hash": config_hash(config),
        "seed": seed,
        "versions": package_versions(),
        "code": code_version(),
        "host": socket.gethostname(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
