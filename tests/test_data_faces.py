"""The face datasets: JULE's CMU-PIE, YTF and FRGC (data4torch.h5) and RMN-GMM's 41k CMU-PIE.

All four are user-supplied (no published checksum), so the tests cover: a right copy prepares
(from the raw folder or source_dir), the missing file says where to put it and is never
downloaded, and a wrong copy (layout, count, classes, pixel range, keys, format) is refused with
what was expected. Files are small ones in the real formats (HDF5 from h5py, .mat from scipy).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from stages.data import faces, registry
from stages.data.manifest import fetch_raw
from stages.data.preparation import prepare
from stages.plumbing.errors import DataFileError, DownloadError
from tests.datafiles import face_mat, fetch_prepare_in_file_order, jule_h5

JULE_SETS = ("cmu-pie", "ytf", "frgc")
PER_CLASS = 2


def _small(monkeypatch, name: str, n_samples: int) -> registry.DatasetSpec:
    """Dataset ``name`` with ``n_samples`` instead of its real size (the tests' tiny files)."""
    spec = dataclasses.replace(registry.DATASETS[name], n_samples=n_samples)
    monkeypatch.setitem(registry.DATASETS, name, spec)
    return spec


def _jule_arrays(name: str, per_class: int = PER_CLASS, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) float64 0..255 and MATLAB-style labels (N, 1) float64: subject ids
    1..K, interleaved (1, 2, ..., K, 1, 2, ...)."""
    spec = registry.DATASETS[name]
    k = spec.n_clusters
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (k * per_class, *spec.input_shape)).astype(np.float64)
    data[0].flat[0], data[1].flat[0] = 0.0, 255.0  # the full 0..255 range
    labels = np.tile(np.arange(1, k + 1), per_class).astype(np.float64)[:, None]
    return data, labels


# --- a right copy prepares ---------------------------------------------------------------------

@pytest.mark.parametrize("name", JULE_SETS)
def test_jule_file_from_the_raw_folder_prepares(tmp_path, monkeypatch, name):
    spec = registry.DATASETS[name]
    data, labels = _jule_arrays(name)
    _small(monkeypatch, name, len(labels))
    jule_h5(tmp_path / "raw" / name / "data4torch.h5", data, labels)
    manifest, ds, X, y = fetch_prepare_in_file_order(tmp_path, name)
    assert manifest["kind"] == "local-folder" and "no published checksum" in manifest["source"]
    assert ds.input_shape == spec.input_shape and ds.n_clusters == spec.n_clusters
    assert X.dtype == np.float32 and X.shape == (len(labels), *spec.input_shape)
    # stored axis order kept (as JULE's and DEPICT's code read it), pixels / 255
    np.testing.assert_allclose(X * 255, data, atol=1e-3)
    assert X.min() == 0.0 and X.max() == 1.0
    # subject ids 1..K -> 0..K-1
    np.testing.assert_array_equal(y, labels[:, 0].astype(np.int64) - 1)
    text = ds.attrs["preprocessing"]
    assert "stored axis order" in text and "/ 255" in text and "(x-127.5)/127.5" in text
    assert f"{spec.n_clusters} sorted subject ids 1..{spec.n_clusters}" in text


def test_jule_cmu_pie_from_source_dir_three_dimensional_labels_any_ids(tmp_path, monkeypatch):
    """One-channel data stored (N, H, W), labels (1, N) with arbitrary subject ids, in a folder
    named by source_dir: the ids are sorted and numbered 0..K-1."""
    data, _ = _jule_arrays("cmu-pie")
    ids = np.arange(68) * 3 + 100  # 100, 103, ..., 301
    labels = np.repeat(ids, PER_CLASS)[None, :].astype(np.int32)
    _small(monkeypatch, "cmu-pie", labels.size)
    folder = tmp_path / "JULE.torch" / "datasets" / "CMU-PIE"
    jule_h5(folder / "data4torch.h5", data[:, 0].astype(np.uint8), labels)
    manifest, ds, X, y = fetch_prepare_in_file_order(tmp_path, "cmu-pie", source_dir=folder)
    assert str(folder.resolve()) in manifest["source"] and X.shape == (136, 1, 32, 32)
    np.testing.assert_allclose(X * 255, data, atol=1e-3)
    np.testing.assert_array_equal(y, np.repeat(np.arange(68), PER_CLASS))
    assert "ids 100..301 -> 0..67" in ds.attrs["preprocessing"]


def test_jule_copy_identical_to_the_committed_file_is_recognised(tmp_path, monkeypatch):
    """git_blob_sha1 is git's object id (checked against `git hash-object`); a copy with the id of
    jwyang/JULE.torch's committed file is reported byte-identical, another one is not."""
    data, labels = _jule_arrays("frgc")
    _small(monkeypatch, "frgc", len(labels))
    path = jule_h5(tmp_path / "raw" / "frgc" / "data4torch.h5", data, labels)
    if shutil.which("git"):
        git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True,
                             check=True).stdout.strip()
        assert faces.git_blob_sha1(path) == git
    _, ds, _, _ = fetch_prepare_in_file_order(tmp_path / "a", "frgc", source_dir=path.parent)
    assert "not byte-identical to jwyang/JULE.torch datasets/FRGC/data4torch.h5 (git blob " \
           "91e200768b45)" in ds.attrs["preprocessing"]
    monkeypatch.setitem(faces.JULE_GIT_BLOBS, "frgc",
                        ("datasets/FRGC/data4torch.h5", faces.git_blob_sha1(path)))
    _, ds, _, _ = fetch_prepare_in_file_order(tmp_path / "b", "frgc", source_dir=path.parent)
    assert "(byte-identical to jwyang/JULE.torch" in ds.attrs["preprocessing"]


