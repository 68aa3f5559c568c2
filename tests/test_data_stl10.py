"""stl10-hog: STL-10 binaries in a .tar.gz served by a local HTTP server, DEC's STL-HOG features
(checked against a transliteration of the Felzenszwalb HOG loops and OpenCV's colour values), the
unlabelled images stored block by block and used by pretraining only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from stages import pretrain
from stages.data import registry, stl10
from stages.data.dataset import pretraining_inputs, read_dataset
from stages.data.manifest import fetch_raw
from stages.nets import check_network_input, network_names
from stages.plumbing.errors import ConfigError, DataFileError, DownloadError
from tests.datafiles import fetch_prepare_in_file_order, serve_as, tar_gz

REPO = Path(__file__).resolve().parents[1]
NAME = "stl10-hog"
ARCHIVE = "stl10_binary.tar.gz"
N_TRAIN, N_TEST, N_UNLABELLED = 10, 10, 7


# --------------------------------------------------------------------------- the raw format


def _stl_bytes(images: np.ndarray) -> bytes:
    """Images (n, 96, 96, 3) uint8 written as STL-10's binaries are: per image the red, green
    and blue 96x96 planes, each in column-major order."""
    return b"".join(image[:, :, c].tobytes(order="F") for image in images for c in range(3))


def _images(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random colour images (n, 96, 96, 3) uint8: upsampled noise, so HOG has structure."""
    coarse = rng.integers(0, 256, (n, 12, 12, 3)).astype(np.float64)
    return np.kron(coarse, np.ones((1, 8, 8, 1))).clip(0, 255).astype(np.uint8)


def _archive(rng: np.random.Generator, n_train: int = N_TRAIN, n_test: int = N_TEST,
             n_unlabelled: int = N_UNLABELLED, **replace: bytes
             ) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """A stl10_binary.tar.gz with the real members (small counts); ``replace`` swaps members.

    Returns the archive, the labelled images (train then test), their labels 1..10, and the
    unlabelled images.
    """
    train, test, unlabelled = (_images(n, rng) for n in (n_train, n_test, n_unlabelled))
    y_train = np.arange(n_train) % 10 + 1
    y_test = (np.arange(n_test) + 3) % 10 + 1
    members = {"class_names.txt": b"airplane\nbird\ncar\ncat\ndeer\ndog\nhorse\nmonkey\nship\n"
                                  b"truck\n",
               "test_X.bin": _stl_bytes(test), "test_y.bin": y_test.astype(np.uint8).tobytes(),
               "train_X.bin": _stl_bytes(train), "train_y.bin": y_train.astype(np.uint8).tobytes(),
               "unlabeled_X.bin": _stl_bytes(unlabelled), "fold_indices.txt": b"0 1 2\n"}
    members.update(replace)
    archive = tar_gz({f"stl10_binary/{name}": data for name, data in members.items()})
    return (archive, np.concatenate([train, test]), np.concatenate([y_train, y_test]),
            unlabelled)


@pytest.fixture
def small(monkeypatch):
    """Counts of the small archives: 20 labelled, 7 unlabelled images, blocks of 3 images."""
    monkeypatch.setattr(stl10, "UNLABELLED_COUNT", N_UNLABELLED)
    monkeypatch.setattr(stl10, "CHUNK", 3)


def _serve(server, monkeypatch, archive: bytes, n_samples: int = N_TRAIN + N_TEST) -> None:
    serve_as(server, monkeypatch, NAME, archive, n_samples=n_samples)


# --------------------------------------------------------------------------- the features


UU = [1.0000, 0.9397, 0.7660, 0.500, 0.1736, -0.1736, -0.5000, -0.7660, -0.9397]
VV = [0.0000, 0.3420, 0.6428, 0.8660, 0.9848, 0.9848, 0.8660, 0.6428, 0.3420]


