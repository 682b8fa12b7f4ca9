"""Query latency: text encode + ANN search at 100k and 1M stored vectors.

The index part uses synthetic vectors (random directions with some cluster
structure, like real embeddings); the text encoder is a real ViT-B-32-256
text tower when a model folder is given (random weights are fine for timing).
Reports p50/p99, recall@10 of HNSW against exact search, and resident memory
per million vectors.
"""

from __future__ import annotations

import gc
import resource
import time

import numpy as np

from ..ann import AnnIndex


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; falls back to peak RSS)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def synthetic(n: int, dim: int, seed: int = 0, clusters: int = 1000) -> np.ndarray:
    """Unit vectors around `clusters` centres: closer to real embeddings than pure noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        idx = rng.integers(0, clusters, e - s)
        out[s:e] = centres[idx] + 0.8 * rng.standard_normal((e - s, dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def measure(n: int, dim: int, queries: int = 200, text_model=None, log=print) -> dict:
    vecs = synthetic(n, dim)
    ids = np.arange(1, n + 1, dtype=np.int64)
    gc.collect()
    before = _rss_mb()
    t0 = time.perf_counter()
    ann = AnnIndex(dim, exact_threshold=0)
    for s in range(0, n, 50_000):
        ann.add(ids[s : s + 50_000], vecs[s : s + 50_000])
        log(f"  building {min(n, s + 50_000)}/{n} ({time.perf_counter() - t0:.0f} s)")
    build_s = time.perf_counter() - t0
    ram_mb = _rss_mb() - before
    rng = np.random.default_rng(1)
    qv = synthetic(queries, dim, seed=2)
    texts = [f"photo number {i} of a {w}" for i, w in enumerate(rng.choice(["cat", "dog", "beach", "car"], queries))]
    lat, hits = [], 0
    for i in range(queries):
        t = time.perf_counter()
        if text_model is not None:
            text_model._text_cache.clear()  # measure the encoder, not the cache
            text_model.encode_texts([texts[i]])
        got = ann.search(qv[i], 10)
        lat.append(time.perf_counter() - t)
        truth = ids[np.argpartition(-(vecs @ qv[i]), 10)[:10]]
        hits += len(set(truth.tolist()) & {g for g, _ in got})
    lat_ms = np.array(lat) * 1e3
    return dict(
        n=n, dim=dim, build_s=round(build_s, 1), p50_ms=round(float(np.percentile(lat_ms, 50)), 2),
        p99_ms=round(float(np.percentile(lat_ms, 99)), 2), recall_at_10=round(hits / (10 * queries), 4),
        ram_mb=round(ram_mb), ram_mb_per_million=round(ram_mb * 1e6 / n), text_encoder=text_model is not None,
    )  # fmt: skip


def run(args, out=None) -> dict:
    from .common import bench_model

    log = (lambda s: print(s, file=out, flush=True)) if out else (lambda s: None)
    model = bench_model("vit-b-32-256-datacomp", log=log, image=False)
    dim = model.spec.embed_dim if model else 512
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [min(s, 20_000) for s in sizes]
    rows = []
    for n in sizes:
        log(f"query bench: {n} vectors of {dim} dims")
        rows.append(measure(n, dim, text_model=model, log=log))
        gc.collect()
    if out:
        print("\nvectors   build s  p50 ms  p99 ms  recall@10  RAM MB/1M  (text encode + HNSW search)", file=out)
        for r in rows:
            print(f"{r['n']:>9d} {r['build_s']:8.1f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
                  f"{r['recall_at_10']:10.4f} {r['ram_mb_per_million']:10d}", file=out)  # fmt: skip
    return dict(rows=rows)
