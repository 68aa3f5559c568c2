"""Downloads against a local HTTP server: checksums, mirror fallback, files placed by hand;
the papers' datasets (CIFAR-10 test, CIFAR-100 aquatic mammals, COIL-20, COIL-100) end to end."""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stages.data import registry
from stages.data.dataset import read_dataset
from stages.data.download import MIRROR_ENV, candidate_urls, fetch_remote_file
from stages.data.manifest import fetch_raw
from stages.data.preparation import prepare
from stages.data.registry import RemoteFile
from stages.plumbing.artifacts import read_arrays
from stages.plumbing.errors import DataFileError, DownloadError
from tests.datafiles import Server
from tests.datafiles import serve_as as _serve_as
from tests.datafiles import tar_gz as _tar_gz

CONTENT = b"raw bytes of a dataset file\n" * 100
SHA = hashlib.sha256(CONTENT).hexdigest()


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


#: every pinned raw file of the registry, once per (name, pin)
REGISTRY_PINS = sorted({(r.name, r.digest): r for spec in registry.DATASETS.values()
                        for r in spec.files if r.pinned}.values(), key=lambda r: r.url)


@pytest.mark.parametrize("remote", REGISTRY_PINS, ids=lambda r: f"{r.name}:{r.digest[:8]}")
def test_every_registry_pin_is_enforced_by_the_download(server, tmp_path, remote):
    """Each pinned file of the registry, served with other bytes by a mirror, is refused with an
    error naming the file, its pinned and its actual hash, and leaves nothing in the raw folder;
    the same bytes pinned by their own hash download: the check is against the pin."""
    wrong = b"not the published " + remote.name.encode() + b"\n" * 200
    server.put("m", remote.name, wrong)
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError) as err:
        fetch_remote_file(remote, raw, mirrors=[server.url("m")])
    message = str(err.value)
    actual = hashlib.new(remote.algorithm, wrong).hexdigest()
    assert remote.name in message and f"{remote.algorithm} {remote.digest}" in message
    assert actual in message and "by hand" in message
    assert server.requests == [f"/m/{remote.name}"]
    assert list(raw.iterdir()) == []  # no corrupt or partial file kept
    fetched = fetch_remote_file(dataclasses.replace(remote, **{remote.algorithm: actual}), raw,
                                mirrors=[server.url("m")])
    assert fetched.path.read_bytes() == wrong
    assert fetched.sha256 == hashlib.sha256(wrong).hexdigest()


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


# --- the papers' datasets: CIFAR-10 test, CIFAR-100 aquatic mammals, COIL-20, COIL-100 ----------

def _cifar_pickle(batch: dict) -> bytes:
    """A batch as CIFAR's Python 2 pickles are: bytes keys and strings, numpy.core globals."""
    raw = pickle.dumps({k.encode(): v for k, v in batch.items()}, protocol=2)
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _fetch_prepare(tmp_path: Path, name: str):
    raw = tmp_path / "raw" / name
    manifest = fetch_raw(name, raw)
    out = tmp_path / f"{name}.h5"
    prepare(name, raw / "manifest.json", out)
    ds = read_dataset(out)
    file_order = np.argsort(read_arrays(out, required=("source_index",))[0]["source_index"])
    return manifest, ds, ds.X[file_order], ds.y[file_order]


def _cifar10(n: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray, list[int]]:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(n)]
    test = {"batch_label": b"testing batch 1 of 1", "labels": labels, "data": data,
            "filenames": [f"img_{i}.png".encode() for i in range(n)]}
    other = {"batch_label": b"training batch 1 of 5", "labels": [0] * 3,
             "data": np.zeros((3, 3072), np.uint8), "filenames": [b"a.png"] * 3}
    archive = _tar_gz({"cifar-10-batches-py/batches.meta": _cifar_pickle({"num_cases": n}),
                       "cifar-10-batches-py/data_batch_1": _cifar_pickle(other),
                       "cifar-10-batches-py/test_batch": _cifar_pickle(test)})
    return archive, data, labels


def test_cifar10_test_download_and_prepare(server, tmp_path, monkeypatch):
    archive, data, labels = _cifar10(20, np.random.default_rng(0))
    _serve_as(server, monkeypatch, "cifar10-test", archive, n_samples=20)
    manifest, ds, X, y = _fetch_prepare(tmp_path, "cifar10-test")
    assert manifest["kind"] == "download" and len(manifest["urls"]) == 1
    assert ds.X.shape == (20, 3, 32, 32) and ds.n_clusters == 10 and ds.input_shape == (3, 32, 32)
    assert y.tolist() == labels  # test_batch only, labels as stored; data_batch_1 ignored
    # rows are the R, G, B planes of 32x32, row-major; raw pixels / 255
    np.testing.assert_allclose(X * 255, data.reshape(20, 3, 32, 32), atol=1e-3)
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0
    assert "/ 255" in ds.attrs["preprocessing"] and "test_batch" in ds.attrs["preprocessing"]


