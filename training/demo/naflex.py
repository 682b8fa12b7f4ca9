"""A NaFlex variant of the demo model: a small SigLIP 2 NaFlex image tower in the demo's space.

The bundled demo model (``resources/demo``) squashes every image to 96 x 96.
This trains a NaFlex image tower (transformers ``Siglip2VisionModel``: linear
patch embedding, square position table resized per image, MAP head; the
architecture of ``google/siglip2-*-naflex``) that sees a scene at its own
aspect ratio, and puts it into the demo model's embedding space so the demo's
trained text tower (and tokenizer, logit scale and bias) serve it unchanged:

* distillation: the cosine between the student's embedding of the scene at
  its native aspect ratio and the frozen demo CNN's embedding of the same
  scene (squashed, as the demo sees it) is pulled to 1. A 128-d target per
  image is a far stronger signal than a contrastive loss from scratch;
* LiT: the sigmoid loss between the student's image embeddings and the frozen
  demo text tower's embeddings of sampled captions (the demo's scale and
  bias), so the student answers captions directly, not only the teacher.

Training scenes are rendered at mixed aspect ratios, from square to 5:1 wide
and 1:5 tall, a third of them with objects hugging the long side's ends
(``world`` layout "edges"), so objects at the edges of wide and tall images
are in the training distribution. Teacher vectors come from the demo's
exported ONNX model through the engine's runtime: the same numbers the app
computes.

The folder written is an ordinary photosift model folder: ``image.onnx`` (the
NaFlex graph of :mod:`training.export.naflex`: patches, mask, pos_weights),
the demo's ``text.onnx`` and ``tokenizer.json``, and ``model.json`` (registry
key ``photosift-demo-naflex``, file hashes, training settings and timings).

    python -m training.demo.naflex --out resources/demo-naflex \\
        --registry resources/models/demo-naflex.json

Deterministic from ``--seed`` (scenes, captions, batches, initialisation);
the weights can differ in the last bits across torch builds and thread counts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from engine.models import naflex
from engine.models.registry import MODEL_FILE, ModelSpec, Preprocess, Source, load_spec, save_spec

from . import captions, world
from .optim import adamw, warmup_cosine

KEY = "photosift-demo-naflex"
BUNDLED = "demo-naflex"
TEACHER = "demo"  # resources/demo: the trained demo model (image and text towers)
FOLDER_FILES = ("image.onnx", "text.onnx", "tokenizer.json")


@dataclass(frozen=True)
class Settings:
    """Everything that determines a run (saved in model.json)."""

    seed: int = 0
    # student (embedding width = the demo's, 128: the Siglip2 vision tower has no projection)
    width: int = 128
    layers: int = 3
    heads: int = 4
    patch_size: int = 8
    max_patches: int = 64  # base position grid 8 x 8
    # data
    n_train: int = 6000
    short_side: tuple[int, int] = (64, 112)  # rendered short side, px
    edge_share: float = 0.35  # scenes whose objects hug the ends of the long side
    # optimisation
    steps: int = 1200
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 50
    weight_decay: float = 0.05
    lit_weight: float = 1.0  # sigmoid loss against the frozen text tower (0: distillation only)
    threads: int = 2

    @classmethod
    def smoke(cls) -> Settings:
        """Tiny everything: seconds, for tests. (36 patches: no parity photo gets a grid one
        patch wide at half the budget, where torch's resize differs; see engine.models.naflex.)"""
        return cls(width=128, layers=1, heads=2, max_patches=36, n_train=64, short_side=(32, 48),
                   steps=6, batch_size=16, warmup=0, threads=1)  # fmt: skip


def preprocess(s: Settings) -> Preprocess:
    return Preprocess(
        size=(s.patch_size, s.patch_size),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bilinear",
        resize_mode="naflex",
        patch_size=s.patch_size,
        max_patches=s.max_patches,
    )


def base_grid(s: Settings) -> int:
    side = math.isqrt(s.max_patches)
    if side * side != s.max_patches:
        raise ValueError(
            f"max_patches must be a square (the base position grid), not {s.max_patches}"
        )
    return side


def teacher_folder() -> Path:
    from engine.models.registry import resources_dir

    return resources_dir() / TEACHER


# --- data ------------------------------------------------------------------------------------


def render_size(rng: np.random.Generator, short: tuple[int, int]) -> tuple[int, int]:
    """(height, width): 40 % near-square, 30 % wide up to 5:1, 30 % tall up to 1:5."""
    a = int(rng.integers(*short))
    r = rng.random()
    if r < 0.4:
        return a, int(a * rng.uniform(0.8, 1.25))
    long = int(a * rng.uniform(1.5, 5.0))
    return (a, long) if r < 0.7 else (long, a)


def training_scene(index: int, s: Settings) -> tuple[world.Scene, tuple[int, int]]:
    """Scene ``index`` of the training set and its render size. Edge scenes put their
    objects at the ends of the long side (left/right when wide, top/bottom when tall)."""
    rng = np.random.default_rng([s.seed, 41, index])
    size = render_size(rng, s.short_side)
    h, w = size
    layout = "edges" if (h != w and rng.random() < s.edge_share) else "grid"
    scene = world.sample_scene(world.scene_rng(index, "train", s.seed), "train", layout=layout)
    if layout == "edges" and h > w:
        scene = replace(scene, objects=tuple(replace(o, x=o.y, y=o.x) for o in scene.objects))
    return scene, size


def render_training_set(s: Settings, log: Callable[[str], None] = lambda m: None):
    """The scenes, their NaFlex patch sequences (float16) and the teacher's unit vectors."""
    from engine.models.runtime import OnnxModel

    teacher = OnnxModel(teacher_folder(), prefer_cpu=True, load_text=False)
    p = preprocess(s)
    scenes, items, vecs = [], [], []
    chunk: list = []
    for i in range(s.n_train):
        scene, size = training_scene(i, s)
        img = world.render(scene, size)
        it = naflex.preprocess(img, p)
        scenes.append(scene)
        items.append(replace(it, patches=it.patches.astype(np.float16)))
        chunk.append(teacher.preprocess(img))  # the demo's own squash to 96 x 96
        if len(chunk) == 256 or i == s.n_train - 1:
            vecs.append(teacher.encode_images(np.stack(chunk)))
            chunk = []
            log(f"  rendered {i + 1}/{s.n_train}")
    return scenes, items, np.concatenate(vecs).astype(np.float32)


# --- model -----------------------------------------------------------------------------------


def build_student(s: Settings):
    """A fresh transformers ``Siglip2VisionModel``, deterministic from ``s.seed``."""
    import torch
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    cfg = Siglip2VisionConfig(
        hidden_size=s.width,
        intermediate_size=4 * s.width,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        patch_size=s.patch_size,
        num_patches=s.max_patches,
    )
    torch.manual_seed(s.seed)
    return Siglip2VisionModel(cfg)


def model_inputs(items, base: int) -> dict:
    """transformers' input for a list of NaflexImage (padded to the longest)."""
    import torch

    b = naflex.collate(items, base)
    return dict(
        pixel_values=torch.from_numpy(b.patches),
        pixel_attention_mask=torch.from_numpy(b.mask),
        spatial_shapes=torch.from_numpy(b.spatial_shapes),
    )


def train(s: Settings, log: Callable[[str], None] = lambda m: None):
    """Train the student; returns ``(student, history, timings)``.

    Both losses are written out here: they are the whole idea of the model.
    """
    import torch
    import torch.nn.functional as F

    from engine.models.runtime import OnnxModel

    torch.set_num_threads(s.threads)
    t0 = time.time()
    scenes, items, teacher_vecs = render_training_set(s, log)
    render_s = time.time() - t0
    log(f"rendered {len(items)} scenes and their teacher vectors in {render_s:.0f} s")

    text = OnnxModel(teacher_folder(), prefer_cpu=True, load_image=False)
    scale, bias = float(text.spec.logit_scale), float(text.spec.logit_bias)
    arr = world.scene_array(scenes)
    base = base_grid(s)
    model = build_student(s)
    model.train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = adamw(decay, no_decay, s.lr, s.weight_decay)

    def lr_at(step: int) -> float:
        return warmup_cosine(step, s.lr, s.warmup, s.steps)

    rng = np.random.default_rng([s.seed, 1])
    caption_rng = np.random.default_rng([s.seed, 2])
    history: list[dict] = []
    t1, cpu1 = time.time(), time.process_time()  # CPU time: the machine is shared
    for step in range(s.steps):
        idx = rng.choice(len(items), s.batch_size, replace=False)
        batch = [replace(items[i], patches=items[i].patches.astype(np.float32)) for i in idx]
        target = torch.from_numpy(teacher_vecs[idx])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        emb = F.normalize(model(**model_inputs(batch, base)).pooler_output, dim=-1)
        # Distillation: the demo CNN's vector of the same scene, seen whole.
        distill = (1 - (emb * target).sum(-1)).mean()
        loss = distill
        rec = {"step": step, "distill": 0.0, "lit": 0.0}
        if s.lit_weight:
            # LiT: sigmoid loss against the frozen text tower; positives[i, j] is
            # "caption j is true of image i" (a caption often fits several scenes).
            sc = [scenes[i] for i in idx]
            caps = [captions.sample_caption(x, caption_rng) for x in sc]
            positives = world.match_matrix(sc, [c.meaning for c in caps], arr[idx])
            txt = torch.from_numpy(text.encode_texts([c.text for c in caps]))
            logits = scale * emb @ txt.T + bias
            labels = torch.from_numpy(positives).float() * 2 - 1
            lit = -F.logsigmoid(labels * logits).mean()
            loss = loss + s.lit_weight * lit
            rec["lit"] = round(lit.item(), 5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == s.steps - 1:
            rec.update(distill=round(distill.item(), 5), lr=lr_at(step),
                       elapsed_s=round(time.time() - t1, 1))  # fmt: skip
            history.append(rec)
            log(f"  step {step} distill {rec['distill']:.4f} lit {rec['lit']:.4f} "
                f"({rec['elapsed_s']:.0f} s)")  # fmt: skip
    model.eval()
    timings = {"render_s": round(render_s, 1), "train_s": round(time.time() - t1, 1),
               "train_cpu_s": round(time.process_time() - cpu1, 1)}  # fmt: skip
    return model, history, timings


# --- export ----------------------------------------------------------------------------------


def demo_naflex_spec(s: Settings, *, command: str, timings: dict) -> ModelSpec:
    """The registry entry: the demo's text side, logit scale and bias; a NaFlex image tower."""
    demo = load_spec(teacher_folder() / MODEL_FILE)
    return ModelSpec(
        key=KEY,
        name="photosift demo NaFlex (procedural shapes, native aspect ratio)",
        family="siglip",
        architecture=(
            f"SigLIP2-NaFlex ViT {s.layers}L/{s.width}w patch {s.patch_size}, "
            f"{s.max_patches} patches (transformers Siglip2VisionModel) + the demo's text tower"
        ),
        embed_dim=demo.embed_dim,
        preprocess=preprocess(s),
        tokenizer=demo.tokenizer,
        source=Source(bundled=BUNDLED),
        license="Apache-2.0",
        speed_class="fast",
        description=(
            "The demo model with a NaFlex image tower: it sees each picture at its own aspect "
            "ratio instead of squashed to a square. Distilled from the demo model's image tower "
            "and trained against its frozen text tower on the procedural world of coloured "
            "shapes; it knows nothing about real photos. For tests and the NaFlex evidence."
        ),
        logit_scale=demo.logit_scale,
        logit_bias=demo.logit_bias,
        extra={
            "training": {"command": command, "settings": _settings_dict(s), "timings": timings},
            "teacher": {
                "key": demo.key,
                "image_onnx_sha256": demo.source.files["image.onnx"]["sha256"],
            },
        },
    )


def _settings_dict(s: Settings) -> dict:
    d = asdict(s)
    d["short_side"] = list(s.short_side)
    return d


def export(model, s: Settings, out: Path, *, command: str, timings: dict,
           min_cosine: float = 0.9999) -> ModelSpec:  # fmt: skip
    """Write the model folder ``out`` (replaced whole), gated on ONNX-vs-torch parity.

    Parity: the engine's runtime (its NaFlex preprocessing, ONNX Runtime, mixed grids
    in one padded batch) against transformers' own forward on each photo, at two budgets.
    """
    import torch

    from engine.models.runtime import OnnxModel

    from ..export.naflex import IMAGE_INPUTS, NAFLEX_OPSET, _export, _image_tower, parity_photos
    from ..export.openclip import check_parity, staged_folder

    out = Path(out)
    spec = demo_naflex_spec(s, command=command, timings=timings)
    p, base = spec.preprocess, base_grid(s)
    photos = parity_photos(s.seed)
    with staged_folder(out) as tmp:
        batch = naflex.collate([naflex.preprocess(im, p) for im in photos[:2]], base)
        ex = tuple(torch.from_numpy(a) for a in (batch.patches, batch.mask, batch.pos_weights))
        dyn = {n: {0: "batch", 1: "sequence"} for n in IMAGE_INPUTS}
        _export(
            _image_tower(SimpleNamespace(vision_model=model)),
            ex,
            list(IMAGE_INPUTS),
            dyn,
            tmp / "image.onnx",
            NAFLEX_OPSET,
        )
        for name in ("text.onnx", "tokenizer.json"):
            shutil.copyfile(teacher_folder() / name, tmp / name)
        save_spec(spec, tmp / MODEL_FILE)

        report: dict = {
            "exporter": "torchscript",
            "opset": NAFLEX_OPSET,
            "reference": "transformers",
        }
        onnx = OnnxModel(tmp, prefer_cpu=True, load_text=False)
        got, want = [], []
        for budget in (s.max_patches, max(1, s.max_patches // 2)):
            seqs = [naflex.preprocess(im, p, budget) for im in photos]
            got.append(onnx.encode_images(seqs, normalize=False))
            with torch.no_grad():
                want += [model(**model_inputs([q], base)).pooler_output.numpy() for q in seqs]
        check_parity(spec, {"image": (np.concatenate(got), np.concatenate(want))}, report,
                     min_cosine, "transformers")  # fmt: skip
        del onnx
        spec = spec.with_(extra={**spec.extra, "export": report})
        save_spec(spec, tmp / MODEL_FILE)
    return finalize(out)


def finalize(out: Path, registry: Path | None = None, metrics: dict | None = None) -> ModelSpec:
    """Record file hashes and sizes (and metrics) in model.json; copy it as the registry entry."""
    from engine.models.registry import file_sha256

    spec = load_spec(out / MODEL_FILE)
    files = {
        n: {"sha256": file_sha256(out / n), "size": (out / n).stat().st_size} for n in FOLDER_FILES
    }
    size_mb = round(sum((out / n).stat().st_size for n in ("image.onnx", "text.onnx")) / 2**20, 2)
    extra = dict(spec.extra)
    threshold = spec.tag_threshold
    if metrics is not None:
        extra["metrics"] = metrics
        threshold = metrics.get("tagging", {}).get("threshold", threshold)
    spec = spec.with_(
        source=Source(bundled=BUNDLED, files=files),
        size_mb=size_mb,
        tag_threshold=threshold,
        extra=extra,
    )
    save_spec(spec, out / MODEL_FILE)
    if registry is not None:
        registry.parent.mkdir(parents=True, exist_ok=True)
        save_spec(spec, registry)
    return spec


def write_readme(out: Path, spec: ModelSpec) -> None:
    """The model folder's README: what it is, how to rebuild it, what it measured."""
    from .naflex_edges import table

    tr = spec.extra["training"]
    st, t = tr["settings"], tr["timings"]
    m = spec.extra.get("metrics")
    results = ""
    if m:
        results = f"""
## Edge objects: NaFlex against centre-crop and squash, same weights

`{m["n_per_shape"]}` held-out scenes per shape, one object hugging an end of the long
side. Each picture is given to this model three ways (native: the whole picture at
its own aspect ratio; centre-crop: its central square; squash: stretched to a square),
indexed by a photosift library and searched with `Library.search`
(`training.demo.naflex_edges.evaluate_folder`). p@10 / mAP, mean over the queries.

Colour of the edge object ("a red object", ... 8 queries):

{table({spec.key: m}, "colour")}

Shape of the edge object ("a star", ... 6 queries):

{table({spec.key: m}, "shape")}
"""
    cpu = f", {t['train_cpu_s']} s of CPU time" if "train_cpu_s" in t else ""
    threshold = ""
    if spec.tag_threshold is not None:
        threshold = (f"\nDefault tag threshold {spec.tag_threshold:g}, measured as the demo's is "
                     "(`training.demo.evaluation.tag_threshold`).\n")  # fmt: skip
    text = f"""# photosift demo model, NaFlex variant

The demo model (`resources/demo`) with a SigLIP 2 NaFlex image tower: each picture is
cut into at most {st["max_patches"]} patches of {st["patch_size"]} px at its own aspect ratio
instead of being squashed to 96 x 96. The text tower, tokenizer, logit scale and bias are
the demo's, frozen; the image tower ({spec.architecture.split(" + ")[0]}) was trained
to land where the demo's does: distilled from the demo CNN's vector of the same scene,
plus the sigmoid loss against the demo's text tower (LiT). It knows the procedural world
of coloured shapes (`training/demo/world.py`) and nothing about real photos.

Registry key `{spec.key}` (`resources/models/demo-naflex.json`, a copy of `model.json`).
Files: `image.onnx` (inputs patches, mask, pos_weights: see `training/export/naflex.py`),
`text.onnx` and `tokenizer.json` (the demo's), {spec.size_mb} MB of ONNX in all.
{threshold}
## Reproduce

    {tr["command"]}

Deterministic from the seed ({st["seed"]}): scenes, captions, batches and initialisation;
the weights can differ in the last bits across torch builds and thread counts. Measured
on the 2-core build machine ({t.get("cpu", "CPU not recorded")}): rendering {st["n_train"]:,} scenes and their teacher
vectors {t["render_s"]} s, {st["steps"]} steps of batch {st["batch_size"]} {t["train_s"]} s of wall-clock
time{cpu}.
{results}"""
    (out / "README.md").write_text(text, encoding="utf-8")


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    d = Settings()
    ap = argparse.ArgumentParser(prog="python -m training.demo.naflex",
                                 description=__doc__.split("\n\n")[0])  # fmt: skip
    ap.add_argument("--out", type=Path, required=True, help="the model folder to write")
    ap.add_argument("--registry", type=Path, help="also write the registry entry here")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--n-train", type=int, default=d.n_train)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--layers", type=int, default=d.layers)
    ap.add_argument("--max-patches", type=int, default=d.max_patches)
    ap.add_argument("--lit-weight", type=float, default=d.lit_weight)
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument("--smoke", action="store_true", help="tiny settings, seconds")
    ap.add_argument("--no-eval", action="store_true", help="skip the edge-object evaluation")
    a = ap.parse_args(argv)
    # A shared machine: spinning OpenMP threads that wait for a busy core cost time.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    s = Settings.smoke() if a.smoke else Settings(
        seed=a.seed, steps=a.steps, n_train=a.n_train, batch_size=a.batch_size, lr=a.lr,
        layers=a.layers, max_patches=a.max_patches, lit_weight=a.lit_weight, threads=a.threads,
    )  # fmt: skip
    log = lambda m: print(m, flush=True)  # noqa: E731
    command = "python -m training.demo.naflex " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    t = time.time()
    model, history, timings = train(s, log)
    timings["total_train_s"] = round(time.time() - t, 1)
    from .pretrain import cpu_name

    timings["cpu"] = cpu_name()
    spec = export(model, s, a.out, command=command.strip(), timings=timings)
    log(f"wrote {a.out} ({spec.size_mb} MB of ONNX)")
    metrics = None
    if not a.no_eval:
        from .evaluation import tag_threshold_folder
        from .naflex_edges import evaluate_folder

        metrics = evaluate_folder(a.out, n=60 if a.smoke else 240, seed=s.seed)
        tagging = tag_threshold_folder(a.out, n=100 if a.smoke else 1000, seed=s.seed)
        if tagging is not None:
            metrics["tagging"] = tagging
        log(json.dumps(metrics, indent=1))
    spec = finalize(a.out, a.registry, metrics)
    write_readme(a.out, spec)
    (a.out / "train_log.json").write_text(json.dumps({"history": history}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