def _hog_loops(image: np.ndarray, sbin: int = 8) -> np.ndarray:
    """The loops of features.hog (cvondrick/pyvision vision/features.pyx, the port of
    Felzenszwalb's features.cc DEC calls), transliterated: (H, W, 3) -> (H/8-2, W/8-2, 13)."""
    data = image.astype(float)
    b0, b1 = data.shape[0] // sbin, data.shape[1] // sbin
    hist = [0.0] * (b0 * b1 * 9)
    norm = [0.0] * (b0 * b1)
    feat = np.zeros((b0 - 2, b1 - 2, 13))
    for x in range(1, b1 * sbin - 1):
        for y in range(1, b0 * sbin - 1):
            v, dx, dy = -1.0, 0.0, 0.0
            for c in range(3):
                cdy = data[y + 1, x, c] - data[y - 1, x, c]
                cdx = data[y, x + 1, c] - data[y, x - 1, c]
                if cdx * cdx + cdy * cdy > v:
                    v, dx, dy = cdx * cdx + cdy * cdy, cdx, cdy
            best_dot, best_o = 0.0, 0
            for o in range(9):
                dot = abs(UU[o] * dx + VV[o] * dy)
                if dot > best_dot:
                    best_dot, best_o = dot, o
            xp, yp = (x + 0.5) / sbin - 0.5, (y + 0.5) / sbin - 0.5
            ixp, iyp = math.floor(xp), math.floor(yp)
            vx0, vy0 = xp - ixp, yp - iyp
            v = math.sqrt(v)
            off = best_o * b0 * b1
            if ixp >= 0 and iyp >= 0:
                hist[ixp * b0 + iyp + off] += (1 - vx0) * (1 - vy0) * v
            if ixp + 1 < b1 and iyp >= 0:
                hist[(ixp + 1) * b0 + iyp + off] += vx0 * (1 - vy0) * v
            if ixp >= 0 and iyp + 1 < b0:
                hist[ixp * b0 + iyp + 1 + off] += (1 - vx0) * vy0 * v
            if ixp + 1 < b1 and iyp + 1 < b0:
                hist[(ixp + 1) * b0 + iyp + 1 + off] += vx0 * vy0 * v
    for o in range(9):
        for q in range(b0 * b1):
            norm[q] += hist[o * b0 * b1 + q] ** 2

    def inv(p: int) -> float:
        return 1.0 / math.sqrt(norm[p] + norm[p + 1] + norm[p + b0] + norm[p + b0 + 1] + 0.0001)

    for x in range(b1 - 2):
        for y in range(b0 - 2):
            ns = (inv((x + 1) * b0 + y + 1), inv((x + 1) * b0 + y), inv(x * b0 + y + 1),
                  inv(x * b0 + y))
            t = [0.0] * 4
            for o in range(9):
                h = [min(hist[(x + 1) * b0 + y + 1 + o * b0 * b1] * n, 0.2) for n in ns]
                feat[y, x, o] = 0.5 * sum(h)
                t = [a + b for a, b in zip(t, h, strict=True)]
            feat[y, x, 9:] = [0.2357 * value for value in t]
    return feat


