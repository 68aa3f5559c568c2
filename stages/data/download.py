"""Downloading raw files with pooch, verified against pinned checksums, with mirror fallback.

Files are pinned by SHA-256, or by MD5 where a published loader gives only that (the registry's
``RemoteFile.known_hash``, pooch's ``algorithm:hexdigest``). Rules:

* a file already in the raw folder is re-hashed: the right hash means it is used as is (this is
  how a file placed there by hand is accepted, without any request); a wrong hash is an error,
  never silently used or overwritten;
* otherwise each URL is tried in turn; pooch streams to a temporary file beside the target and
  moves it in place only after the hash matched, so a partial or corrupt download is never used;
* when every URL fails, :class:`DownloadError` names the file, every URL tried and why it
  failed, the expected checksum, and the folder where the file can be placed by hand;
* a file without a pinned checksum (user-supplied, none is published) is never downloaded.

The manifest records every file's SHA-256 (``FetchedFile.sha256``), whatever it is pinned by.

Base URLs can be overridden with the ``mirrors`` argument or the ``DCLUST_MIRROR`` environment
variable (base URLs separated by commas or spaces; the file name is appended). An override
replaces the registry's URLs, e.g. to use an institutional mirror or a local test server.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pooch

from stages.data.checksum import file_digest, sha256_file
from stages.data.registry import RemoteFile
from stages.plumbing.errors import DownloadError

log = logging.getLogger("stages.data.download")

MIRROR_ENV = "DCLUST_MIRROR"


@dataclass(frozen=True)
class FetchedFile:
    """A verified raw file: where it is, its SHA-256, and the URL it came from (None: was there)."""

    name: str
    path: Path
    sha256: str
    url: str | None


def candidate_urls(remote: RemoteFile, mirrors: Sequence[str] | None = None) -> list[str]:
    """URLs to try for ``remote``: ``mirrors`` (or ``$DCLUST_MIRROR``) if given, else the
    registry's."""
    if mirrors is None:
        env = os.environ.get(MIRROR_ENV, "").replace(",", " ").split()
        mirrors = env or None
    if mirrors:
        return [base.rstrip("/") + "/" + remote.name for base in mirrors]
    return list(remote.urls())


def _pin(remote: RemoteFile) -> str:
    return f"{remote.algorithm} {remote.digest}"


def _place_by_hand(remote: RemoteFile, target: Path, urls: Iterable[str]) -> str:
    size = f", {remote.size} bytes" if remote.size else ""
    return (f"To place it by hand, download it from {' or '.join(urls)} and save it as {target} "
            f"({_pin(remote)}{size}) — the folder is {target.parent} — then rerun fetch.")


def _sha256(path: Path, remote: RemoteFile) -> str:
    """SHA-256 of a verified file, for the manifest (no second pass when it is pinned by it)."""
    return remote.sha256 if remote.algorithm == "sha256" else sha256_file(path)


def fetch_remote_file(remote: RemoteFile, raw_dir: str | os.PathLike,
                      mirrors: Sequence[str] | None = None) -> FetchedFile:
    """Make ``raw_dir/remote.name`` exist with the pinned checksum, downloading it if needed.

    Raises :class:`DownloadError` if a file already there has the wrong hash, if every URL
    fails (unreachable, HTTP error, or checksum mismatch), or if the file has no pinned checksum
    (it is never downloaded).
    """
    folder = Path(raw_dir).resolve()
    target = folder / remote.name
    urls = candidate_urls(remote, mirrors)
    if not remote.pinned:
        raise DownloadError(
            f"{remote.name} has no published checksum, so it is never downloaded: download it "
            f"from {' or '.join(urls)} yourself and save it as {target} (the folder is "
            f"{target.parent}), then rerun fetch; its content is checked when prepared.")
    if target.exists():
        actual = file_digest(target, remote.algorithm)
        if actual == remote.digest:
            log.info("%s: already present with the pinned %s; not downloading", target,
                     remote.algorithm)
            return FetchedFile(remote.name, target, _sha256(target, remote), None)
        raise DownloadError(
            f"{target} is present but corrupt or a different version: its {remote.algorithm} is "
            f"{actual}, expected {remote.digest}. It was not used. Delete it so fetch downloads "
            f"it again, or replace it. " + _place_by_hand(remote, target, urls))

    folder.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in urls:
        try:
            pooch.retrieve(url, known_hash=remote.known_hash, fname=remote.name,
                           path=folder, progressbar=sys.stderr.isatty())
        # requests errors are OSErrors; a hash mismatch is a ValueError
        except (OSError, ValueError) as err:
            reason = " ".join(str(err).split())
            log.warning("%s: download from %s failed: %s", remote.name, url, reason)
            failures.append(f"  {url}: {type(err).__name__}: {reason}")
            continue
        return FetchedFile(remote.name, target, _sha256(target, remote), url)

    raise DownloadError(
        f"could not download {remote.name} (expected {_pin(remote)}); every URL failed:\n"
        + "\n".join(failures) + "\n" + _place_by_hand(remote, target, urls))


def fetch_remote_files(files: Iterable[RemoteFile], raw_dir: str | os.PathLike,
                       mirrors: Sequence[str] | None = None) -> list[FetchedFile]:
    """:func:`fetch_remote_file` for each file, in order.

    Every file is attempted even after one fails, so that a single :class:`DownloadError` lists
    all the files to place by hand.
    """
    fetched: list[FetchedFile] = []
    errors: list[str] = []
    for remote in files:
        try:
            fetched.append(fetch_remote_file(remote, raw_dir, mirrors))
        except DownloadError as err:
            errors.append(str(err))
    if len(errors) == 1:
        raise DownloadError(errors[0])
    if errors:
        raise DownloadError(f"{len(errors)} raw files are missing:\n" + "\n\n".join(errors))
    return fetched