def _cifar100(rng: np.random.Generator) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Train: 15 aquatic (3 per fine class) + 15 others; test: 5 aquatic + 5 others."""
    fine_ids = [4, 30, 55, 72, 95]
    parts, aquatic_x, aquatic_fine = {}, [], []
    for split, per in (("train", 3), ("test", 1)):
        fine = fine_ids * per + [1] * (5 * per)
        coarse = [0] * (5 * per) + [1] * (5 * per)
        order = rng.permutation(len(fine))  # aquatic and other images interleaved
        fine, coarse = [fine[i] for i in order], [coarse[i] for i in order]
        data = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
        parts[f"cifar-100-python/{split}"] = _cifar_pickle(
            {"filenames": [b"x.png"] * len(fine), "batch_label": split.encode(),
             "fine_labels": fine, "coarse_labels": coarse, "data": data})
        keep = np.array(coarse) == 0
        aquatic_x.append(data[keep])
        aquatic_fine.append(np.array(fine)[keep])
    fine_names = [f"class{i}".encode() for i in range(100)]
    for name, i in zip(("beaver", "dolphin", "otter", "seal", "whale"), fine_ids, strict=True):
        fine_names[i] = name.encode()
    coarse_names = [b"aquatic_mammals", b"fish"] + [f"super{i}".encode() for i in range(2, 20)]
    parts["cifar-100-python/meta"] = _cifar_pickle({"fine_label_names": fine_names,
                                                    "coarse_label_names": coarse_names})
    return _tar_gz(parts), np.concatenate(aquatic_x), np.concatenate(aquatic_fine)


def test_cifar100_aquatic_download_and_prepare(server, tmp_path, monkeypatch):
    archive, images, fine = _cifar100(np.random.default_rng(1))
    _serve_as(server, monkeypatch, "cifar100-aquatic", archive, n_samples=20)
    _, ds, X, y = _fetch_prepare(tmp_path, "cifar100-aquatic")
    assert ds.X.shape == (20, 3, 32, 32) and ds.n_clusters == 5
    # fine classes beaver 4, dolphin 30, otter 55, seal 72, whale 95 -> 0..4; train then test
    mapping = {4: 0, 30: 1, 55: 2, 72: 3, 95: 4}
    assert y.tolist() == [mapping[f] for f in fine.tolist()]
    assert np.bincount(y).tolist() == [4] * 5
    np.testing.assert_allclose(X * 255, images.reshape(-1, 3, 32, 32), atol=1e-3)
    assert "train (15) then test (5)" in ds.attrs["preprocessing"]
    assert "beaver (4) -> 0" in ds.attrs["preprocessing"]


def _coil(prefix: str, objects: int, views: list[int], channels: int,
          rng: np.random.Generator) -> tuple[bytes, dict[tuple[int, int], np.ndarray]]:
    shape = (8, 8) if channels == 1 else (8, 8, 3)
    images = {(i, v): rng.integers(0, 256, shape, dtype=np.uint8)
              for i in range(1, objects + 1) for v in views}
    members = {f"{prefix}/obj{i}__{v}.png": _png(img) for (i, v), img in images.items()}
    members[f"{prefix}/convertGroupppm2png.pl"] = b"# not an image\n"  # as coil-100.zip ships
    return _zip(dict(sorted(members.items(), reverse=True))), images


@pytest.mark.parametrize("name, prefix, objects, views, channels", [
    ("coil20", "coil-20-proc", 20, [0, 1], 1),
    ("coil100", "coil-100", 100, [0, 5], 3),
])
def test_coil_download_and_prepare(server, tmp_path, monkeypatch, name, prefix, objects, views,
                                   channels):
    archive, images = _coil(prefix, objects, views, channels, np.random.default_rng(2))
    _serve_as(server, monkeypatch, name, archive, n_samples=objects * len(views),
              input_shape=(channels, 8, 8))
    manifest, ds, X, y = _fetch_prepare(tmp_path, name)
    assert ds.X.shape == (objects * len(views), channels, 8, 8) and ds.n_clusters == objects
    # sorted by object then view, label = object - 1, pixel (row, col) kept where it is
    expected = [images[i, v] for i in range(1, objects + 1) for v in views]
    stacked = np.stack(expected).reshape(len(expected), 8, 8, channels).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(X * 255, stacked, atol=1e-3)
    assert y.tolist() == [i - 1 for i in range(1, objects + 1) for _ in views]
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0
    remote = registry.DATASETS[name].files[0]
    assert remote.algorithm == ("md5" if name == "coil20" else "sha256")
    assert manifest["files"][0]["sha256"] == hashlib.sha256(archive).hexdigest()


@pytest.mark.parametrize("name", ["cifar10-test", "cifar100-aquatic", "coil20", "coil100"])
def test_papers_dataset_checksum_mismatch(server, tmp_path, monkeypatch, name):
    """A server copy that differs from the pinned checksum (MD5 for COIL-20) is refused."""
    remote = registry.DATASETS[name].files[0]
    _serve_as(server, monkeypatch, name, b"the right file")
    server.put(name, remote.name, b"another file")
    raw = tmp_path / "raw" / name
    with pytest.raises(DownloadError) as err:
        fetch_raw(name, raw)
    pinned = registry.DATASETS[name].files[0]
    message = str(err.value)
    assert f"{pinned.algorithm} {pinned.digest}" in message and remote.name in message
    assert "by hand" in message and str(raw.resolve()) in message
    assert not (raw / remote.name).exists()


def test_papers_dataset_wrong_copy_is_refused(server, tmp_path, monkeypatch):
    """Files with the pinned checksum but not the dataset's content (a stale pin, a tiny test
    file against the real counts) stop prepare with what was expected."""
    archive, _, _ = _cifar10(20, np.random.default_rng(3))
    _serve_as(server, monkeypatch, "cifar10-test", archive)  # the real spec: 10,000 images
    with pytest.raises(DataFileError) as err:
        _fetch_prepare(tmp_path / "c10", "cifar10-test")
    assert "20 test images instead of 10,000" in str(err.value)
    assert "'labels' 0..9" in str(err.value) and "rerun stages.fetch" in str(err.value)

    archive, _, _ = _cifar100(np.random.default_rng(4))
    _serve_as(server, monkeypatch, "cifar100-aquatic", archive)
    with pytest.raises(DataFileError, match="20 images of coarse class 0 instead of 3,000"):
        _fetch_prepare(tmp_path / "c100", "cifar100-aquatic")

    archive, _ = _coil("coil-20-proc", 19, [0, 1], 1, np.random.default_rng(5))
    _serve_as(server, monkeypatch, "coil20", archive, n_samples=40, input_shape=(1, 8, 8))
    with pytest.raises(DataFileError) as err:
        _fetch_prepare(tmp_path / "c20", "coil20")
    assert "19 objects (obj1..obj19) with [2] views each" in str(err.value)
    assert "obj1..obj20 x 72 views" in str(err.value)

    archive, _ = _coil("coil-100", 100, [0], 1, np.random.default_rng(6))  # gray, not colour
    _serve_as(server, monkeypatch, "coil100", archive, n_samples=100, input_shape=(3, 8, 8))
    with pytest.raises(DataFileError, match="PNG mode L, not colour"):
        _fetch_prepare(tmp_path / "c100g", "coil100")

    archive, _ = _coil("coil-20-proc", 20, [0], 1, np.random.default_rng(7))  # 8x8, not 128
    _serve_as(server, monkeypatch, "coil20", archive, n_samples=20, input_shape=(1, 128, 128))
    with pytest.raises(DataFileError, match="8x8, not a 128x128 PNG"):
        _fetch_prepare(tmp_path / "c20s", "coil20")


def test_unpinned_file_is_never_downloaded(server, tmp_path):
    server.put("a", "data.bin", CONTENT)
    remote = RemoteFile(name="data.bin", url=server.url("a", "data.bin"))
    with pytest.raises(DownloadError, match="no published checksum") as err:
        fetch_remote_file(remote, tmp_path / "raw")
    assert server.url("a", "data.bin") in str(err.value) and server.requests == []


def test_cifar_pickle_may_not_run_code(tmp_path):
    """The batches are unpickled with numpy array globals only."""
    from stages.data.archives import tar_pickles

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.tar.gz"
    path.write_bytes(_tar_gz({"cifar-10-batches-py/test_batch": pickle.dumps({b"data": Evil()})}))
    with pytest.raises(DataFileError, match="refusing to load builtins.print"):
        tar_pickles(path, ["cifar-10-batches-py/test_batch"], "a CIFAR batch")
