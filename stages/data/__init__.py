"""Dataset sources (offline, downloadable, local folder, synthetic) and the prepared-dataset reader.

Modules, one job each:

* :mod:`stages.data.registry` -- names, cluster counts, input shapes, pinned URLs and checksums
  (standard library only: cheap to import for config validation);
* :mod:`stages.data.download` -- pooch downloads with mirror fallback and checksum errors;
* :mod:`stages.data.manifest` -- fetch: place/locate raw files, write and re-verify manifests;
* :mod:`stages.data.idx` -- IDX (MNIST format) reader/writer;
* :mod:`stages.data.archives` -- CIFAR pickles in a .tar.gz, MATLAB variables, PNGs in a zip;
* :mod:`stages.data.loading` -- what a loader returns and the raw-file checks loaders share;
* :mod:`stages.data.sources` -- raw files -> arrays, one loader per dataset (the registry);
* :mod:`stages.data.faces` -- the face datasets' loaders (JULE's HDF5 files, a 32x32 face .mat);
* :mod:`stages.data.stl10` -- STL-10's binaries -> DEC's HOG + colour-map features;
* :mod:`stages.data.reuters` -- RCV1-v2 tf-idf vectors -> DEC's and RMN-GMM's Reuters subsets;
* :mod:`stages.data.synthetic` -- the deterministic test dataset;
* :mod:`stages.data.dataset` -- :class:`Dataset` and :func:`read_dataset`, used by later stages
  (and :func:`~stages.data.dataset.pretraining_inputs`: X plus X_unlabelled, for pretraining).

``from stages.data import read_dataset, get_dataset_spec`` works; names are imported lazily so
that importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Dataset": "stages.data.dataset",
    "read_dataset": "stages.data.dataset",
    "DATASETS": "stages.data.registry",
    "DatasetSpec": "stages.data.registry",
    "RemoteFile": "stages.data.registry",
    "dataset_names": "stages.data.registry",
    "get_dataset_spec": "stages.data.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
