"""The Reuters datasets (reuters10k, reuters4, reuters20 and its top-k cuts) against a local HTTP
server serving tiny RCV1-v2 files in the LYRL2004 formats: the features and labels of DEC's and
DCN's protocols, downloads (good, checksum mismatch, dead link, partial), copies of the wrong
content, the sparse X written in row blocks, and (D,) inputs in the config check."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from scipy import sparse

from stages.data import registry, reuters, sources
from stages.data.dataset import read_dataset
from stages.data.loading import Loaded
from stages.data.manifest import fetch_raw
from stages.data.preparation import prepare, sample_order
from stages.data.registry import RCV1_QRELS_FILE, RCV1_VECTOR_FILES, RemoteFile
from stages.plumbing.artifacts import read_arrays
from stages.plumbing.errors import ConfigError, DataFileError, DownloadError
from tests.datafiles import Server

ROOT = Path(__file__).resolve().parent.parent
D = 5  # features of the tiny datasets (2,000 in the real ones)
N_TERMS = 12

#: the tiny corpus: (file, did, topics); train documents have the lowest ids, as in LYRL2004
DOCS = [
    (0, 101, ("CCAT", "C15", "C151")), (0, 102, ("CCAT", "C15")), (0, 103, ("CCAT", "C17")),
    (0, 104, ("GCAT", "GCRIM")), (0, 105, ("GCAT", "GCRIM")),
    (1, 201, ("MCAT", "M14", "M141")), (1, 202, ("MCAT", "M14")), (1, 203, ("ECAT", "E21")),
    (1, 204, ("CCAT", "GCAT", "C15", "GCRIM")), (1, 205, ("CCAT", "C15")),
    (2, 301, ("CCAT", "C15")), (2, 302, ("GCAT", "GDIP")), (2, 303, ("MCAT", "M11")),
    (2, 304, ("ECAT", "E21")),
    (3, 401, ("CCAT", "ECAT", "C15", "E21")), (3, 402, ("CCAT", "C17")),
    (3, 403, ("GCAT", "GCRIM")), (3, 404, ("MCAT", "M14")),
    (4, 1, ("CCAT", "C15")), (4, 2, ("ECAT", "E11")), (4, 3, ("GCAT", "GDIP")),
    (4, 4, ("CCAT", "C17")), (4, 5, ("MCAT", "M11")), (4, 6, ("CCAT", "C15")),
]
TOPICS = sorted({t for _, _, topics in DOCS for t in topics})
SINGLE_ROOT = [i for i, (_, _, t) in enumerate(DOCS) if sum(r in t for r in reuters.ROOTS) == 1]
TINY = reuters.Corpus(documents=len(DOCS), train_documents=6, terms=N_TERMS,
                      topics=len(TOPICS), single_root=len(SINGLE_ROOT))
DEC_LABEL = {"CCAT": 0, "GCAT": 1, "MCAT": 2, "ECAT": 3}


def _weights(rng: np.random.Generator) -> np.ndarray:
    """(documents, terms) LYRL2004-like weights: non-negative, unit rows; term t is in a
    document with probability decreasing in t; document 2 (did 2) has only the rarest term."""
    present = rng.random((len(DOCS), N_TERMS)) < np.linspace(0.9, 0.15, N_TERMS)
    present[np.arange(len(DOCS)), rng.integers(0, N_TERMS, len(DOCS))] = True
    present[[i for i, d in enumerate(DOCS) if d[1] == 2]] = False
    present[[i for i, d in enumerate(DOCS) if d[1] == 2], N_TERMS - 1] = True
    w = np.where(present, rng.uniform(0.05, 1.0, present.shape), 0.0)
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def _vector_file(rows: list[tuple[int, np.ndarray]]) -> bytes:
    lines = [f"{did}  " + " ".join(f"{t + 1}:{v:.9f}" for t, v in enumerate(w) if v)
             for did, w in rows]
    return gzip.compress(("\n".join(lines) + "\n").encode())


def corpus_files(weights: np.ndarray) -> dict[str, bytes]:
    """The six raw files of the tiny corpus, named as the registry names them."""
    files = {name: _vector_file([(did, weights[i]) for i, (f, did, _) in enumerate(DOCS)
                                 if f == k])
             for k, name in enumerate(RCV1_VECTOR_FILES)}
    qrels = sorted((did, t) for _, did, topics in DOCS for t in topics)
    files[RCV1_QRELS_FILE] = gzip.compress("".join(f"{t} {did} 1\n" for did, t in qrels).encode())
    return files


def serve(server: Server, monkeypatch, names: list[str], files: dict[str, bytes],
          folder: str = "rcv1", corpus: reuters.Corpus = TINY, **changes) -> None:
    """Serve ``files`` from ``folder``, pin the datasets ``names`` to them (tiny shapes)."""
    for name, data in files.items():
        server.put(folder, name, data)
    pinned = tuple(RemoteFile(name=n, url=server.url(folder, n),
                              sha256=hashlib.sha256(data).hexdigest())
                   for n, data in files.items())
    for name in names:
        spec = registry.DATASETS[name]
        monkeypatch.setitem(registry.DATASETS, name, dataclasses.replace(
            spec, files=pinned, input_shape=(D,), **changes))
    monkeypatch.setattr(reuters, "CORPUS", corpus)


def fetch_prepare(tmp_path: Path, name: str, params: dict | None = None, chunk_rows: int = 3):
    """Fetch and prepare ``name``; the dataset, its X and y in the loader's order, the file."""
    raw = tmp_path / "raw" / name
    fetch_raw(name, raw)
    out = tmp_path / "results" / f"{name}{len(list(tmp_path.glob('results/*')))}.h5"
    prepare(name, raw / "manifest.json", out, params, chunk_rows=chunk_rows)
    ds = read_dataset(out)
    index = read_arrays(out, required=("source_index",))[0]["source_index"]
    back = np.argsort(index)
    return ds, ds.X[back], ds.y[back], out