@pytest.mark.parametrize("shape", [(96, 96, 3), (40, 32, 3)])
def test_hog_equals_the_felzenszwalb_loops(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    image[: shape[0] // 2, :, 1] = 90  # flat areas: zero gradients and ties between channels
    got = stl10.hog_features(image[None])[0]
    assert got.shape == (shape[0] // 8 - 2, shape[1] // 8 - 2, 13)
    np.testing.assert_allclose(got, _hog_loops(image), rtol=1e-12, atol=1e-14)


def test_hog_orientations_follow_rows_and_columns():
    """A vertical edge (columns change) votes for orientation 0 (gradient along x); a horizontal
    edge (rows change) for 80 degrees (index 4, the first of the two nearest 90)."""
    vertical = np.zeros((1, 96, 96, 3), np.uint8)
    vertical[:, :, 44:] = 255
    horizontal = vertical.transpose(0, 2, 1, 3)
    for image, orientation in ((vertical, 0), (horizontal, 4)):
        hog = stl10.hog_features(image)[0]
        assert np.unravel_index(hog[..., :9].argmax(), hog[..., :9].shape)[-1] == orientation


def test_colour_map_matches_opencv():
    """Values OpenCV 5.0 gives for cvtColor(resize(image, (8, 8)), COLOR_RGB2YCrCb)[..., 1:]."""
    for rgb, crcb in (((255, 0, 0), (255, 85)), ((0, 255, 0), (21, 43)),
                      ((0, 0, 255), (107, 255)), ((10, 200, 30), (47, 75)),
                      ((128, 128, 128), (128, 128))):
        image = np.empty((1, 96, 96, 3), np.uint8)
        image[:] = rgb
        assert stl10.colour_map(image)[0, 3, 5].tolist() == list(crcb)
    # each output pixel: the 2x2 pixels at rows/columns 5, 6 of its 12x12 block, mean rounded
    # half up (resize gives 0, 1, 2 for sums 1, 2, 6 there); gray stays at Cr = Cb = 128 +- 0
    image = np.zeros((1, 96, 96, 3), np.uint8)
    image[0, 5, 5] = 1
    image[0, 5, 17:19] = 1
    image[0, 5, 29], image[0, 6, 29], image[0, 6, 30] = 1, 3, 2
    image[0, 0:5, :] = 255  # outside the sampled pixels: no effect
    assert stl10.colour_map(image)[0, 0, :3].tolist() == [[128, 128]] * 3
    red = image.copy()
    red[..., 1:] = 0
    np.testing.assert_array_equal(stl10.colour_map(red)[0, 0, :3, 0], [128, 129, 129])


def test_feature_is_1428_dims_in_dec_order():
    images = _images(4, np.random.default_rng(1))
    features = stl10.stl_features(images)
    assert features.shape == (4, 1428) and features.dtype == np.float32
    hog = stl10.hog_features(images).reshape(4, -1)
    crcb = stl10.colour_map(images).reshape(4, -1)
    np.testing.assert_allclose(features[:, :1300], (hog - 0.2) * 10, rtol=1e-6)
    np.testing.assert_allclose(features[:, 1300:], (crcb - 128) / 10, rtol=1e-6)
    assert registry.DATASETS[NAME].input_shape == (stl10.feature_dim(),)


def test_decoding_follows_the_documented_layout():
    images = _images(2, np.random.default_rng(2))
    images[0, 3, 70] = [1, 2, 3]  # row 3, column 70: not symmetric
    np.testing.assert_array_equal(stl10.decode_images(_stl_bytes(images)), images)


# --------------------------------------------------------------------------- fetch + prepare


def test_download_and_prepare(server, tmp_path, monkeypatch, small):
    archive, images, labels, _ = _archive(np.random.default_rng(3))
    _serve(server, monkeypatch, archive)
    manifest, ds, X, y = fetch_prepare_in_file_order(tmp_path, NAME)
    assert manifest["kind"] == "download" and server.requests == [f"/{NAME}/{ARCHIVE}"]
    assert ds.X.shape == (20, 1428) and ds.input_shape == (1428,) and ds.n_clusters == 10
    assert y.tolist() == (labels - 1).tolist()  # train then test, labels 1..10 -> 0..9
    np.testing.assert_array_equal(X, stl10.stl_features(images))
    assert "train_X.bin (10) then test_X.bin (10)" in ds.attrs["preprocessing"]
    assert "unlabelled: false" in ds.attrs["preprocessing"]
    with h5py.File(tmp_path / "results" / f"{NAME}.h5") as f:
        assert "X_unlabelled" not in f  # off by default
    assert pretraining_inputs(tmp_path / "results" / f"{NAME}.h5", ds) is ds.X


def test_unlabelled_images_are_stored_in_blocks_for_pretraining_only(server, tmp_path,
                                                                     monkeypatch, small):
    archive, _, _, unlabelled = _archive(np.random.default_rng(4))
    _serve(server, monkeypatch, archive)
    computed = []
    features = stl10.stl_features
    monkeypatch.setattr(stl10, "stl_features", lambda block: computed.append(len(block))
                        or features(block))
    _, ds, _, _ = fetch_prepare_in_file_order(tmp_path, NAME, params={"unlabelled": True})
    path = tmp_path / "results" / f"{NAME}.h5"
    with h5py.File(path) as f:
        stored = f["X_unlabelled"]
        assert stored.shape == (7, 1428) and stored.dtype == np.float32 and stored.chunks
        np.testing.assert_array_equal(stored[()], features(unlabelled))  # file order
        assert "autoencoder training only" in stored.attrs["description"]
    assert computed[-3:] == [3, 3, 1]  # the 7 unlabelled images, 3 at a time
    assert ds.X.shape == (20, 1428) and "X_unlabelled" in ds.attrs["preprocessing"]
    assert read_dataset(path).n_samples == 20  # what every evaluation reads
    x = pretraining_inputs(path, ds)
    assert x.shape == (27, 1428) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:20], ds.X)
    np.testing.assert_array_equal(x[20:], features(unlabelled))


def test_pretraining_trains_on_labelled_and_unlabelled(server, tmp_path, monkeypatch, small):
    archive, _, _, _ = _archive(np.random.default_rng(5))
    _serve(server, monkeypatch, archive)
    fetch_prepare_in_file_order(tmp_path, NAME, params={"unlabelled": True})
    recipe = {"name": "tiny", "net": "sae", "arch": {"hidden": [8, 3]}, "batch_size": 9,
              "epochs": 1, "optimizer": {"name": "adam", "lr": 0.001}}
    out = tmp_path / "pretrain"
    args = pretrain.build_parser().parse_args(
        ["--data", str(tmp_path / "results" / f"{NAME}.h5"), "--params", json.dumps(recipe),
         "--out-dir", str(out), "--device", "cpu", "--threads", "1"])
    pretrain.run(args)
    meta = torch.load(out / "model.pt", weights_only=True)["meta"]
    assert meta["n_train"] == 27 and meta["steps"] == 3  # ceil(27 / 9) steps in one epoch


def test_unlabelled_array_of_another_shape_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["X"] = np.zeros((3, 4), np.float32)
        f["y"] = np.arange(3)
        f["X_unlabelled"] = np.zeros((2, 5), np.float32)
        f.attrs["n_clusters"] = 3
    with pytest.raises(DataFileError, match=r"X_unlabelled has samples of shape \[5\], X of \[4\]"):
        pretraining_inputs(path, read_dataset(path))
    with h5py.File(path, "a") as f:
        del f["X_unlabelled"]
        f["X_unlabelled"] = np.full((2, 4), np.nan, np.float32)
    with pytest.raises(DataFileError, match="non-finite"):
        pretraining_inputs(path, read_dataset(path))


def test_checksum_mismatch_is_refused(server, tmp_path, monkeypatch):
    archive, _, _, _ = _archive(np.random.default_rng(6))
    _serve(server, monkeypatch, archive)
    server.put(NAME, ARCHIVE, archive[:-10] + b"0123456789")
    raw = tmp_path / "raw" / NAME
    with pytest.raises(DownloadError) as err:
        fetch_raw(NAME, raw)
    pinned = registry.DATASETS[NAME].files[0]
    message = str(err.value)
    assert f"sha256 {pinned.sha256}" in message and ARCHIVE in message
    assert server.url(NAME, ARCHIVE) in message
    assert "by hand" in message and str((raw / ARCHIVE).resolve()) in message
    assert not (raw / ARCHIVE).exists()


def test_dead_link_names_every_url_and_the_checksum(server, tmp_path):
    """The real registry entry (both Stanford URLs) with the mirrors pointed at a server that
    has no such file: one error naming the file, each URL, the pin and where to put it."""
    spec = registry.DATASETS[NAME]
    remote = spec.files[0]
    assert remote.sha256 == "f31fd99273a1acb8609c8db427cebb1de3f71de77758cdc0e22956e1289b9866"
    assert remote.size == 2640397119
    assert remote.urls() == ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                             "https://cs.stanford.edu/~acoates/stl10/stl10_binary.tar.gz")
    raw = tmp_path / "raw" / NAME
    mirrors = [server.url("gone"), server.url("also-gone")]
    with pytest.raises(DownloadError) as err:
        fetch_raw(NAME, raw, mirrors=mirrors)
    message = str(err.value)
    for mirror in mirrors:
        assert mirror + ARCHIVE in message
    assert f"sha256 {remote.sha256}" in message and "2640397119 bytes" in message
    assert str((raw / ARCHIVE).resolve()) in message and "by hand" in message
    assert not (raw / ARCHIVE).exists()