def _pie_images(n_per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(68 * n_per, 32, 32) uint8-valued images and subject ids 1..68, subject by subject."""
    images = np.random.default_rng(seed).integers(0, 256, (68 * n_per, 32, 32)).astype(np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 0, 255
    return images, np.repeat(np.arange(1, 69), n_per)


def test_cmu_pie_41k_right_copy_prepares_upright(tmp_path, monkeypatch):
    images, labels = _pie_images(2)
    images[5] = 0
    images[5, 0, :] = 255  # a bar on the top row: survives only the column-major reading
    _small(monkeypatch, "cmu-pie-41k", len(labels))
    face_mat(tmp_path / "raw" / "cmu-pie-41k" / "cmu-pie-41k.mat", images, labels)
    manifest, ds, X, y = fetch_prepare_in_file_order(tmp_path, "cmu-pie-41k")
    assert manifest["kind"] == "local-folder" and X.shape == (136, 1, 32, 32)
    np.testing.assert_allclose(X[:, 0] * 255, images, atol=1e-3)
    assert X[5, 0, 0].min() == 1.0 and X[5, 0, 1:].max() == 0.0
    np.testing.assert_array_equal(y, labels - 1)
    text = ds.attrs["preprocessing"]
    assert "column-major" in text and "raw pixels" in text and "ids 1..68 -> 0..67" in text


# --- the missing file says where to put it and is never downloaded ----------------------------

@pytest.mark.parametrize("name,url", [
    ("cmu-pie", "https://github.com/jwyang/JULE.torch/raw/master/datasets/CMU-PIE/data4torch.h5"),
    ("frgc", "https://github.com/jwyang/JULE.torch/raw/master/datasets/FRGC/data4torch.h5"),
    ("ytf", "https://drive.google.com/folderview?id=0B9J-9A2jotGRT25vSDhUWTQxVWs"),
    ("cmu-pie-41k", "https://www.ri.cmu.edu/publications/the-cmu-pose-illumination-and-"
                    "expression-pie-database-of-human-faces/"),
])
def test_missing_file_says_where_to_put_it_and_is_not_downloaded(tmp_path, monkeypatch, name,
                                                                  url):
    def no_download(*args, **kwargs):
        raise AssertionError("a user-supplied file must never be downloaded")

    monkeypatch.setattr("stages.data.manifest.fetch_remote_files", no_download)
    monkeypatch.setenv("DCLUST_MIRROR", "http://127.0.0.1:9/")
    raw = tmp_path / "raw" / name
    with pytest.raises(DownloadError) as err:
        fetch_raw(name, raw)
    message = str(err.value)
    spec = registry.DATASETS[name]
    assert f"{spec.files[0].name} (from {url})" in message and str(raw.resolve()) in message
    assert "No checksum is published" in message and f"datasets.{name}.source_dir" in message
    assert f"Expected: {spec.expected}" in message
    assert not (raw / "manifest.json").exists()


# --- a wrong copy is refused with what was expected -------------------------------------------

def _refused(tmp_path, name: str) -> str:
    """Fetch the file placed in data/raw/{name}, prepare it; the DataFileError's message."""
    raw = tmp_path / "raw" / name
    fetch_raw(name, raw)
    out = tmp_path / "out.h5"
    with pytest.raises(DataFileError) as err:
        prepare(name, raw / "manifest.json", out)
    assert not out.exists()
    message = str(err.value)
    assert f"expected {registry.DATASETS[name].expected}" in message
    assert str(raw.resolve()) in message and f"datasets.{name}.source_dir" in message
    return message


@pytest.mark.parametrize("name,count", [("cmu-pie", "2,856"), ("ytf", "10,000"),
                                        ("frgc", "2,462")])
def test_jule_copy_with_the_wrong_count_is_refused(tmp_path, name, count):
    data, labels = _jule_arrays(name)  # the real spec: far more images
    jule_h5(tmp_path / "raw" / name / "data4torch.h5", data, labels)
    assert f"found {len(labels)} images instead of {count}" in _refused(tmp_path, name)


@pytest.mark.parametrize("name,layout,found", [
    ("ytf", (0, 2, 3, 1), "'data' float64 82 x 55 x 55 x 3"),  # channels last
    ("frgc", None, "'data' float64 40 x 1 x 32 x 32"),  # gray instead of colour
    ("cmu-pie", None, "'data' float64 136 x 3 x 32 x 32"),  # colour instead of gray
])
def test_jule_copy_with_the_wrong_shape_is_refused(tmp_path, monkeypatch, name, layout, found):
    data, labels = _jule_arrays(name)
    _small(monkeypatch, name, len(labels))
    if layout is not None:
        data = data.transpose(layout)
    elif data.shape[1] == 3:
        data = data[:, :1]
    else:
        data = np.repeat(data, 3, axis=1)
    jule_h5(tmp_path / "raw" / name / "data4torch.h5", data, labels)
    assert f"found {found}" in _refused(tmp_path, name)


def test_jule_copy_with_the_wrong_classes_is_refused(tmp_path, monkeypatch):
    data, labels = _jule_arrays("frgc")
    _small(monkeypatch, "frgc", len(labels))
    labels[labels == 20] = 19  # 19 subjects
    jule_h5(tmp_path / "raw" / "frgc" / "data4torch.h5", data, labels)
    assert "found 19 distinct 'labels' instead of 20" in _refused(tmp_path, "frgc")

    labels = np.tile(np.arange(1, 21), PER_CLASS).astype(np.float64)
    labels[0] = 1.5
    jule_h5(tmp_path / "raw" / "frgc" / "data4torch.h5", data, labels)
    assert "'labels' that are not whole numbers" in _refused(tmp_path, "frgc")

    jule_h5(tmp_path / "raw" / "frgc" / "data4torch.h5", data, labels[:-1])
    assert "'labels' float64 39 for 40 images" in _refused(tmp_path, "frgc")


def test_jule_copy_already_scaled_is_refused(tmp_path, monkeypatch):
    """A copy scaled to [0, 1] (or whitened) is not JULE's 0..255 file: refused, not rescaled."""
    data, labels = _jule_arrays("cmu-pie")
    _small(monkeypatch, "cmu-pie", len(labels))
    jule_h5(tmp_path / "raw" / "cmu-pie" / "data4torch.h5", data / 255.0, labels)
    assert "'data' values 0..1 (already scaled or whitened?)" in _refused(tmp_path, "cmu-pie")
    jule_h5(tmp_path / "raw" / "cmu-pie" / "data4torch.h5", data - 127.5, labels)
    assert "'data' values -127.5..127.5" in _refused(tmp_path, "cmu-pie")


def test_jule_copy_without_labels_or_not_hdf5_is_refused(tmp_path, monkeypatch):
    data, labels = _jule_arrays("cmu-pie")
    _small(monkeypatch, "cmu-pie", len(labels))
    path = tmp_path / "raw" / "cmu-pie" / "data4torch.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=data)
        handle.create_dataset("label", data=labels)  # DSCDAN-style singular key
    message = _refused(tmp_path, "cmu-pie")
    assert "has no dataset 'labels' (it holds data, label)" in message

    face_mat(path, data[:, 0], labels)  # a MATLAB v5 file under the HDF5 name
    assert "not a readable HDF5 file" in _refused(tmp_path, "cmu-pie")


def test_cmu_pie_41k_wrong_copies_are_refused(tmp_path, monkeypatch):
    images, labels = _pie_images(2)
    path = tmp_path / "raw" / "cmu-pie-41k" / "cmu-pie-41k.mat"
    face_mat(path, images, labels)  # the real spec: 41,368 images
    assert "found 136 rows in 'fea' instead of 41,368" in _refused(tmp_path, "cmu-pie-41k")

    _small(monkeypatch, "cmu-pie-41k", len(labels))
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # 64x64 faces
    face_mat(path, big, labels)
    assert "found 'fea' float64 136 x 4,096" in _refused(tmp_path, "cmu-pie-41k")

    face_mat(path, images, np.repeat(np.arange(1, 35), 4))  # 34 subjects
    assert "found 34 distinct 'gnd' labels instead of 68" in _refused(tmp_path, "cmu-pie-41k")

    from scipy.io import savemat

    savemat(path, {"fea": images.reshape(136, -1).astype(np.float64)})
    fetch_raw("cmu-pie-41k", path.parent)
    with pytest.raises(DataFileError, match="has no variable 'gnd'; expected all 41,368"):
        prepare("cmu-pie-41k", path.parent / "manifest.json", tmp_path / "out.h5")


# --- every network takes the faces' inputs ----------------------------------------------------

@pytest.mark.parametrize("name", ["cmu-pie", "cmu-pie-41k", "ytf", "frgc"])
def test_every_network_takes_the_face_datasets(name):
    """Config validation accepts every network on 1x32x32, 3x32x32 and 3x55x55, and each one
    reconstructs a batch at the input's shape (55 is odd: the conv nets' padding must undo it)."""
    import torch

    from stages.nets import (
        EMBEDDING_IS_N_CLUSTERS,
        build_network,
        check_network_input,
        network_names,
    )

    spec = registry.DATASETS[name]
    x = torch.rand(2, *spec.input_shape)
    for net in network_names():
        check_network_input(net, spec.input_shape, name)
        arch = {"embedding_dim": spec.n_clusters} if net in EMBEDDING_IS_N_CLUSTERS else None
        z, x_hat = build_network(net, spec.input_shape, arch)(x)
        assert x_hat.shape == x.shape, net
        if arch:
            assert z.shape == (2, spec.n_clusters), net


# --- the papers' numbers are mapped to these datasets -----------------------------------------

def test_paper_numbers_are_mapped_to_the_face_datasets():
    import pandas as pd

    from stages.reporting.tables import DATASET_TO_PAPER, DEFAULT_REFERENCE

    ref = pd.read_csv(DEFAULT_REFERENCE)
    cell = ref.set_index(["paper", "method", "dataset", "metric"])["value"]
    columns = {name: DATASET_TO_PAPER[name] for name in ("cmu-pie", "cmu-pie-41k", "ytf", "frgc")}
    assert columns == {"cmu-pie": "CMU-PIE", "cmu-pie-41k": "CMU-PIE-41k", "ytf": "YTF",
                       "frgc": "FRGC"}
    assert cell["depict", "depict", "CMU-PIE", "acc"] == 88.3  # DEPICT Table 2
    assert cell["depict", "depict", "YTF", "nmi"] == 80.2
    assert cell["depict", "depict-rda", "FRGC", "acc"] == 44.4  # DEPICT Table 3
    assert cell["dscdan", "dscdan", "YTF", "acc"] == 69.1  # DSCDAN Table 3
    assert cell["dscdan", "dscdan-convae-mi-rs", "YTF", "nmi"] == 80.1  # DSCDAN Table 4
    assert cell["rmn-gmm", "rmn-gmm", "CMU-PIE-41k", "acc"] == 95.7  # RMN-GMM Table 3
    assert cell["rmn-gmm", "rmn-gmm", "CMU-PIE-41k", "nmi"] == 94.0  # RMN-GMM Table 4
    assert not ((ref["paper"] == "rmn-gmm") & (ref["dataset"] == "CMU-PIE")).any()