def reference(weights: np.ndarray, rows: list[int], vocabulary_rows: list[int],
              scale: float = 1.0) -> np.ndarray:
    """The expected features, dense: the D terms in the most of ``vocabulary_rows`` (ties: lower
    id), each of ``rows`` restricted to them and made unit-length, times ``scale``."""
    df = (weights[vocabulary_rows] > 0).sum(axis=0)
    terms = sorted(sorted(range(N_TERMS), key=lambda t: (-df[t], t))[:D])
    x = weights[np.ix_(rows, terms)]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0) * scale


@pytest.fixture
def tiny(server, monkeypatch):
    weights = _weights(np.random.default_rng(0))
    names = ["reuters10k", "reuters4", "reuters20", "reuters20-top4"]
    serve(server, monkeypatch, names, corpus_files(weights))
    monkeypatch.setitem(registry.DATASETS, "reuters4", dataclasses.replace(
        registry.DATASETS["reuters4"], n_samples=len(SINGLE_ROOT)))
    monkeypatch.setitem(registry.DATASETS, "reuters10k", dataclasses.replace(
        registry.DATASETS["reuters10k"], n_samples=10))
    monkeypatch.setitem(registry.DATASETS, "reuters20", dataclasses.replace(
        registry.DATASETS["reuters20"], n_clusters=6))
    return weights


# --------------------------------------------------------------------------- the protocols


