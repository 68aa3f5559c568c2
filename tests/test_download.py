"""Downloads against a local HTTP server: checksums, mirror fallback, files placed by hand."""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from stages.artifacts import read_arrays
from stages.data import registry
from stages.data.dataset import read_dataset
from stages.data.download import MIRROR_ENV, candidate_urls, fetch_remote_file
from stages.data.manifest import fetch_raw
from stages.data.registry import RemoteFile
from stages.errors import DownloadError
from stages.prepare import prepare

CONTENT = b"raw bytes of a dataset file\n" * 100
SHA = hashlib.sha256(CONTENT).hexdigest()


@dataclasses.dataclass
class Server:
    root: Path
    base: str
    requests: list[str]

    def url(self, mirror: str, name: str = "") -> str:
        return f"{self.base}/{mirror}/{name}"

    def put(self, mirror: str, name: str, data: bytes) -> None:
        (self.root / mirror).mkdir(parents=True, exist_ok=True)
        (self.root / mirror / name).write_bytes(data)


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    """A ThreadingHTTPServer on 127.0.0.1 serving tmp_path/www; records every request path."""
    root = tmp_path / "www"
    root.mkdir()
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(root, f"http://127.0.0.1:{httpd.server_address[1]}", seen)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _remote(server: Server, *mirrors: str, name: str = "data.bin", sha: str = SHA) -> RemoteFile:
    urls = [server.url(m, name) for m in mirrors]
    return RemoteFile(name=name, url=urls[0], sha256=sha, fallback_urls=tuple(urls[1:]))


def test_good_file_downloads_and_verifies(server, tmp_path):
    server.put("a", "data.bin", CONTENT)
    raw = tmp_path / "raw"
    fetched = fetch_remote_file(_remote(server, "a"), raw)
    assert fetched.path == (raw / "data.bin").resolve() and fetched.sha256 == SHA
    assert fetched.url == server.url("a", "data.bin")
    assert (raw / "data.bin").read_bytes() == CONTENT
    assert sorted(p.name for p in raw.iterdir()) == ["data.bin"]


def test_corrupt_download_is_rejected_and_not_kept(server, tmp_path):
    server.put("a", "data.bin", CONTENT[:-1] + b"X")
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError) as err:
        fetch_remote_file(_remote(server, "a"), raw)
    message = str(err.value)
    assert "data.bin" in message and server.url("a", "data.bin") in message
    assert SHA in message and str(raw.resolve()) in message
    assert "by hand" in message
    assert list(raw.iterdir()) == []  # no partial or corrupt file left behind


def test_missing_file_404(server, tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError) as err:
        fetch_remote_file(_remote(server, "a"), raw)
    message = str(err.value)
    assert "404" in message and server.url("a", "data.bin") in message and SHA in message
    assert str(raw.resolve()) in message


def test_dead_host_names_every_url(tmp_path):
    dead = ["http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"]
    remote = RemoteFile(name="data.bin", url="http://unused/", sha256=SHA)
    with pytest.raises(DownloadError) as err:
        fetch_remote_file(remote, tmp_path / "raw", mirrors=dead)
    assert all(base + "data.bin" in str(err.value) for base in dead)


def test_mirror_fallback(server, tmp_path):
    server.put("b", "data.bin", CONTENT)
    fetched = fetch_remote_file(_remote(server, "a", "b"), tmp_path / "raw")
    assert fetched.url == server.url("b", "data.bin")
    assert server.requests == ["/a/data.bin", "/b/data.bin"]
    assert (tmp_path / "raw" / "data.bin").read_bytes() == CONTENT


def test_mirror_override_by_environment(server, tmp_path, monkeypatch):
    server.put("m", "data.bin", CONTENT)
    remote = RemoteFile(name="data.bin", url="https://example.invalid/data.bin", sha256=SHA)
    monkeypatch.setenv(MIRROR_ENV, f"{server.url('x')}, {server.url('m')}")
    assert candidate_urls(remote) == [server.url("x", "data.bin"), server.url("m", "data.bin")]
    assert fetch_remote_file(remote, tmp_path / "raw").url == server.url("m", "data.bin")


def test_file_placed_by_hand_is_used_without_request(server, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "data.bin").write_bytes(CONTENT)
    fetched = fetch_remote_file(_remote(server, "a"), raw)
    assert fetched.url is None and fetched.sha256 == SHA
    assert server.requests == []


