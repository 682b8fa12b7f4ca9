"""Query latency: text encode + ANN search at 100k and 1M stored vectors.

No trained CLIP weights exist on build machines, so the stored vectors are
synthetic (see :mod:`engine.bench.vectors`): ``clip_like`` vectors with the
geometry of real embeddings (clustered, low intrinsic dimension, a shared cone)
for the figure that matters, and ``uniform`` vectors on the sphere as the
worst case. The text encoder is a real ViT-B-32-256 text tower with random
weights (costs exactly what a trained one does).

For each kind and size it reports: build time, resident memory per million
vectors (measured RSS growth while building, and hnswlib's own layout formula),
p50/p99 of text encode + search through :class:`engine.store.ann.AnnIndex` exactly as
the product calls it (adaptive ef), recall@10 against exact search, and a sweep
of recall and latency over ef_search that shows where the chosen ef sits.

Built indexes can be kept (``--index-cache DIR``) so a 1M index that took many
minutes to build is queried again without rebuilding.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from ..store.ann import AnnIndex, hnsw_bytes_per_vector
from . import vectors as V

SWEEP_EF = (16, 32, 64, 96, 128, 192, 256, 384, 512)


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; falls back to peak RSS)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _truth(vecs: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k row indices by brute force (the recall reference)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 50):
        scores = queries[s : s + 50] @ vecs.T
        out[s : s + 50] = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return out


def _build(kind: str, n: int, dim: int, vecs: np.ndarray, ann: AnnIndex, cache: Path | None, log):
    """Fill `ann` (loading a cached index when there is one). Returns (build_s, rss_mb)."""
    ids = np.arange(n, dtype=np.int64)
    name = f"{kind}-{n}-{dim}-M{ann.m}-efc{ann.ef_construction}.hnsw"
    gc.collect()
    before = _rss_mb()
    if cache is not None and (cache / name).is_file():
        import hnswlib

        meta = json.loads((cache / name).with_suffix(".json").read_text())
        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(os.fspath(cache / name))
        ann._hnsw = index
        log(f"  loaded cached index {cache / name} (built in {meta['build_s']} s)")
        return meta["build_s"], _rss_mb() - before
    t0 = time.perf_counter()
    step = 50_000
    for s in range(0, n, step):
        ann.add(ids[s : s + step], vecs[s : s + step])
        if (s // step) % 4 == 3 or s + step >= n:
            log(f"  building {min(n, s + step)}/{n} ({time.perf_counter() - t0:.0f} s)")
    build_s = time.perf_counter() - t0
    rss = _rss_mb() - before
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        ann._hnsw.save_index(os.fspath(cache / name))
        (cache / name).with_suffix(".json").write_text(
            json.dumps(dict(build_s=round(build_s, 1), rss_mb=rss))
        )
    return build_s, rss


def measure(
    kind: str,
    n: int,
    dim: int,
    *,
    queries: int = 300,
    text_model=None,
    cache: Path | None = None,
    log=print,
    **hnsw,
) -> dict:
    """Build (or load) an index of `n` synthetic vectors of `kind` and measure it."""
    vecs, qv = V.make(kind, n, queries, dim)
    truth = _truth(vecs, qv, 10)
    ann = AnnIndex(dim, exact_threshold=0, **hnsw)
    ann._switch_to_hnsw(extra=n)  # capacity for all of them up front, as a rebuild does
    build_s, rss_mb = _build(kind, n, dim, vecs, ann, cache, log)
    del vecs
    gc.collect()
    formula = hnsw_bytes_per_vector(dim, ann.m) * 1e6 / 1e6  # MB per million
    # ef sweep on the bare index: recall and search-only latency, one thread as in the product.
    sweep = []
    index = ann._hnsw
    index.set_num_threads(1)
    for ef in SWEEP_EF:
        index.set_ef(ef)
        lat, hits = [], 0
        for i in range(queries):
            t = time.perf_counter()
            labels, _ = index.knn_query(qv[i : i + 1], k=10)
            lat.append(time.perf_counter() - t)
            hits += len(set(labels[0].tolist()) & set(truth[i].tolist()))
        sweep.append(
            dict(
                ef=ef,
                recall=round(hits / (10 * queries), 4),
                p50_ms=round(1e3 * float(np.median(lat)), 3),
            )
        )
    # The product path: text encode + AnnIndex.search with its adaptive ef.
    rng = np.random.default_rng(1)
    words = rng.choice(["cat", "dog", "beach", "car", "dusk", "kids", "receipt"], queries)
    texts = [f"photo number {i} of a {w}" for i, w in enumerate(words)]
    lat, enc, srch, hits, hits_k = [], [], [], 0, 0
    product_k = 50 + 16 + 50 // 4  # what engine.search asks the ANN for by default (k=50)
    for i in range(queries):
        t = time.perf_counter()
        if text_model is not None:
            text_model._text_cache.clear()  # measure the encoder, not the cache
            text_model.encode_texts([texts[i]])
        t1 = time.perf_counter()
        got = ann.search(qv[i], 10)
        lat.append(time.perf_counter() - t)
        enc.append(t1 - t)
        srch.append(lat[-1] - enc[-1])
        hits += len({g for g, _ in got} & set(truth[i].tolist()))
        wide = ann.search(qv[i], product_k)[:10]
        hits_k += len({g for g, _ in wide} & set(truth[i].tolist()))
    lat_ms, enc_ms, srch_ms = np.array(lat) * 1e3, np.array(enc) * 1e3, np.array(srch) * 1e3
    return dict(
        kind=kind, n=n, dim=dim, m=ann.m, ef_construction=ann.ef_construction, ef_search=ann.ef_for(10),
        build_s=round(build_s, 1), ram_mb_per_million=round(rss_mb * 1e6 / n),
        formula_mb_per_million=round(formula), p50_ms=round(float(np.percentile(lat_ms, 50)), 2),
        p99_ms=round(float(np.percentile(lat_ms, 99)), 2), encode_p50_ms=round(float(np.percentile(enc_ms, 50)), 2),
        search_p50_ms=round(float(np.percentile(srch_ms, 50)), 3), search_p99_ms=round(float(np.percentile(srch_ms, 99)), 3),
        recall_at_10=round(hits / (10 * queries), 4), recall_at_10_of_k78=round(hits_k / (10 * queries), 4), text_encoder=text_model is not None, sweep=sweep,
    )  # fmt: skip


def run(args, out=None) -> dict:
    from .common import bench_log, bench_model

    log = bench_log(out)
    model = bench_model("vit-b-32-256-datacomp", log=log, image=False)
    dim = model.spec.embed_dim if model else 512
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = getattr(args, "kinds", None) or "clip_like,uniform"
    cache = Path(args.index_cache) if getattr(args, "index_cache", None) else None
    if args.quick:
        sizes = [min(s, 20_000) for s in sizes]
    hnsw = {}
    if getattr(args, "m", None):
        hnsw["m"] = args.m
    if getattr(args, "ef_construction", None):
        hnsw["ef_construction"] = args.ef_construction
    rows = []
    for n in sizes:
        for kind in kinds.split(","):
            log(f"query bench: {n} {kind} vectors of {dim} dims")
            rows.append(measure(kind, n, dim, text_model=model, cache=cache, log=log, **hnsw))
            if out:
                print("  ef_search sweep (search only): " + ", ".join(
                    f"ef {s['ef']}: recall {s['recall']:.3f} {s['p50_ms']:.2f} ms" for s in rows[-1]["sweep"]), file=out)  # fmt: skip
            gc.collect()
    if out:
        print("\nkind       vectors  M efC  ef build s  p50 ms  p99 ms (encode p50)  recall@10 (of k=78)  MB/1M RSS  MB/1M formula",
              file=out)  # fmt: skip
        for r in rows:
            print(f"{r['kind']:9s} {r['n']:>8d} {r['m']:2d} {r['ef_construction']:3d} {r['ef_search']:3d} {r['build_s']:7.1f} "
                  f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} ({r['encode_p50_ms']:6.2f})    {r['recall_at_10']:8.4f} ({r['recall_at_10_of_k78']:.4f}) "
                  f"{r['ram_mb_per_million']:10d} {r['formula_mb_per_million']:13d}", file=out)  # fmt: skip
        for r in rows:
            print(f"{r['kind']} {r['n']}: search only (AnnIndex.search, ef {r['ef_search']}) p50 {r['search_p50_ms']} ms, "
                  f"p99 {r['search_p99_ms']} ms", file=out)  # fmt: skip
    return dict(rows=rows)
