"""int8 against fp32: speed-up and cosine of the image tower, for several quantiser settings.

The figure the product promises is the first row (``engine.models.quantize``'s defaults); the
other rows show what each setting buys, so the choice is measured, not assumed:

* 8-bit weights: what the product did before. On x86 CPUs without VNNI onnxruntime's
  u8 x s8 kernel saturates int16 pair sums (see :mod:`engine.models.quantize`), so its cosine
  depends on the CPU the benchmark runs on.
* per-tensor weight scales, uint8 weights (u8u8 kernels), and the final projection
  quantised too.

Speed: for each round the fp32 graph runs, then every variant, on the same batches;
the speed-up is the median over rounds of variant/fp32 images per second, so load
from other processes hits both sides of a ratio alike; beside it the ratio of the best
rounds (each side's least disturbed run) and the ratio of CPU seconds per image.
``--threads 1`` measures per core, the figure that a shared machine distorts least. Cosine:
per-photo cosine between the int8 and fp32 embeddings of real photos.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..models.cpu import describe as cpu_flags
from ..models.quantize import cosine_to_fp32, quantize_int8, run_graph

VARIANTS = {
    "default (7-bit weights, per-channel)": {},
    "8-bit weights, per-channel": dict(reduce_range=False),
    "7-bit weights, per-tensor": dict(per_channel=False),
    "uint8 weights (u8u8)": dict(weight_type="uint8", reduce_range=False),
    "default + projection quantised": dict(exclude_last_matmul=False),
}


def _session(path: Path, threads: int | None = None):
    """A CPU session configured as engine.models.runtime configures the product's."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def _speed(sess, pixels: np.ndarray, batch: int) -> tuple[float, float]:
    """(images per second, CPU seconds per image) over `pixels` in batches."""
    name = sess.get_inputs()[0].name
    c, t = time.process_time(), time.perf_counter()
    for s in range(0, len(pixels), batch):
        sess.run(None, {name: pixels[s : s + batch]})
    return len(pixels) / (time.perf_counter() - t), (time.process_time() - c) / len(pixels)


def measure(
    fp32: Path,
    pixels: np.ndarray,
    *,
    variants: dict[str, dict] = VARIANTS,
    rounds: int = 3,
    timed: int = 32,
    batch: int = 16,
    threads: int | None = None,
    log=print,
) -> list[dict]:
    """Quantise `fp32` once per variant and measure each against it on `pixels`."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as tmp:
        paths = {}
        for name, options in variants.items():
            t = time.perf_counter()
            paths[name] = quantize_int8(fp32, Path(tmp) / f"v{len(paths)}.onnx", **options)
            cos = cosine_to_fp32(fp32, paths[name], pixels)
            rows.append(dict(setting=name, options=options, cosine_min=round(float(cos.min()), 5),
                             cosine_mean=round(float(cos.mean()), 5), quantise_s=round(time.perf_counter() - t, 1)))  # fmt: skip
            log(f"  {name}: cosine to fp32 min {cos.min():.5f} mean {cos.mean():.5f}")
        sessions = {name: _session(p, threads) for name, p in paths.items()}
        base = _session(fp32, threads)
        x = pixels[:timed]
        for s in (base, *sessions.values()):
            _speed(s, x[:batch], batch)  # warm-up: the first runs allocate
        wall = {n: [] for n in sessions}
        cpu = {n: [] for n in sessions}
        best = {n: 0.0 for n in sessions}
        fp32_speed = []
        for r in range(rounds):
            f = _speed(base, x, batch)
            fp32_speed.append(f[0])
            for n, s in sessions.items():
                q = _speed(s, x, batch)
                wall[n].append(q[0] / f[0])
                cpu[n].append(f[1] / max(q[1], 1e-9))
                best[n] = max(best[n], q[0])
            log(f"  round {r + 1}: fp32 {f[0]:.2f} img/s; speed-up " + ", ".join(
                f"{n.split(' (')[0]} x{wall[n][-1]:.2f}" for n in sessions))  # fmt: skip
        for row in rows:
            n = row["setting"]
            # Best of rounds on each side: the run least disturbed by other processes.
            row.update(speedup=round(float(np.median(wall[n])), 3),
                       speedup_cpu=round(float(np.median(cpu[n])), 3),
                       speedup_best=round(best[n] / max(fp32_speed), 3),
                       speedups=[round(v, 3) for v in wall[n]])  # fmt: skip
        rows[0]["fp32_img_s"] = round(float(np.median(fp32_speed)), 2)
    return rows


def rankings(model, fp32: Path, int8: Path, pixels: np.ndarray, k: int = 10) -> dict:
    """Whether int8 ranks photos as fp32 does: per-photo cosine, and the overlap of the top-k
    for each photo as a query by example (the others as the library) and for text queries
    through the model's own text tower, int8's library against fp32's."""
    from ..models.runtime import l2_normalize

    a = l2_normalize(run_graph(fp32, pixels))
    b = l2_normalize(run_graph(int8, pixels))
    cos = (a * b).sum(1)

    def top(lib: np.ndarray, q: np.ndarray, skip_self: bool) -> list[set[int]]:
        s = q @ lib.T
        if skip_self:
            np.fill_diagonal(s, -np.inf)
        return [set(np.argsort(-row)[:k]) for row in s]

    overlap_img = [len(x & y) / k for x, y in zip(top(a, a, True), top(b, b, True), strict=True)]
    texts = [f"a photo of {w}" for w in ("a dog", "a cat", "the sea", "a city at night", "food",
             "a mountain", "people", "a car", "flowers", "a building", "snow", "a child",
             "a bird", "a street", "a forest", "a beach", "a document", "a sunset", "a bridge", "a boat")]  # fmt: skip
    q = model.encode_texts(texts)
    overlap_txt = [len(x & y) / k for x, y in zip(top(a, q, False), top(b, q, False), strict=True)]
    return dict(photos=len(pixels), cosine_min=round(float(cos.min()), 5), cosine_mean=round(float(cos.mean()), 5),
                top10_overlap_by_example=round(float(np.mean(overlap_img)), 4),
                top10_overlap_by_text=round(float(np.mean(overlap_txt)), 4),
                top10_overlap_min=round(float(min(overlap_img + overlap_txt)), 2))  # fmt: skip


