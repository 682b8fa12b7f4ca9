"""Does NaFlex matter? Objects near the edges of wide and tall images, NaFlex vs centre-crop.

Held-out single-object scenes of the demo world (``training.demo.world``) whose object hugs
an edge of a wide or tall picture (left/right for wide ones, top/bottom for tall ones).
The same model and weights see each picture three ways: native (NaFlex: the whole
picture at its own aspect ratio), centre-crop (the central square, as open_clip's
``shortest`` preprocessing) and squash (stretched to a square). Colour and shape queries
about the edge object are ranked through a real photosift library (``evaluate_folder``).

    python -m training.demo.naflex_edges --compare resources/demo resources/demo-naflex --out edges.json
    python -m training.demo.naflex_edges     # the bundled demo model alone, whole vs centre-crop

A first attempt trained a small SigLIP 2 NaFlex model from scratch here (both towers,
sigmoid loss; removed since, it is in the git history). Measured here (shared 2-core
CPU): two such models (width 64, 3 layers, budgets 64 and 16, 300 and 700 steps, 16 and 14 CPU
minutes) did not learn colours (zero-shot colour accuracy 0.12-0.21; chance 0.125).
An overfit check on 64 fixed pairs (width 64, 2 layers, 120 steps) fitted neither
with the SigLIP bias starting at -10 (with scale 10 every logit starts at or below 0,
and AdamW moves the bias about lr per step: -9.82 after 120 steps) nor at -2; the
image input path itself (patches, mask, positions) trains well under distillation
(``training.demo.naflex``): this points at optimisation (two towers from scratch in a
few hundred steps) rather than at a bug in the NaFlex input path.

The evidence therefore uses ``training.demo.naflex``'s model (a NaFlex tower
distilled into the demo's space, the demo's frozen text tower) and ``--compare``,
which runs the test through the engine's indexing and search (200 scenes per
shape, colour of the edge object, mAP):

    ==================  =========  ===========  ======  ==========
    model, shape        native     centre-crop  squash  base rate
    ==================  =========  ===========  ======  ==========
    NaFlex demo, 3:1    0.996      0.144        0.997   0.125
    NaFlex demo, 1:3    0.999      0.134        1.000   0.125
    NaFlex demo, 5:1    0.991      0.150        0.985   0.125
    NaFlex demo, 1:5    0.992      0.131        0.996   0.125
    demo (squash), 5:1  0.928      0.158        =native 0.125
    demo (squash), 1:5  0.984      0.146        =native 0.125
    ==================  =========  ===========  ======  ==========

Shapes of edge objects are another matter: the distilled NaFlex tower finds them at mAP
0.24-0.29 (base rate 0.16) in every mode, where the demo's own CNN gets 0.84 / 0.74 /
0.56 / 0.35 (3:1, 1:3, 5:1, 1:5, squashed); 1,200 distillation steps taught it colours
far better than shapes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from . import captions, world


def edge_scenes(n: int, seed: int, tall: bool) -> list[world.Scene]:
    """Single objects hugging the left/right edge (wide) or, transposed, the top/bottom (tall)."""
    out = []
    for i in range(n):
        sc = world.sample_scene(world.scene_rng(i, "test", seed + (11 if tall else 7)), "test",
                                layout="edges", n_objects=1)  # fmt: skip
        if tall:
            sc = replace(sc, objects=tuple(replace(o, x=o.y, y=o.x) for o in sc.objects))
        out.append(sc)
    return out


def centre_crop(img: Image.Image) -> Image.Image:
    s = min(img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    return img.crop((left, top, left + s, top + s))


def squash(img: Image.Image) -> Image.Image:
    s = min(img.size)
    return img.resize((s, s), Image.Resampling.BICUBIC)


def _ap(scores: np.ndarray, truth: np.ndarray) -> float:
    order = np.argsort(-scores)
    hits = truth[order]
    if not hits.any():
        return float("nan")
    prec = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((prec * hits).sum() / hits.sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the results here as JSON")
    ap.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        metavar="FOLDER",
        help="model folders to compare through the engine's search path",
    )
    ap.add_argument("--n", type=int, default=200, help="edge scenes per shape for --compare")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(args.compare, n=args.n, seed=args.seed, out=args.out)
    # Without --compare: the bundled demo model alone, whole picture against centre crop.
    res = {"demo_model": evaluate_demo(seed=args.seed)}
    print(json.dumps(res, indent=1))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


def evaluate_demo(n: int = 240, seed: int = 0) -> dict:
    """The same edge test with the bundled demo model (trained; fixed 96 x 96 input), fed
    the whole image (its own squash preprocessing) or the central square (centre-crop).

    The demo model cannot take NaFlex input (its attention pooling has a fixed 3 x 3
    grid), so this isolates what a centre crop loses, on a model that knows colours.
    """
    from engine.models.hub import local_model_folder
    from engine.models.registry import Registry
    from engine.models.runtime import OnnxModel
    from engine.settings import Settings

    spec = Registry.load().get("photosift-demo")
    m = OnnxModel(
        local_model_folder(spec, Settings(data_dir=Path("/nonexistent"))), prefer_cpu=True
    )
    queries = [q for q in captions.attribute_queries() if q.kind == "colour"]
    txt = m.encode_texts([q.text for q in queries])
    out = {}
    for name, size, tall in (("wide 1:3", (96, 288), False), ("tall 3:1", (288, 96), True)):
        scenes = edge_scenes(n, seed, tall)
        truth = np.array(
            [[s.objects[0].colour == q.text.split()[1] for s in scenes] for q in queries]
        )
        images = [world.render(s, size) for s in scenes]
        row = {}
        for mode, fn in (("whole (squash)", lambda im: im), ("centre-crop", centre_crop)):
            img = m.encode_images(np.stack([m.preprocess(fn(im)) for im in images]))
            sims = txt @ img.T
            aps = [_ap(sims[q], truth[q]) for q in range(len(queries))]
            r10 = [
                truth[q][np.argsort(-sims[q])[:10]].sum() / max(1, min(10, truth[q].sum()))
                for q in range(len(queries))
            ]
            row[mode] = {
                "mAP": round(float(np.nanmean(aps)), 3),
                "recall@10": round(float(np.mean(r10)), 3),
                "zero_shot_colour_acc": round(float((sims.argmax(0) == truth.argmax(0)).mean()), 3),
            }
        row["chance_colour_acc"] = round(1 / len(queries), 3)
        out[name] = row
    return out


# --- the same test through the product: index the pictures, search them -----------------------

#: (name, (height, width), tall): the edge object sits at the ends of the long side.
EDGE_SHAPES = (
    ("wide 3:1", (96, 288), False),
    ("tall 1:3", (288, 96), True),
    ("wide 5:1", (96, 480), False),
    ("tall 1:5", (480, 96), True),
)
MODES = {"native": lambda im: im, "centre-crop": centre_crop, "squash": squash}


def edge_queries() -> list[tuple[str, str, str]]:
    """(kind, text, value) of the queries about the edge object: its colour and its shape."""
    qs = [q for q in captions.attribute_queries() if q.kind in ("colour", "shape")]
    return [(q.kind, q.text, q.meaning.clauses[0].attrs[0][1]) for q in qs]


def _metrics(ranked: list[list[int]], truth: np.ndarray) -> dict:
    """p@10 and mAP over queries; ``ranked[q]`` is the full ranking (image indices) for query q."""
    p10, aps = [], []
    for q, order in enumerate(ranked):
        hits = truth[q][np.asarray(order)]
        if not hits.any():
            continue
        p10.append(hits[:10].mean())
        prec = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float((prec * hits).sum() / hits.sum()))
    return {"p@10": round(float(np.mean(p10)), 3), "mAP": round(float(np.mean(aps)), 3)}


def evaluate_folder(folder: Path, *, n: int = 200, seed: int = 0, shapes=EDGE_SHAPES,
                    modes=tuple(MODES), workdir: Path | None = None) -> dict:  # fmt: skip
    """Edge-object retrieval with one model folder, through the engine's product path.

    For each shape, ``n`` single-object edge scenes are written as PNG files in one
    folder per preprocessing mode (``native``: the picture as it is; ``centre-crop``:
    its central square; ``squash``: stretched to a square). One photosift library
    indexes all of them with the model (``engine.library.Library``: decode,
    the model's own preprocessing, ONNX Runtime, SQLite, ANN) and every query is a
    ``Library.search`` restricted to one folder, asking for all ``n`` photos so
    the full ranking gives average precision. A NaFlex model sees ``native`` at
    its own aspect ratio; a squash model (the demo) squashes it, so for the demo
    ``native`` and ``squash`` are the same picture.

    Returns ``{shape: {mode: {"colour": {"p@10", "mAP"}, "shape": {...}}}}`` plus
    the base rates (the share of photos a query is true of).
    """
    import tempfile

    from engine.library import Library
    from engine.models.registry import MODEL_FILE, load_spec
    from engine.search import Filters, Query
    from engine.settings import Settings

    folder = Path(folder)
    key = load_spec(folder / MODEL_FILE).key
    queries = edge_queries()
    with tempfile.TemporaryDirectory(prefix="photosift-edges-", dir=workdir) as tmp:
        root = Path(tmp)
        shutil.copytree(folder, root / "data" / "models" / key)
        plan = []
        for name, size, tall in shapes:
            scenes = edge_scenes(n, seed, tall)
            images = [world.render(s, size) for s in scenes]
            for mode in modes:
                d = root / "photos" / name.replace(" ", "-").replace(":", "x") / mode
                d.mkdir(parents=True)
                for i, im in enumerate(images):
                    MODES[mode](im).save(d / f"{i:04d}.png")
                plan.append((name, mode, d, scenes))
        lib = Library(Settings(data_dir=root / "data", workers=1), model_key=key)
        try:
            for *_, d, _ in plan:
                lib.add_folder(d)
            rep = lib.scan()
            if rep.failed:
                raise RuntimeError(f"indexing the edge scenes failed: {rep.failures[:3]}")
            out: dict = {"model": key, "n_per_shape": n}
            for name, mode, d, scenes in plan:
                obj = [s.objects[0] for s in scenes]
                truth = np.array([[o.attr("colour" if k == "colour" else "kind") == v for o in obj]
                                  for k, _, v in queries])  # fmt: skip
                ranked = []
                for _, text, _ in queries:
                    hits = lib.search(Query(text=text, k=n, filters=Filters(folders=[str(d)])))
                    ranked.append([int(Path(h.path).stem) for h in hits])
                if any(len(r) != n for r in ranked):
                    raise RuntimeError(f"{name}/{mode}: search did not rank all {n} photos")
                row = out.setdefault(name, {})
                row[mode] = {
                    kind: _metrics([r for r, q in zip(ranked, queries, strict=True) if q[0] == kind],
                                   truth[[q[0] == kind for q in queries]])
                    for kind in ("colour", "shape")
                }  # fmt: skip
                row["base_rate"] = {
                    kind: round(float(truth[[q[0] == kind for q in queries]].mean()), 3)
                    for kind in ("colour", "shape")
                }
        finally:
            lib.close()
    return out


def table(results: dict[str, dict], kind: str = "colour") -> str:
    """A markdown table: one row per (model, shape), p@10 / mAP per mode."""
    lines = [
        f"| model | shape | {' | '.join(MODES)} | base rate |",
        "|---" * (len(MODES) + 3) + "|",
    ]
    for label, res in results.items():
        for name, row in res.items():
            if not isinstance(row, dict) or "base_rate" not in row:
                continue
            cells = [f"{row[m][kind]['p@10']:.3f} / {row[m][kind]['mAP']:.3f}" if m in row else "-"
                     for m in MODES]  # fmt: skip
            lines.append(
                f"| {label} | {name} | {' | '.join(cells)} | {row['base_rate'][kind]:.3f} |"
            )
    return "\n".join(lines)


def compare(folders: list[Path], *, n: int, seed: int, out: Path | None = None) -> int:
    """Side-by-side edge-object retrieval of model folders through the engine (``--compare``)."""
    results = {}
    for f in folders:
        res = evaluate_folder(f, n=n, seed=seed)
        results[res["model"]] = res
    for kind in ("colour", "shape"):
        print(f"\n{kind} queries about the edge object, p@10 / mAP ({n} scenes per shape)\n")
        print(table(results, kind))
    if out:
        out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