def test_reuters4_is_decs_selection_and_features_written_in_blocks(tiny, server, tmp_path):
    ds, X, y, out = fetch_prepare(tmp_path, "reuters4", chunk_rows=3)
    # DEC: exactly one root topic (the two documents with two roots are deleted), file order
    # test_pt0..3 then train, labels CCAT 0, GCAT 1, MCAT 2, ECAT 3
    assert ds.X.shape == (len(SINGLE_ROOT), D) and ds.n_clusters == 4
    roots = [next(DEC_LABEL[t] for t in DOCS[i][2] if t in DEC_LABEL) for i in SINGLE_ROOT]
    assert y.tolist() == roots
    np.testing.assert_allclose(X, reference(tiny, SINGLE_ROOT, SINGLE_ROOT, np.sqrt(D)),
                               rtol=1e-5, atol=1e-6)
    # rows of norm sqrt(D) (DEC's x sqrt(2000)); did 2 has none of the 5 terms: a zero row
    norms = np.linalg.norm(X, axis=1)
    zero = SINGLE_ROOT.index(next(i for i, d in enumerate(DOCS) if d[1] == 2))
    assert norms[zero] == 0 and np.allclose(np.delete(norms, zero), np.sqrt(D), atol=1e-5)
    assert X.min() == 0
    # stored in the fixed order, X chunked, the attributes of every prepared file
    order = sample_order(len(SINGLE_ROOT))
    assert read_arrays(out, required=("source_index",))[0]["source_index"].tolist() == \
        order.tolist()
    with h5py.File(out, "r") as f:
        assert f["X"].chunks is not None and f["X"].dtype == np.float32
    assert ds.attrs["input_shape"] == [D] and ds.attrs["n_samples"] == len(SINGLE_ROOT)
    text = ds.attrs["preprocessing"]
    assert "exactly one of the root topics" in text and "document frequency" in text
    assert "1 documents have none of them" in text
    # scale: unit, rows of norm 1 in [0, 1]
    _, Xu, _, _ = fetch_prepare(tmp_path, "reuters4", {"scale": "unit"})
    np.testing.assert_allclose(Xu, X / np.sqrt(D), rtol=1e-5, atol=1e-6)
    assert 0 <= Xu.min() and Xu.max() <= 1
    server.requests.clear()
    fetch_raw("reuters4", tmp_path / "raw" / "reuters4")  # verified in place: no download
    assert server.requests == []


def test_reuters10k_draws_decs_random_subset_with_a_recorded_seed(tiny, tmp_path):
    full = reference(tiny, SINGLE_ROOT, SINGLE_ROOT, scale=np.sqrt(D))
    ds, X, y, _ = fetch_prepare(tmp_path, "reuters10k")
    # the first 10 of RandomState(1234).permutation(22), kept in file order; vocabulary and
    # tf-idf from all 22 single-root documents; unit rows x sqrt(D) (DEC's x sqrt(2000))
    chosen = np.sort(np.random.RandomState(1234).permutation(len(SINGLE_ROOT))[:10])
    np.testing.assert_allclose(X, full[chosen], rtol=1e-5, atol=1e-6)
    assert ds.attrs["params"] == {"subset": "random", "seed": 1234, "scale": "sqrt-dim"}
    assert "RandomState(1234)" in ds.attrs["preprocessing"]
    _, X2, _, _ = fetch_prepare(tmp_path, "reuters10k", {"seed": 2})
    chosen2 = np.sort(np.random.RandomState(2).permutation(len(SINGLE_ROOT))[:10])
    assert chosen2.tolist() != chosen.tolist()
    np.testing.assert_allclose(X2, full[chosen2], rtol=1e-5, atol=1e-6)
    # DEC-keras / IDEC: the first 10 in file order; unit rows on request
    _, Xf, yf, _ = fetch_prepare(tmp_path, "reuters10k", {"subset": "first", "scale": "unit"})
    np.testing.assert_allclose(Xf, full[:10] / np.sqrt(D), rtol=1e-5, atol=1e-6)
    assert yf.tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 0, 0]
    with pytest.raises(ConfigError, match="subset must be one of random, first"):
        fetch_prepare(tmp_path, "reuters10k", {"subset": "last"})


def _docs_of(topics: list[str], level: str = "second-level") -> list[int]:
    """Indices of the documents with exactly one topic of ``level``, that topic in ``topics``."""
    pool = reuters.SECOND_LEVEL if level == "second-level" else \
        [t for t in TOPICS if t not in reuters.ROOTS]
    out = []
    for i, (_, _, doc_topics) in enumerate(DOCS):
        mine = [t for t in doc_topics if t in pool]
        if len(mine) == 1 and mine[0] in topics:
            out.append(i)
    return out


