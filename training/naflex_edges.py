"""Does NaFlex matter? Objects near the edges of wide and tall images, NaFlex vs centre-crop.

An experiment on the demo world (``training.world``), small enough for a CPU:

1. Train a small SigLIP 2 NaFlex model (transformers ``Siglip2Model``: ViT
   image tower with patch 8 and a patch budget of 64, text tower pooled at the
   last token) with the sigmoid loss on world scenes rendered at mixed aspect
   ratios (70 % near-square, 15 % panoramas up to 3.5:1, 15 % portraits up to
   1:2.5, as ``training.pretrain`` renders them), fed at their own aspect ratio.
2. Evaluate on held-out single-object scenes whose object hugs an edge of a
   wide (96 x 288) or tall (288 x 96) image: left/right edges for the wide ones,
   top/bottom for the tall ones (``world`` layout "edges", transposed for tall).
3. The same model and weights are given each test image three ways: NaFlex (the
   whole image at its own aspect ratio), centre-crop (the central square, as
   open_clip's ``shortest`` preprocessing), and squash (the whole image
   stretched to a square). For each colour query ("a red object", ...) the
   images are ranked; we report mean average precision and recall@10 over the
   eight colour queries, and zero-shot colour accuracy (the right colour query
   scores highest among the eight).

The model is trained on NaFlex inputs only, which include near-square images,
so centre-cropped and squashed squares are inside its training distribution.

    python -m training.naflex_edges --steps 300 --out edges.json
    python -m training.naflex_edges --demo-only      # step 3 with the bundled demo model only
    python -m training.naflex_edges --compare resources/demo resources/demo-naflex --out edges.json

Measured here (shared 2-core CPU): two small NaFlex models trained from scratch
this way (width 64, 3 layers, budgets 64 and 16, 300 and 700 steps, 16 and 14 CPU
minutes) did not learn colours (zero-shot colour accuracy 0.12-0.21; chance 0.125).
An overfit check on 64 fixed pairs (width 64, 2 layers, 120 steps) fitted neither
with the SigLIP bias starting at -10 (with scale 10 every logit starts at or below 0,
and AdamW moves the bias about lr per step: -9.82 after 120 steps) nor at -2; the
image input path itself (patches, mask, positions) trains well under distillation
(``training.naflex_demo``): this points at optimisation (two towers from scratch in a
few hundred steps) rather than at a bug in the NaFlex input path.

The evidence therefore uses ``training.naflex_demo``'s model (a NaFlex tower
distilled into the demo's space, the demo's frozen text tower) and ``--compare``,
which runs the test through the engine's indexing and search (200 scenes per
shape, colour of the edge object, mAP):

    ==================  =========  ===========  ======  ==========
    model, shape        native     centre-crop  squash  base rate
    ==================  =========  ===========  ======  ==========
    NaFlex demo, 3:1    1.000      0.154        0.995   0.125
    NaFlex demo, 1:3    0.998      0.136        0.999   0.125
    NaFlex demo, 5:1    0.988      0.154        0.971   0.125
    NaFlex demo, 1:5    0.996      0.135        0.980   0.125
    demo (squash), 5:1  0.949      0.140        =native 0.125
    demo (squash), 1:5  0.956      0.141        =native 0.125
    ==================  =========  ===========  ======  ==========
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from engine import naflex
from engine.registry import Preprocess, TokenizerSpec

from . import world
from .pretrain import _render_size

PATCH, BUDGET, BASE = 8, 64, 8  # defaults; main() may change the budget (and base grid)
PRE = Preprocess(
    size=(PATCH, PATCH),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    interpolation="bilinear",
    resize_mode="naflex",
    patch_size=PATCH,
    max_patches=BUDGET,
)


def build(vocab: int, width: int = 128, layers: int = 4, seed: int = 0):
    import torch
    from transformers import Siglip2Config, Siglip2Model

    common = dict(
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=4,
    )
    cfg = Siglip2Config(
        text_config=dict(
            common,
            num_hidden_layers=2,
            vocab_size=vocab,
            max_position_embeddings=64,
            pad_token_id=0,
        ),
        vision_config=dict(common, patch_size=PATCH, num_patches=BASE * BASE),
    )
    torch.manual_seed(seed)
    model = Siglip2Model(cfg)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)  # SigLIP's initial bias: most pairs are negatives
    return model


def _as_inputs(items, torch):
    b = naflex.collate(items, BASE)
    return dict(
        pixel_values=torch.from_numpy(b.patches),
        pixel_attention_mask=torch.from_numpy(b.mask),
        spatial_shapes=torch.from_numpy(b.spatial_shapes),
    )


def render_train(n: int, seed: int) -> tuple[list[world.Scene], list[naflex.NaflexImage]]:
    scenes = world.scenes("train", n, seed=seed)
    items = []
    for k, sc in enumerate(scenes):
        size = _render_size(np.random.default_rng([seed, 99, k]), (64, 112))
        it = naflex.preprocess(world.render(sc, size), PRE)
        items.append(replace(it, patches=it.patches.astype(np.float16)))
    return scenes, items


def train(model, tokenize, scenes, items, *, steps: int, batch: int, lr: float, seed: int, log):
    import torch
    import torch.nn.functional as F

    arr = world.scene_array(scenes)
    rng = np.random.default_rng([seed, 1])
    caption_rng = np.random.default_rng([seed, 2])
    opt = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05
    )
    model.train()
    t0 = time.time()
    for step in range(steps):
        idx = rng.choice(len(scenes), batch, replace=False)
        sc = [scenes[i] for i in idx]
        caps = [world.sample_caption(s, caption_rng) for s in sc]
        positives = torch.from_numpy(world.match_matrix(sc, [c.meaning for c in caps], arr[idx]))
        inp = _as_inputs(
            [replace(items[i], patches=items[i].patches.astype(np.float32)) for i in idx], torch
        )
        tokens = torch.from_numpy(tokenize([c.text for c in caps]))
        warm = min(1.0, (step + 1) / 30)
        for g in opt.param_groups:
            g["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))
        img = F.normalize(model.get_image_features(**inp).pooler_output, dim=-1)
        txt = F.normalize(model.get_text_features(input_ids=tokens).pooler_output, dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T + model.logit_bias
        labels = positives.float() * 2 - 1
        loss = -F.logsigmoid(labels * logits).sum() / len(idx)  # SigLIP's sigmoid loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            log(f"  step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    model.eval()
    return time.time() - t0


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


def evaluate(model, tokenize, n: int = 240, seed: int = 0) -> dict:
    import torch

    queries = [q for q in world.attribute_queries() if q.kind == "colour"]
    with torch.no_grad():
        txt = model.get_text_features(
            input_ids=torch.from_numpy(tokenize([q.text for q in queries]))
        )
        txt = torch.nn.functional.normalize(txt.pooler_output, dim=-1).numpy()
    out = {}
    for name, size, tall in (("wide 1:3", (96, 288), False), ("tall 3:1", (288, 96), True)):
        scenes = edge_scenes(n, seed, tall)
        truth = np.array(
            [[s.objects[0].colour == q.text.split()[1] for s in scenes] for q in queries]
        )
        images = [world.render(s, size) for s in scenes]
        row = {}
        for mode, fn in (
            ("naflex", lambda im: im),
            ("centre-crop", centre_crop),
            ("squash", squash),
        ):
            items = [naflex.preprocess(fn(im), PRE) for im in images]
            vecs = []
            with torch.no_grad():
                for s in range(0, len(items), 64):
                    v = model.get_image_features(
                        **_as_inputs(items[s : s + 64], torch)
                    ).pooler_output
                    vecs.append(torch.nn.functional.normalize(v, dim=-1).numpy())
            img = np.concatenate(vecs)
            sims = txt @ img.T  # [queries, images]
            aps = [_ap(sims[q], truth[q]) for q in range(len(queries))]
            r10 = [
                truth[q][np.argsort(-sims[q])[:10]].sum() / max(1, min(10, truth[q].sum()))
                for q in range(len(queries))
            ]
            zs = (sims.argmax(0) == truth.argmax(0)).mean()
            row[mode] = {
                "mAP": round(float(np.nanmean(aps)), 3),
                "recall@10": round(float(np.mean(r10)), 3),
                "zero_shot_colour_acc": round(float(zs), 3),
                "grid": f"{items[0].rows}x{items[0].cols}",
            }
        row["chance_colour_acc"] = round(1 / len(queries), 3)
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=BUDGET, help="NaFlex patch budget")
    ap.add_argument("--context", type=int, default=64, help="text context length")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--demo-only", action="store_true", help="only the demo-model crop test")
    ap.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        metavar="FOLDER",
        help="model folders to compare through the engine's search path (no training)",
    )
    ap.add_argument("--n", type=int, default=200, help="edge scenes per shape for --compare")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(args.compare, n=args.n, seed=args.seed, out=args.out)
    import torch

    from engine.registry import resources_dir
    from engine.tokenizer import Tokenizer

    global PRE, BASE
    BASE = math.isqrt(args.budget)
    PRE = replace(PRE, max_patches=args.budget)
    torch.set_num_threads(args.threads)
    if args.demo_only:
        res = {"demo_model": evaluate_demo(seed=args.seed)}
        print(json.dumps(res, indent=1))
        if args.out:
            args.out.write_text(json.dumps(res, indent=1) + "\n")
        return 0
    tok_path = resources_dir() / "demo" / "tokenizer.json"
    tok = Tokenizer.from_file(tok_path, TokenizerSpec(kind="hf", context_length=args.context))
    vocab = tok._tok.get_vocab_size()
    log = lambda s: print(s, flush=True)  # noqa: E731
    t = time.time()
    scenes, items = render_train(args.n_train, args.seed)
    log(f"rendered {len(items)} training scenes in {time.time() - t:.0f} s")
    model = build(vocab, width=args.width, layers=args.layers, seed=args.seed)
    train_s = train(model, tok.encode, scenes, items, steps=args.steps, batch=args.batch,
                    lr=args.lr, seed=args.seed, log=log)  # fmt: skip
    res = {
        "setup": {
            k: getattr(args, k)
            for k in ("steps", "batch", "n_train", "lr", "seed", "width", "layers")
        },
        "train_s": round(train_s, 1),
        "edges": evaluate(model, tok.encode, seed=args.seed),
        "demo_model": evaluate_demo(seed=args.seed),
    }
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
    from engine.hub import local_model_folder
    from engine.registry import Registry
    from engine.runtime import OnnxModel
    from engine.settings import Settings

    spec = Registry.load().get("photosift-demo")
    m = OnnxModel(
        local_model_folder(spec, Settings(data_dir=Path("/nonexistent"))), prefer_cpu=True
    )
    queries = [q for q in world.attribute_queries() if q.kind == "colour"]
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
    qs = [q for q in world.attribute_queries() if q.kind in ("colour", "shape")]
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
    from engine.registry import MODEL_FILE, load_spec
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
