"""Reuters (RCV1-v2) as tf-idf vectors: ``reuters10k``, ``reuters4``, ``reuters20`` (and its
top-k subsets ``reuters20-top4`` ... ``reuters20-top16``).

Rebuilds DEC's features [code DEC] from the pinned LYRL2004 vector files and the qrels
(stages/data/registry.py): the documents with exactly one root topic (CCAT, GCAT, MCAT, ECAT ->
0..3) in file order, the 2,000 stems present in the most of them (document frequency), their
LYRL2004 tf-idf weights with each row re-normalised over those stems, x sqrt(2000) (param
``scale``: ``sqrt-dim``; ``unit`` drops the factor). REUTERS-10K: the first 10,000 of a
``RandomState(1234)`` permutation (``subset: random`` [code DEC]; ``first``: file order [code
DEC-keras / IDEC]). Reuters-20: DCN's topic selection [code] (params ``topics``,
``drop_largest``), labels by topic size. X is returned as CSR float32. The full protocol, the
departures from DEC's and DCN's code and the memory measured: docs/notes/reuters.md.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from stages.data.loading import Files, Loaded, check_count, mismatch, need_file
from stages.data.registry import RCV1_QRELS_FILE, RCV1_VECTOR_FILES, DatasetSpec
from stages.plumbing.errors import ConfigError

log = logging.getLogger("stages.data.reuters")

#: DEC's cat_to_cid: the four root topics, labels 0..3
ROOTS = ("CCAT", "GCAT", "MCAT", "ECAT")
#: the children of the four roots in LYRL2004's topic hierarchy (rcv1.topics.hier.orig)
SECOND_LEVEL = (
    "C11", "C12", "C13", "C14", "C15", "C16", "C17", "C18", "C21", "C22", "C23", "C24", "C31",
    "C32", "C33", "C34", "C41", "C42",
    "E11", "E12", "E13", "E14", "E21", "E31", "E41", "E51", "E61", "E71",
    "G15", "GCRIM", "GDEF", "GDIP", "GDIS", "GENT", "GENV", "GFAS", "GHEA", "GJOB", "GMIL",
    "GOBIT", "GODD", "GPOL", "GPRO", "GREL", "GSCI", "GSPO", "GTOUR", "GVIO", "GVOTE", "GWEA",
    "GWELF",
    "M11", "M12", "M13", "M14",
)
#: Reuters-20's size as RMN-GMM reports it (its Table 2)
PAPER_REUTERS20_DOCUMENTS = 365_968
SCALES = ("sqrt-dim", "unit")
SUBSETS = ("random", "first")
TOPIC_SETS = ("second-level", "non-root")


@dataclass(frozen=True)
class Corpus:
    """What the pinned RCV1-v2 files hold (LYRL2004); the loaders refuse files that differ.

    Tests replace :data:`CORPUS` to read tiny files in the same formats.
    """

    documents: int = 804_414
    train_documents: int = 23_149
    terms: int = 47_236
    topics: int = 103
    single_root: int = 685_071


CORPUS = Corpus()


@dataclass(frozen=True)
class Selection:
    """Documents chosen by their topics: ids (sorted) and labels, with how they were chosen."""

    ids: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    how: str


# --------------------------------------------------------------------------- raw files


def read_qrels(spec: DatasetSpec, path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``topic did 1`` lines -> (dids (M,) int64, topic indices (M,) int64, topic names)."""
    names: dict[str, int] = {}
    dids, topics = [], []
    try:
        with gzip.open(path, "rt", encoding="ascii") as handle:
            for number, line in enumerate(handle, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 3 or not parts[1].isdigit():
                    raise mismatch(spec, path, f"line {number} {line.strip()[:60]!r}")
                dids.append(int(parts[1]))
                topics.append(names.setdefault(parts[0], len(names)))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise mismatch(spec, path, f"an unreadable file ({err})") from err
    if len(names) != CORPUS.topics or not set(ROOTS) <= set(names):
        shown = sorted(names)[:8]
        raise mismatch(spec, path, f"{len(names)} topics ({', '.join(shown)}...) instead of "
                                    f"{CORPUS.topics} including {', '.join(ROOTS)}")
    return np.asarray(dids, np.int64), np.asarray(topics, np.int64), list(names)


def _single_topic(dids: np.ndarray, topics: np.ndarray, wanted: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The documents with exactly one topic among ``wanted`` (topic indices): (ids, topic)."""
    keep = np.isin(topics, wanted)
    d, t = dids[keep], topics[keep]
    ids, first, counts = np.unique(d, return_index=True, return_counts=True)
    single = counts == 1
    return ids[single], t[first[single]]


def single_root(spec: DatasetSpec, qrels: tuple[np.ndarray, np.ndarray, list[str]],
                path: Path) -> Selection:
    """DEC's REUTERS: the documents with exactly one root topic, labelled by ``ROOTS``."""
    dids, topics, names = qrels
    index = {name: i for i, name in enumerate(names)}
    ids, topic = _single_topic(dids, topics, np.array([index[r] for r in ROOTS]))
    if len(ids) != CORPUS.single_root:
        raise mismatch(spec, path, f"{len(ids):,} documents with exactly one root topic "
                                    f"instead of {CORPUS.single_root:,}")
    label_of = np.full(len(names), -1, np.int64)
    label_of[[index[r] for r in ROOTS]] = np.arange(len(ROOTS))
    return Selection(ids, label_of[topic], ROOTS,
                     f"documents with exactly one of the root topics {', '.join(ROOTS)} "
                     f"(qrels), labels {', '.join(f'{r} -> {i}' for i, r in enumerate(ROOTS))}")


def ranked_topics(spec: DatasetSpec, qrels: tuple[np.ndarray, np.ndarray, list[str]],
                  path: Path, top: int, params: Mapping[str, Any]) -> Selection:
    """DCN's Reuters-20: the documents of exactly one topic of ``params['topics']``, the topics
    ranked by those counts, ``drop_largest`` dropped and the next ``top`` kept (label = rank)."""
    dids, topics, names = qrels
    level, drop = params["topics"], params["drop_largest"]
    if level not in TOPIC_SETS:
        raise ConfigError(f"{spec.name}: topics must be one of {', '.join(TOPIC_SETS)}, got "
                          f"{level!r}")
    if isinstance(drop, bool) or not isinstance(drop, int) or drop < 0:
        raise ConfigError(f"{spec.name}: drop_largest must be an integer >= 0, got {drop!r}")
    pool = SECOND_LEVEL if level == "second-level" else [n for n in names if n not in ROOTS]
    index = {name: i for i, name in enumerate(names)}
    wanted = np.array([index[n] for n in pool if n in index], np.int64)
    ids, topic = _single_topic(dids, topics, wanted)
    counts = np.bincount(topic, minlength=len(names))
    # by count, largest first; equal counts by topic name
    ranked = sorted((int(t) for t in wanted if counts[t]), key=lambda t: (-counts[t], names[t]))
    if len(ranked) < drop + top:
        raise mismatch(spec, path, f"{len(ranked)} {level} topics with single-topic documents, "
                                    f"fewer than the {drop} dropped + {top} kept")
    kept = ranked[drop:drop + top]
    label_of = np.full(len(names), -1, np.int64)
    label_of[kept] = np.arange(top)
    labels = label_of[topic]
    chosen = labels >= 0
    classes = tuple(names[t] for t in kept)
    dropped = ", ".join(f"{names[t]} ({counts[t]:,})" for t in ranked[:drop]) or "none"
    sizes = ", ".join(f"{names[t]} ({counts[t]:,}) -> {i}" for i, t in enumerate(kept))
    return Selection(ids[chosen], labels[chosen], classes,
                     f"documents with exactly one {level} topic (qrels), topics ranked by those "
                     f"documents; dropped the largest {drop}: {dropped}; kept the next {top}, "
                     f"labels by rank: {sizes}")


def read_vectors(spec: DatasetSpec, files: Files, wanted: np.ndarray
                 ) -> tuple[sparse.csr_matrix, np.ndarray]:
    """The rows of documents ``wanted`` (sorted ids) from the five vector files, in file order.

    Returns (X (n, terms) CSR float32 with LYRL2004's weights, ids (n,)). Every file is checked:
    integer document ids, term ids in 1..terms, the document counts of :data:`CORPUS`.
    """
    from sklearn.datasets import load_svmlight_file  # heavy import, only needed here

    parts, ids, total, seen = [], [], 0, []
    for name in RCV1_VECTOR_FILES:
        path = need_file(files, name)
        try:
            x, did = load_svmlight_file(str(path), n_features=CORPUS.terms, dtype=np.float32,
                                        zero_based=False)
        except (ValueError, OSError, EOFError) as err:
            raise mismatch(spec, path, f"a file that is not LYRL2004 vectors ({err})") from err
        if did.size and (np.any(did != np.round(did)) or did.min() < 1):
            raise mismatch(spec, path, "document ids that are not positive integers")
        did = did.astype(np.int64)
        if name.endswith("_train.dat.gz") and len(did) != CORPUS.train_documents:
            raise mismatch(spec, path, f"{len(did):,} documents in the train file instead of "
                                        f"{CORPUS.train_documents:,}")
        if x.nnz and x.data.min() < 0:
            raise mismatch(spec, path, "negative term weights")
        total += len(did)
        seen.append(did)
        keep = np.isin(did, wanted)
        parts.append(x[keep].astype(np.float32))
        ids.append(did[keep])
        log.info("%s: %d documents, %d kept", name, len(did), int(keep.sum()))
    all_ids = np.concatenate(seen)
    if total != CORPUS.documents or len(np.unique(all_ids)) != total:
        raise mismatch(spec, need_file(files, RCV1_VECTOR_FILES[-1]).parent,
                        f"{total:,} documents ({len(np.unique(all_ids)):,} distinct) in the "
                        f"vector files instead of {CORPUS.documents:,}")
    X = sparse.vstack(parts, format="csr", dtype=np.float32)
    found = np.concatenate(ids)
    if len(found) != len(wanted):
        missing = np.setdiff1d(wanted, found)[:5].tolist()
        raise mismatch(spec, need_file(files, RCV1_QRELS_FILE),
                        f"{len(wanted) - len(found):,} selected documents (e.g. {missing}) that no "
                        "vector file holds")
    return X, found


# --------------------------------------------------------------------------- features


def top_terms(X: sparse.csr_matrix, n_terms: int) -> np.ndarray:
    """The ``n_terms`` columns present in the most rows (ties: the lower column), sorted."""
    df = np.bincount(X.indices, minlength=X.shape[1])
    ranked = np.lexsort((np.arange(len(df)), -df))
    return np.sort(ranked[:n_terms])


def tfidf_rows(X: sparse.csr_matrix, columns: np.ndarray, scale: str) -> sparse.csr_matrix:
    """X restricted to ``columns``, each row unit-length (zero rows stay zero), x sqrt(D) when
    ``scale`` is ``sqrt-dim``; CSR float32."""
    sub = X[:, columns].tocsr().astype(np.float64)
    norms = np.sqrt(np.asarray(sub.multiply(sub).sum(axis=1)).ravel())
    factor = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    if scale == "sqrt-dim":
        factor *= np.sqrt(len(columns))
    out = sparse.diags(factor).dot(sub).tocsr().astype(np.float32)
    out.eliminate_zeros()
    return out


def _scale(spec: DatasetSpec, params: Mapping[str, Any]) -> str:
    scale = params["scale"]
    if scale not in SCALES:
        raise ConfigError(f"{spec.name}: scale must be one of {', '.join(SCALES)}, got "
                          f"{scale!r}")
    return scale


def _describe(spec: DatasetSpec, selection: Selection, X: sparse.csr_matrix,
              vocabulary: str, scale: str, extra: str = "") -> str:
    n, d = X.shape
    empty = int(np.sum(np.diff(X.indptr) == 0))
    how = (f"unit rows x sqrt({d}) [code DEC]" if scale == "sqrt-dim"
           else "unit rows, values in [0, 1]")
    return (f"RCV1-v2 LYRL2004 vectors ({', '.join(RCV1_VECTOR_FILES)}, in that order) and "
            f"{RCV1_QRELS_FILE}: {selection.how}; {extra}{n:,} documents in file order; "
            f"features: the {d:,} LYRL2004 stems (term ids) present in the most {vocabulary} "
            "(document frequency, ties by lower id; columns in term-id order), their ltc "
            f"tf-idf weights as published, each row re-normalised over those {d:,} ({how}); "
            f"{empty:,} documents have none of them (zero rows); class sizes "
            f"{np.bincount(selection.labels, minlength=len(selection.classes)).tolist()} "
            f"({', '.join(selection.classes)}); X sparse CSR float32, stored dense in row blocks")


# --------------------------------------------------------------------------- loaders


def _corpus_rows(spec: DatasetSpec, files: Files, selection: Selection
                 ) -> tuple[sparse.csr_matrix, np.ndarray]:
    """The selected documents' weight rows in file order, and their labels in that order."""
    X, ids = read_vectors(spec, files, selection.ids)
    labels = selection.labels[np.searchsorted(selection.ids, ids)]
    return X, labels


def load_reuters4(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    """Reuters-4 (RMN-GMM) / DEC's REUTERS: every single-root document."""
    scale = _scale(spec, params)
    path = need_file(files, RCV1_QRELS_FILE)
    selection = single_root(spec, read_qrels(spec, path), path)
    X, y = _corpus_rows(spec, files, selection)
    check_count(spec, path, X.shape[0], "documents with exactly one root topic")
    features = tfidf_rows(X, top_terms(X, spec.input_shape[0]), scale)
    return Loaded(features, y, spec.n_clusters,
                  _describe(spec, selection, features, "of these documents", scale))


def load_reuters10k(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    """DEC's REUTERS-10K: ``n_samples`` of the single-root documents (random or first)."""
    scale = _scale(spec, params)
    subset, seed = params["subset"], params["seed"]
    if subset not in SUBSETS:
        raise ConfigError(f"{spec.name}: subset must be one of {', '.join(SUBSETS)}, got "
                          f"{subset!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{spec.name}: seed must be an integer, got {seed!r}")
    path = need_file(files, RCV1_QRELS_FILE)
    selection = single_root(spec, read_qrels(spec, path), path)
    X, y = _corpus_rows(spec, files, selection)
    # DEC: the vocabulary and the tf-idf of all single-root documents, then the subset
    features = tfidf_rows(X, top_terms(X, spec.input_shape[0]), scale)
    size = int(spec.n_samples or 0)
    if subset == "random":  # DEC: a permutation (np.random, seed 1234), its first `size`
        chosen = np.sort(np.random.RandomState(seed).permutation(X.shape[0])[:size])
        how = (f"the first {size:,} of np.random.RandomState({seed}).permutation({X.shape[0]:,})"
               " of them [code DEC], kept in file order; ")
    else:  # DEC-keras / IDEC: x[:10000] in file order
        chosen = np.arange(min(size, X.shape[0]))
        how = f"the first {size:,} of them in file order [code DEC-keras, IDEC]; "
    features, y = features[chosen], y[chosen]
    check_count(spec, path, features.shape[0], "documents in the subset")
    return Loaded(features, y, spec.n_clusters,
                  _describe(spec, selection, features,
                            f"of all {X.shape[0]:,} single-root documents", scale, how))


def load_reuters20(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    """Reuters-20 (RMN-GMM) or its ``n_clusters`` largest clusters: DCN's topic selection."""
    scale = _scale(spec, params)
    path = need_file(files, RCV1_QRELS_FILE)
    selection = ranked_topics(spec, read_qrels(spec, path), path, spec.n_clusters, params)
    X, y = _corpus_rows(spec, files, selection)
    check_count(spec, path, X.shape[0], "documents")
    features = tfidf_rows(X, top_terms(X, spec.input_shape[0]), scale)
    note = (f"RMN-GMM reports {PAPER_REUTERS20_DOCUMENTS:,} documents for Reuters-20; "
            if spec.n_clusters == 20 else "")
    if note and X.shape[0] != PAPER_REUTERS20_DOCUMENTS:
        log.warning("%s: %d documents, RMN-GMM reports %d (its topic list is not published)",
                    spec.name, X.shape[0], PAPER_REUTERS20_DOCUMENTS)
    sizes = np.bincount(y, minlength=spec.n_clusters)
    ratio = f"largest / smallest cluster {sizes.max() / max(sizes.min(), 1):.1f}; "
    return Loaded(features, y, spec.n_clusters,
                  _describe(spec, selection, features, "of these documents", scale,
                            note + ratio))