def test_reuters20_ranks_topics_drops_the_largest_and_cuts_to_the_top_k(tiny, tmp_path):
    # second-level single-topic documents: C15 6, C17 3, GCRIM 3, M14 3, E21 2, GDIP 2, M11 2,
    # E11 1 (equal counts by name); DCN drops the largest (C15) and keeps the next k
    ranked = ["C17", "GCRIM", "M14", "E21", "GDIP", "M11"]
    ds4, X4, y4, _ = fetch_prepare(tmp_path, "reuters20-top4")
    rows4 = _docs_of(ranked[:4])
    assert y4.tolist() == [ranked.index(t) for i in rows4 for t in DOCS[i][2] if t in ranked]
    np.testing.assert_allclose(X4, reference(tiny, rows4, rows4, np.sqrt(D)), rtol=1e-5,
                               atol=1e-6)
    assert "dropped the largest 1: C15 (6)" in ds4.attrs["preprocessing"]
    assert "C17 (3) -> 0, GCRIM (3) -> 1, M14 (3) -> 2, E21 (2) -> 3" in \
        ds4.attrs["preprocessing"]
    # the 6-cluster version holds the 4-cluster one's documents with the same labels
    ds6, _, y6, _ = fetch_prepare(tmp_path, "reuters20")
    rows6 = _docs_of(ranked)
    assert ds6.n_clusters == 6 and len(y6) == len(rows6)
    assert [y6[rows6.index(i)] for i in rows4] == y4.tolist()
    assert "RMN-GMM reports" not in ds6.attrs["preprocessing"]  # only when it has 20 clusters
    # the printed reading, one param away: no topic dropped; any non-root topic
    _, _, y0, _ = fetch_prepare(tmp_path, "reuters20-top4", {"drop_largest": 0})
    assert np.bincount(y0).tolist() == [6, 3, 3, 3]  # C15 first
    ds_nr, _, ynr, _ = fetch_prepare(tmp_path, "reuters20-top4",
                                     {"drop_largest": 0, "topics": "non-root"})
    # C15 + C151 and M14 + M141 have two non-root topics: C15 5, C17 3, GCRIM 3, E21 2 ...
    assert np.bincount(ynr).tolist() == [5, 3, 3, 2]
    assert len(ynr) == len(_docs_of(["C15", "C17", "GCRIM", "E21"], "non-root"))
    with pytest.raises(ConfigError, match="drop_largest must be an integer >= 0"):
        fetch_prepare(tmp_path, "reuters20-top4", {"drop_largest": -1})


# --------------------------------------------------------------------------- downloads


def test_checksum_mismatch_names_file_urls_checksum_and_folder(tiny, server, tmp_path):
    spec = registry.DATASETS["reuters4"]
    bad = spec.files[2]
    server.put("rcv1", bad.name, b"another file")
    raw = tmp_path / "raw" / "reuters4"
    with pytest.raises(DownloadError) as err:
        fetch_raw("reuters4", raw)
    message = str(err.value)
    assert bad.name in message and bad.url in message and f"sha256 {bad.sha256}" in message
    assert "by hand" in message and str(raw.resolve()) in message
    assert not (raw / bad.name).exists()
    assert len(list(raw.glob("*.gz"))) == 5  # the others were fetched; nothing else is kept


def test_dead_link_lists_every_url_the_checksum_and_the_folder(monkeypatch, tmp_path):
    """The registry's own entries, their hosts unreachable: one error names every file, both
    URLs tried for each (figshare, then the LYRL2004 original), its pin, and the folder."""
    raw = tmp_path / "raw" / "reuters10k"
    dead = tuple(dataclasses.replace(f, url=f"http://127.0.0.1:9/figshare/{i}",
                                     fallback_urls=(f"http://127.0.0.1:9/lyrl/{f.name}",))
                 for i, f in enumerate(registry.RCV1_FILES))
    monkeypatch.setitem(registry.DATASETS, "reuters10k", dataclasses.replace(
        registry.DATASETS["reuters10k"], files=dead))
    with pytest.raises(DownloadError) as err:
        fetch_raw("reuters10k", raw)
    message = str(err.value)
    assert "6 raw files are missing" in message
    for remote in dead:
        assert remote.name in message and f"sha256 {remote.sha256}" in message
        assert all(url in message for url in remote.urls())
    assert str(raw.resolve()) in message and "by hand" in message
    assert not raw.exists() or not any(raw.iterdir())


