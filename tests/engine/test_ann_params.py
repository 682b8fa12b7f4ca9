"""How AnnIndex sizes its HNSW search (ef) and what that buys in recall."""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.vectors import ClipLike, describe, twonn_dimension, uniform
from engine.store.ann import DEFAULT_EXACT_THRESHOLD, AnnIndex, hnsw_bytes_per_vector


def test_ef_covers_k_and_grows_with_it():
    ann = AnnIndex(8)
    assert ann.ef_for(10, 100_000) == ann.ef_search  # the measured default for ordinary k
    last = 0
    for k in (1, 10, 64, 65, 78, 200, 1000):
        ef = ann.ef_for(k, 100_000)
        assert ef >= 2 * k  # hnswlib needs ef >= k; ef == k recalls poorly
        assert ef >= last
        last = ef


def test_ef_grows_with_index_size_beyond_a_million():
    ann = AnnIndex(8, ef_search=100)
    assert ann.ef_for(10, 1_000) == ann.ef_for(10, 1_000_000) == 100
    assert ann.ef_for(10, 10_000_000) == 200
    assert 100 < ann.ef_for(10, 3_000_000) < 200


def test_search_sets_the_adaptive_ef():
    ann = AnnIndex(16, exact_threshold=0, ef_search=24)
    vecs = uniform(600, 16, seed=3)
    ann.add(np.arange(600), vecs)
    assert ann.mode == "hnsw"
    ann.search(vecs[0], 5)
    assert ann._hnsw.ef == 24
    ann.search(vecs[0], 100)
    assert ann._hnsw.ef == 200
    assert ann.ef_for(5) == 24  # size defaults to the live count


def _recall(ann: AnnIndex, vecs: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    hits = 0
    for q in queries:
        truth = set(np.argpartition(-(vecs @ q), k - 1)[:k].tolist())
        hits += len(truth & {i for i, _ in ann.search(q, k)})
    return hits / (k * len(queries))


def test_default_parameters_reach_the_recall_target_on_clip_like_vectors():
    gen = ClipLike(64, sub_dim=16, clusters=40, seed=1)
    vecs, queries = gen.images(4000), gen.queries(50)
    good = AnnIndex(64, exact_threshold=0)
    good.add(np.arange(len(vecs)), vecs)
    # A deliberately starved index (tiny graph, ef pinned low) must score lower, or this
    # test could not tell good parameters from bad ones.
    poor = AnnIndex(64, exact_threshold=0, m=2, ef_construction=4, ef_search=1)
    poor.add(np.arange(len(vecs)), vecs)
    r_good, r_poor = _recall(good, vecs, queries), _recall(poor, vecs, queries)
    assert r_good >= 0.95, r_good
    assert r_poor < r_good - 0.05, (r_poor, r_good)


def test_exact_threshold_unchanged():
    assert DEFAULT_EXACT_THRESHOLD == 20_000
    assert AnnIndex(8).mode == "exact"


def test_memory_formula_matches_hnswlib_layout():
    # 512-d float32 and M=16: 2048 bytes of vector + 132 of level-0 links + label and
    # bookkeeping: about 2.29 kB, i.e. 2.29 GB per million vectors.
    per = hnsw_bytes_per_vector(512, 16)
    assert 2048 + 132 + 8 < per < 2400
    assert hnsw_bytes_per_vector(512, 32) - per == pytest.approx(16 * 2 * 4, abs=2)


def test_clip_like_vectors_look_like_embeddings_and_uniform_ones_do_not():
    gen = ClipLike(128, sub_dim=16, clusters=50, seed=0)
    clip = describe(gen.images(3000), sample=600)
    flat = describe(uniform(3000, 128), sample=600)
    assert clip["mean_cosine"] > 0.2 > abs(flat["mean_cosine"])  # a shared cone
    assert clip["twonn_dim"] < 20 < flat["twonn_dim"]  # low intrinsic dimension
    assert clip["top10_variance"] > 2 * flat["top10_variance"]


def test_twonn_recovers_a_known_dimension():
    # Unit vectors spanning 8 of 32 coordinates: the 7-sphere, a 7-dimensional manifold.
    rng = np.random.default_rng(0)
    sphere7 = np.zeros((4000, 32), dtype=np.float32)
    sphere7[:, :8] = rng.standard_normal((4000, 8))
    sphere7 /= np.linalg.norm(sphere7, axis=1, keepdims=True)
    assert 5.5 < twonn_dimension(sphere7, sample=1000) < 8.5