def run(args, out=None) -> dict:
    from .common import bench_log, bench_model, photos_folder
    from .pipeline import _photos, _predecode

    log = bench_log(out)
    photos = photos_folder(args)
    if getattr(args, "model_folder", None):
        from ..models.runtime import OnnxModel

        model = OnnxModel(Path(args.model_folder), lazy=True)
    else:
        model = bench_model("vit-b-32-256-datacomp", log=log)
    everything, _ = _predecode(model, _photos(photos))
    pixels = everything[: 16 if args.quick else 64]
    fp32 = model.folder / model.parts.image.file
    log(f"int8 bench: {model.spec.architecture}, {len(pixels)} photos, CPU flags: {cpu_flags()}")
    threads = getattr(args, "threads", None)
    rows = measure(fp32, pixels, rounds=2 if args.quick else 4, timed=16 if args.quick else 32,
                   threads=threads, log=log)  # fmt: skip
    # The default's rankings over every photo: the bar for running it by default (engine.models.cpu).
    with tempfile.TemporaryDirectory(prefix="int8-rank-") as tmp:
        ranked = rankings(model, fp32, quantize_int8(fp32, Path(tmp) / "int8.onnx"), everything)
    log(f"  default over {ranked['photos']} photos: cosine min {ranked['cosine_min']:.5f}; top-10 overlap "
        f"by example {ranked['top10_overlap_by_example']:.3f}, by text {ranked['top10_overlap_by_text']:.3f} "
        f"(bar: cosine >= 0.999, overlap >= 0.95)")  # fmt: skip
    if out:
        print(f"\nfp32 {rows[0]['fp32_img_s']} img/s (median of rounds), {threads or 'all'} threads; "
              "target: speed-up >= 1.8 with worst cosine >= 0.99", file=out)  # fmt: skip
        print(f"{'setting':40s} {'speed-up':>8s} {'best':>5s} {'by CPU':>7s} {'cos min':>8s} {'cos mean':>8s}",
              file=out)  # fmt: skip
        for r in rows:
            print(f"{r['setting']:40s} {r['speedup']:8.2f} {r['speedup_best']:5.2f} {r['speedup_cpu']:7.2f} "
                  f"{r['cosine_min']:8.5f} {r['cosine_mean']:8.5f}", file=out)  # fmt: skip
    return dict(
        architecture=model.spec.architecture, cpu_flags=cpu_flags(), threads=threads, rows=rows,
        rankings=ranked,
    )