def test_partial_download_is_never_used(tiny, server, tmp_path, monkeypatch):
    files = {f.name: (server.root / "rcv1" / f.name).read_bytes()
             for f in registry.DATASETS["reuters4"].files}
    cut = RCV1_QRELS_FILE
    server.put("partial", cut, files[cut])
    spec = registry.DATASETS["reuters4"]
    monkeypatch.setitem(registry.DATASETS, "reuters4", dataclasses.replace(spec, files=tuple(
        dataclasses.replace(f, url=server.url("partial", f.name)) if f.name == cut else f
        for f in spec.files)))
    raw = tmp_path / "raw" / "reuters4"
    with pytest.raises(DownloadError) as err:
        fetch_raw("reuters4", raw)
    assert cut in str(err.value) and server.url("partial", cut) in str(err.value)
    assert sorted(p.name for p in raw.iterdir()) == sorted(set(files) - {cut})
    # the complete file served at the same name then downloads and verifies
    monkeypatch.setitem(registry.DATASETS, "reuters4", spec)
    manifest = fetch_raw("reuters4", raw)
    assert (raw / cut).read_bytes() == files[cut] and len(manifest["files"]) == 6


# --------------------------------------------------------------------------- wrong copies


def test_copies_of_the_wrong_content_are_refused_with_what_was_expected(server, tmp_path,
                                                                         monkeypatch):
    """Files with the pinned checksum but not the RCV1-v2 content (a stale pin; tiny files
    against the real corpus) stop prepare naming the file, what was found and expected."""
    weights = _weights(np.random.default_rng(1))
    files = corpus_files(weights)
    serve(server, monkeypatch, ["reuters4"], files, corpus=reuters.Corpus())
    with pytest.raises(DataFileError) as err:
        fetch_prepare(tmp_path / "a", "reuters4")
    message = str(err.value)
    assert RCV1_QRELS_FILE in message and "14 topics" in message
    assert "103 including CCAT" in message and "804,414 documents in all" in message
    assert "rerun stages.fetch --dataset reuters4" in message

    corpus = dataclasses.replace(TINY, documents=804_414)
    serve(server, monkeypatch, ["reuters4"], files, folder="b", corpus=corpus)
    with pytest.raises(DataFileError, match=f"{len(DOCS)} documents .* instead of 804,414"):
        fetch_prepare(tmp_path / "b", "reuters4")

    corpus = dataclasses.replace(TINY, train_documents=23_149)
    serve(server, monkeypatch, ["reuters4"], files, folder="c", corpus=corpus)
    with pytest.raises(DataFileError, match="6 documents in the train file instead of 23,149"):
        fetch_prepare(tmp_path / "c", "reuters4")

    corpus = dataclasses.replace(TINY, single_root=685_071)
    serve(server, monkeypatch, ["reuters4"], files, folder="d", corpus=corpus)
    with pytest.raises(DataFileError, match="22 documents with exactly one root topic instead "
                                            "of 685,071"):
        fetch_prepare(tmp_path / "d", "reuters4")

    wider = dict(files)  # a term id beyond the 12 of this corpus
    wider[RCV1_VECTOR_FILES[1]] = gzip.compress(b"201  3:0.5 13:0.5\n")
    serve(server, monkeypatch, ["reuters4"], wider, folder="e")
    with pytest.raises(DataFileError, match="not LYRL2004 vectors"):
        fetch_prepare(tmp_path / "e", "reuters4")


# --------------------------------------------------------------------------- prepare


