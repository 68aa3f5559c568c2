"""Shared test helpers: small raw files in the real formats, and fetch + prepare in file order."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from stages.data import registry
from stages.data.dataset import Dataset, read_dataset
from stages.data.manifest import fetch_raw
from stages.data.preparation import prepare
from stages.plumbing.artifacts import read_arrays


def fetch_prepare_in_file_order(tmp_path: Path, name: str, source_dir: Path | None = None,
                                params: dict | None = None
                                ) -> tuple[dict[str, Any], Dataset, np.ndarray, np.ndarray]:
    """Fetch and prepare dataset ``name`` under ``tmp_path``; returns the manifest, the prepared
    dataset, and its X (N, ...) and y (N,) put back in the loader's (file) order."""
    raw = tmp_path / "raw" / name
    manifest = fetch_raw(name, raw, source_dir=source_dir)
    out = tmp_path / "results" / f"{name}.h5"
    prepare(name, raw / "manifest.json", out, params)
    ds = read_dataset(out)
    file_order = np.argsort(read_arrays(out, required=("source_index",))[0]["source_index"])
    return manifest, ds, ds.X[file_order], ds.y[file_order]


def jule_h5(path: Path, data: np.ndarray, labels: np.ndarray, **extra: np.ndarray) -> Path:
    """An HDF5 file like JULE's data4torch.h5: datasets 'data' and 'labels' (and ``extra``), as
    given (JULE's MATLAB-written files read as data (N, C, W, H) float64, labels (N, 1))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=data)
        handle.create_dataset("labels", data=labels)
        for key, value in extra.items():
            handle.create_dataset(key, data=value)
    return path


def face_mat(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """A .mat in the usual 32x32 face-file layout: 'fea' (N, H*W) double, each row an image
    stored column-major (MATLAB order), and 'gnd' (N, 1) double. ``images``: (N, H, W)."""
    from scipy.io import savemat

    n = images.shape[0]
    fea = images.transpose(0, 2, 1).reshape(n, -1).astype(np.float64)  # column-major pixels
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"fea": fea, "gnd": labels.reshape(n, 1).astype(np.float64)})
    return path


# --- a local HTTP server for downloads (from tests/test_download.py) --------------------------


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
    """A ThreadingHTTPServer on 127.0.0.1 serving tmp_path/www; records every request path. A
    path under /partial/ announces the whole file but sends half of it and closes the
    connection (a download cut short)."""
    root = tmp_path / "www"
    root.mkdir()
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path.startswith("/partial/"):
                data = (root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
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


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``members`` (name -> bytes), in that order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def serve_as(server: Server, monkeypatch, name: str, data: bytes, **changes) -> None:
    """Serve ``data`` as dataset ``name``'s one raw file, pinned (same algorithm) to its hash;
    ``changes`` replace fields of the dataset's spec (e.g. a small ``n_samples``)."""
    spec = registry.DATASETS[name]
    (remote,) = spec.files
    server.put(name, remote.name, data)
    pin = {remote.algorithm: hashlib.new(remote.algorithm, data).hexdigest()}
    files = (dataclasses.replace(remote, url=server.url(name, remote.name), fallback_urls=(),
                                 **pin),)
    monkeypatch.setitem(registry.DATASETS, name, dataclasses.replace(spec, files=files, **changes))


def examples_config() -> dict:
    """config.yaml with config/datasets-examples.yaml layered on it as Snakemake layers a
    --configfile (its own ``update_config``: dicts merged recursively)."""
    import yaml
    from snakemake.utils import update_config

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config.yaml").read_text())
    update_config(config, yaml.safe_load((repo / "config" / "datasets-examples.yaml").read_text()))
    return config