def test_partial_download_is_never_used(server, tmp_path, monkeypatch):
    archive, _, _, _ = _archive(np.random.default_rng(7))
    _serve(server, monkeypatch, archive)
    server.put(NAME, ARCHIVE, archive[: len(archive) // 2])  # the transfer stopped halfway
    raw = tmp_path / "raw" / NAME
    with pytest.raises(DownloadError, match="every URL failed"):
        fetch_raw(NAME, raw)
    assert not (raw / ARCHIVE).exists()
    raw.mkdir(parents=True, exist_ok=True)  # a half file left in the raw folder: reported, kept
    (raw / ARCHIVE).write_bytes(archive[: len(archive) // 2])
    server.put(NAME, ARCHIVE, archive)
    with pytest.raises(DownloadError, match="corrupt or a different version.*It was not used"):
        fetch_raw(NAME, raw)
    assert not (raw / "manifest.json").exists()


def _refused(server, tmp_path, monkeypatch, archive: bytes, n_samples: int = 20) -> str:
    """Prepare's error for ``archive`` served with its own hash pinned (a stale pin)."""
    _serve(server, monkeypatch, archive, n_samples)
    with pytest.raises(DataFileError) as err:
        fetch_prepare_in_file_order(tmp_path, NAME)
    return str(err.value)


def test_copy_with_the_wrong_count_is_refused(server, tmp_path, monkeypatch, small):
    archive, _, _, _ = _archive(np.random.default_rng(8))
    message = _refused(server, tmp_path, monkeypatch, archive, n_samples=13000)
    assert "10 + 10 = 20 labelled images instead of 13,000" in message
    assert "train_X.bin, train_y.bin (5,000 images)" in message  # what was expected
    assert f"rerun stages.fetch --dataset {NAME}" in message


@pytest.mark.parametrize("member, data, found", [
    ("test_X.bin", b"\0" * (stl10.IMAGE_BYTES + 5), "test_X.bin of 27,653 bytes"),
    ("train_y.bin", bytes([1, 2, 3]), "train_X.bin with 10 images but train_y.bin with 3"),
    ("test_y.bin", bytes([0] * 10), "test_y.bin labels 0..0"),
])
def test_copy_with_the_wrong_shape_is_refused(server, tmp_path, monkeypatch, small, member,
                                              data, found):
    archive, _, _, _ = _archive(np.random.default_rng(9), **{member: data})
    message = _refused(server, tmp_path, monkeypatch, archive)
    assert found in message and "uint8 images of 3 x 96 x 96 bytes" in message


def test_copy_without_a_member_or_unlabelled_images_is_refused(server, tmp_path, monkeypatch,
                                                               small):
    archive = tar_gz({"stl10_binary/train_X.bin": b""})
    assert "no member stl10_binary/test_X.bin" in _refused(server, tmp_path / "a", monkeypatch,
                                                          archive)
    archive, _, _, _ = _archive(np.random.default_rng(10), n_unlabelled=5)
    _serve(server, monkeypatch, archive)
    with pytest.raises(DataFileError) as err:
        fetch_prepare_in_file_order(tmp_path / "b", NAME, params={"unlabelled": True})
    assert "unlabeled_X.bin of 138,240 bytes instead of 7 images" in str(err.value)
    assert not (tmp_path / "b" / "results" / f"{NAME}.h5").exists()  # nothing half-written


def test_wrong_param_is_a_config_error(server, tmp_path, monkeypatch):
    archive, _, _, _ = _archive(np.random.default_rng(11))
    _serve(server, monkeypatch, archive)
    with pytest.raises(ConfigError, match="accepted: unlabelled"):
        fetch_prepare_in_file_order(tmp_path, NAME, params={"hog_cells": 8})
    with pytest.raises(ConfigError, match="param unlabelled must be true or false, got 'yes'"):
        fetch_prepare_in_file_order(tmp_path / "b", NAME, params={"unlabelled": "yes"})


# --------------------------------------------------------------------------- networks, papers


def test_fully_connected_networks_take_the_features_convolutional_ones_refuse():
    shape = registry.DATASETS[NAME].input_shape
    for net in network_names():
        if net in ("sae", "rmn-sae"):
            check_network_input(net, shape, NAME)
            continue
        with pytest.raises(ConfigError, match=r"needs images \(C, H, W\).*\(1428,\)"):
            check_network_input(net, shape, NAME)


def test_paper_numbers_are_mapped_to_stl10():
    from stages.reporting import tables

    assert tables.DATASET_TO_PAPER[NAME] == "STL-10"
    ref = tables.load_reference(tables.DEFAULT_REFERENCE)
    stl = ref[ref.dataset == "STL-10"].set_index(["method", "metric"])["value"]
    assert set(ref[ref.dataset == "STL-10"].paper) == {"rmn-gmm"}
    assert len(stl) == 22 * 2  # Tables 3 and 4: 22 rows, ACC and NMI
    assert stl[("rmn-gmm-vec", "acc")] == 91.7 and stl[("rmn-gmm-vec", "nmi")] == 86.0
    assert stl[("kmeans", "acc")] == 28.4 and stl[("aef-gmm-vec", "nmi")] == 20.0
    assert stl[("dec-public", "acc")] == 35.9 and stl[("dgg", "acc")] == 90.6


def test_registry_entry_pins_the_published_archive():
    spec = registry.DATASETS[NAME]
    assert spec.kind == "download" and spec.n_samples == 13000 and spec.n_clusters == 10
    assert spec.params == {"unlabelled": False}
    (remote,) = spec.files
    assert remote.name == ARCHIVE and remote.algorithm == "sha256"


def test_rmn_stage_one_for_vectors_pretrains_on_the_features(server, tmp_path, monkeypatch,
                                                             small):
    """The examples' rmn-vec recipe (Gaussian visible units, no augmentation) runs its RBMs and
    denoising fine-tune on the 1,428-d features; the image recipe rmn refuses them (logistic
    visible units need [0, 1]; its augmentation needs images)."""
    import yaml

    archive, _, _, _ = _archive(np.random.default_rng(12))
    _serve(server, monkeypatch, archive)
    fetch_prepare_in_file_order(tmp_path, NAME, params={"unlabelled": True})
    data = tmp_path / "results" / f"{NAME}.h5"
    examples = yaml.safe_load((REPO / "config" / "datasets-examples.yaml").read_text())
    images = yaml.safe_load((REPO / "config.yaml").read_text())["autoencoders"]["rmn"]
    for name, recipe, error in (("rmn-vec", examples["autoencoders"]["rmn-vec"], None),
                                ("rmn", images, r"Bernoulli visible units need inputs in \[0")):
        recipe = {**recipe, "name": name, "arch": {**recipe["arch"], "hidden": [16, 8, 3]},
                  "layer_steps": 2, "steps": 3, "lr_step_steps": 100}
        args = pretrain.build_parser().parse_args(
            ["--data", str(data), "--params", json.dumps(recipe), "--out-dir",
             str(tmp_path / name), "--device", "cpu", "--threads", "1"])
        if error:
            with pytest.raises(Exception, match=error):
                pretrain.run(args)
            continue
        pretrain.run(args)
        meta = torch.load(tmp_path / name / "model.pt", weights_only=True)["meta"]
        assert meta["n_train"] == 27 and meta["steps"] > 0