def test_a_sparse_loader_output_is_written_like_the_dense_one(tmp_path, monkeypatch):
    """prepare writes a CSR X in blocks (11 rows, blocks of 4) exactly as the dense X: values,
    the fixed order, source_index, y and the attributes."""
    rng = np.random.default_rng(3)
    dense = np.where(rng.random((11, 7)) < 0.3, rng.random((11, 7)), 0).astype(np.float32)
    y = np.arange(11) % 3
    outputs = {}
    for kind, X in (("dense", dense), ("sparse", sparse.csr_matrix(dense))):
        monkeypatch.setitem(sources.LOADERS, "synthetic", lambda spec, files, params, X=X:
                            Loaded(X, y, 3, "a test matrix"))
        raw = tmp_path / kind
        fetch_raw("synthetic", raw)
        outputs[kind] = prepare("synthetic", raw / "manifest.json", tmp_path / f"{kind}.h5",
                                chunk_rows=4)
    arrays = {k: read_arrays(p, required=("X", "y", "source_index")) for k, p in outputs.items()}
    for name in ("X", "y", "source_index"):
        np.testing.assert_array_equal(arrays["sparse"][0][name], arrays["dense"][0][name])
    order = sample_order(11)
    np.testing.assert_array_equal(arrays["sparse"][0]["X"], dense[order])
    assert arrays["sparse"][0]["X"].dtype == np.float32
    attrs = {k: {a: v for a, v in arrays[k][1].items() if a != "provenance"} for k in arrays}
    assert attrs["sparse"] == attrs["dense"] and attrs["sparse"]["input_shape"] == [7]


# --------------------------------------------------------------------------- configuration


def _config_with(datasets: dict) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["datasets"] = datasets
    return config


def test_vector_inputs_take_the_fully_connected_networks_only():
    from stages.plumbing.config import validate

    fc = ["kmeans", "gmm", "sae-kmeans", "dec", "idec", "saip-dae-kmeans", "saip-hoe",
          "aef-kmeans", "aef-gmm", "deepgmm", "rmn-gmm"]
    validate(_config_with({name: {"methods": fc} for name in
                           ("reuters10k", "reuters4", "reuters20", "reuters20-top4")}))
    for method, net in (("cae-kmeans", "cae"), ("depict", "depict"), ("dscdan", "dscdan"),
                        ("saip-hoe-cnn", "saip-cnn")):
        with pytest.raises(ConfigError) as err:
            validate(_config_with({"reuters10k": {"methods": ["dec", method]}}))
        message = str(err.value)
        assert f"method '{method}' on dataset 'reuters10k'" in message
        assert f"network '{net}'" in message and "(2000,)" in message
        assert "needs images (C, H, W)" in message and f"Remove '{method}'" in message


@pytest.mark.parametrize("net, arch", [
    ("sae", {"hidden": [500, 500, 2000, 10]}),
    ("sae", {"hidden": [500, 500, 2000, 10], "centre_input": True}),  # SAIP's DAE
    ("rmn-sae", {"hidden": [500, 500, 2000, 10], "activation": "sigmoid",
                 "output": "sigmoid"}),
])
def test_fully_connected_networks_build_and_run_on_2000_d_vectors(net, arch):
    import torch

    from stages.nets import build_network

    model = build_network(net, (2000,), arch)
    x = torch.rand(3, 2000)
    z = model.encode(x)
    assert z.shape == (3, 10) and model.decode(z).shape == (3, 2000)


def test_datasets_examples_plan_reuters_with_fully_connected_methods():
    from stages.plumbing.config import validate
    from tests.datafiles import examples_config

    config = examples_config()
    validate(config)
    names = ["reuters10k", "reuters4", "reuters20", "reuters20-top4", "reuters20-top8",
             "reuters20-top12", "reuters20-top16"]
    assert set(names) <= set(config["run_datasets"])
    assert {"saip-hot", "idec"} <= set(config["datasets"]["reuters10k"]["methods"])
    assert "rmn-gmm-vec" in config["datasets"]["reuters4"]["methods"]
    assert all("rmn-gmm-vec" in config["datasets"][n]["methods"] for n in names[2:])
    # the *-vec recipes: no image augmentation, a linear output for tf-idf
    assert config["autoencoders"]["rmn-vec"]["augment"] is False
    assert config["autoencoders"]["rmn-vec"]["arch"]["output"] == "linear"