def test_corrupt_file_already_present_is_reported(server, tmp_path):
    server.put("a", "data.bin", CONTENT)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "data.bin").write_bytes(b"truncated")
    with pytest.raises(DownloadError) as err:
        fetch_remote_file(_remote(server, "a"), raw)
    message = str(err.value)
    assert "corrupt" in message and SHA in message and hashlib.sha256(b"truncated").hexdigest() \
        in message and str(raw.resolve()) in message
    assert server.requests == []
    assert (raw / "data.bin").read_bytes() == b"truncated"  # reported, not silently replaced


def _libsvm_rows(labels: list[int], rng: np.random.Generator) -> bytes:
    lines = []
    for label in labels:
        values = np.round(rng.uniform(-1, 1, 256), 4)
        values[::7] = 0.0  # LIBSVM leaves zeros out
        lines.append(f"{label} " + " ".join(f"{i + 1}:{v:g}" for i, v in enumerate(values) if v))
    return bz2.compress(("\n".join(lines) + "\n").encode())


def test_usps_fetch_and_prepare_with_patched_registry(server, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    train, test = _libsvm_rows(list(range(1, 11)) * 2, rng), _libsvm_rows(list(range(1, 11)), rng)
    server.put("usps", "usps.bz2", train)
    server.put("usps", "usps.t.bz2", test)
    files = tuple(RemoteFile(name=n, url=server.url("usps", n),
                             sha256=hashlib.sha256(data).hexdigest())
                  for n, data in (("usps.bz2", train), ("usps.t.bz2", test)))
    monkeypatch.setitem(registry.DATASETS, "usps",
                        dataclasses.replace(registry.DATASETS["usps"], files=files))
    raw = tmp_path / "data" / "raw" / "usps"
    manifest = fetch_raw("usps", raw)
    assert manifest["kind"] == "download" and len(manifest["urls"]) == 2
    prepare("usps", raw / "manifest.json", tmp_path / "usps.h5")
    ds = read_dataset(tmp_path / "usps.h5")
    assert ds.X.shape == (30, 1, 16, 16) and ds.n_clusters == 10
    index = read_arrays(tmp_path / "usps.h5", required=("source_index",))[0]["source_index"]
    assert ds.y[np.argsort(index)].tolist()[:10] == list(range(10))  # labels 1..10 -> 0..9
    # default "unit": (x + 1) / 2 in [0, 1], what DCEC's code fed its CAE ([0, 2] data / 2)
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0 and ds.X.max() > 0.9
    assert (ds.X == 0.5).any()  # sparse zeros (value 0 in [-1, 1]) filled in, then scaled

    server.requests.clear()
    fetch_raw("usps", raw)  # second fetch: files verified in place, nothing downloaded
    assert server.requests == []
    prepare("usps", raw / "manifest.json", tmp_path / "half.h5", {"scaling": "half"})
    half = read_dataset(tmp_path / "half.h5")
    assert -0.5 <= half.X.min() and half.X.max() <= 0.5 and half.X.min() < -0.4
    assert "x / 2" in half.attrs["preprocessing"]


def test_fashion_falls_back_to_download_when_folder_lacks_files(server, tmp_path, monkeypatch):
    from stages.data.idx import write_idx

    rng = np.random.default_rng(1)
    files = []
    for split, n in (("train", 20), ("t10k", 10)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                            ("labels-idx1", (np.arange(n) % 10).astype(np.uint8))):
            name = f"{split}-{kind}-ubyte.gz"
            write_idx(server.root / name, array)
            files.append(RemoteFile(name=name, url="https://example.invalid/" + name,
                                    sha256=hashlib.sha256((server.root / name).read_bytes())
                                    .hexdigest()))
    monkeypatch.setitem(registry.DATASETS, "fashion",
                        dataclasses.replace(registry.DATASETS["fashion"], files=tuple(files)))
    monkeypatch.setenv(MIRROR_ENV, server.base)
    empty = tmp_path / "empty"
    empty.mkdir()
    raw = tmp_path / "raw" / "fashion"
    manifest = fetch_raw("fashion", raw, source_dir=empty)
    assert manifest["kind"] == "download" and str(empty) in manifest["source"]
    assert {Path(f["path"]).parent for f in manifest["files"]} == {raw.resolve()}
    prepare("fashion", raw / "manifest.json", tmp_path / "fashion.h5")
    assert read_dataset(tmp_path / "fashion.h5").X.shape == (30, 1, 28, 28)


def test_unpinned_file_is_never_downloaded(server, tmp_path):
    server.put("a", "data.bin", CONTENT)
    remote = RemoteFile(name="data.bin", url=server.url("a", "data.bin"))
    with pytest.raises(DownloadError, match="no published checksum") as err:
        fetch_remote_file(remote, tmp_path / "raw")
    assert server.url("a", "data.bin") in str(err.value) and server.requests == []

