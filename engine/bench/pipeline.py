"""Indexing throughput: the whole pipeline against the model alone, and int8 against fp32.

All in one run on the same photos and the same batches, so the ratios hold
even on a shared, noisy machine:

* model-only: pre-decoded, pre-processed tensors through the image encoder;
* pipeline: the real indexer (read, hash, decode with draft mode, preprocess,
  encode, commit to SQLite, add to the ANN) into a fresh library;
* int8: the dynamically quantised image tower, model-only, plus its cosine
  to fp32 on the same photos.

Model-only and pipeline runs are interleaved and the best of each is kept, so
a burst of load from another process does not decide the ratio.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..ann import AnnIndex
from ..db import LibraryDB
from ..decode import decode_photo
from ..errors import DecodeError
from ..indexer import Indexer
from ..scan import FileTask, photo_extensions, walk_photos


def _photos(folder: Path) -> list[str]:
    return sorted(p for p, _ in walk_photos(os.fspath(folder), photo_extensions()))


def _predecode(model, paths: list[str]) -> np.ndarray:
    arrays = []
    for p in paths:
        try:
            arrays.append(model.preprocess(decode_photo(p, target=model.input_size).image))
        except DecodeError:
            continue
    return np.stack(arrays)


def model_only(model, pixels: np.ndarray, batch: int) -> float:
    t = time.perf_counter()
    for s in range(0, len(pixels), batch):
        model.encode_images(pixels[s : s + batch])
    return len(pixels) / (time.perf_counter() - t)


def pipeline(model, paths: list[str], batch: int, workers: int | None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        db = LibraryDB(Path(d) / "lib.db")
        fid = db.add_folder(os.path.dirname(paths[0]))
        sid = db.space_id(model.spec.space, model.spec.embed_dim)
        ann = AnnIndex(model.spec.embed_dim)
        tasks = []
        for p in paths:
            st = os.stat(p)
            tasks.append(FileTask(p, fid, st.st_size, st.st_mtime_ns))
        rep = Indexer(db, model, sid, ann, batch_size=batch, workers=workers).run(tasks)
        db.close()
        return rep.embedded / rep.elapsed_s, rep.embedded


def run(args, out=None) -> dict:
    from .common import bench_model, default_photos

    log = (lambda s: print(s, file=out, flush=True)) if out else (lambda s: None)
    folder = Path(args.photos) if args.photos else default_photos()
    paths = _photos(folder)
    if args.quick:
        paths = paths[:32]
    batch = 16
    model = bench_model("vit-b-32-256-datacomp", log=log, text=False)
    log(f"pipeline bench: {len(paths)} photos from {folder}, {model.spec.architecture}, batch {batch}")
    pixels = _predecode(model, paths)
    model_only(model, pixels[:batch], batch)  # warm-up: first runs allocate
    best_model, best_pipe, embedded = 0.0, 0.0, 0
    for r in range(2):
        m = model_only(model, pixels, batch)
        pr, embedded = pipeline(model, paths, batch, None)
        best_model, best_pipe = max(best_model, m), max(best_pipe, pr)
        log(f"  round {r + 1}: model-only {m:.1f} img/s, pipeline {pr:.1f} img/s")
    res = dict(
        photos=len(paths), embedded=embedded, model_only_img_s=round(best_model, 2),
        pipeline_img_s=round(best_pipe, 2), ratio=round(best_pipe / best_model, 3),
    )  # fmt: skip
    int8 = bench_model("vit-b-32-256-datacomp", log=log, text=False, int8=True)
    if int8 is not None:
        n = min(len(pixels), 64)
        fp = model.encode_images(pixels[:n])
        q = int8.encode_images(pixels[:n])
        cos = (fp * q).sum(axis=1)
        model_only(int8, pixels[:batch], batch)
        speeds = []
        for _ in range(2):
            speeds.append((model_only(model, pixels, batch), model_only(int8, pixels, batch)))
        fp_s, q_s = max(s[0] for s in speeds), max(s[1] for s in speeds)
        res.update(fp32_img_s=round(fp_s, 2), int8_img_s=round(q_s, 2), int8_speedup=round(q_s / fp_s, 3),
                   int8_cosine_min=round(float(cos.min()), 5), int8_cosine_mean=round(float(cos.mean()), 5))  # fmt: skip
    if out:
        print(f"\nwhole pipeline {res['pipeline_img_s']} img/s vs model-only {res['model_only_img_s']} img/s "
              f"-> ratio {res['ratio']} (target >= 0.9)", file=out)  # fmt: skip
        if "int8_speedup" in res:
            print(f"int8 {res['int8_img_s']} img/s vs fp32 {res['fp32_img_s']} img/s -> {res['int8_speedup']}x, "
                  f"cosine to fp32 min {res['int8_cosine_min']} mean {res['int8_cosine_mean']}", file=out)  # fmt: skip
    return res
