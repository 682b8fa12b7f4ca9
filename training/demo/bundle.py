"""Turn a trained demo model into the bundled model folder and its registry entry.

The folder (``resources/demo/``) is a model folder like any other (model.json,
image.onnx, text.onnx, tokenizer.json: see ``engine.models.registry``) and also an
open_clip ``local-dir:`` checkpoint (open_clip_config.json +
open_clip_model.safetensors), so later training (text-side fine-tuning, a NaFlex
variant) can start from it with ``training.demo.pretrain.load_checkpoint``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.models.registry import MODEL_FILE, ModelSpec, Source, load_spec, save_spec
from engine.models.registry import file_sha256 as _sha256

from . import world

DEMO_KEY = "photosift-demo"
REGISTRY_FILES = ("image.onnx", "text.onnx", "tokenizer.json")
CHECKPOINT_FILES = ("open_clip_config.json", "open_clip_model.safetensors", "train_log.json")


def demo_spec(settings, *, command: str, timings: dict) -> ModelSpec:
    """The registry description of the demo model (before export adds logit scale/bias)."""
    from .recipe import demo_preprocess, resnet_layers, tokenizer_spec

    s = settings
    if s.vision == "vit":
        image = f"ViT {s.vision_layers}L/{s.vision_width}w {s.image_size}px patch {s.patch_size}"
    else:
        image = f"ModifiedResNet {resnet_layers(s)} width {s.vision_width} {s.image_size}px"
    arch = f"{image} + text {s.text_layers}L/{s.text_width}w (open_clip CLIP, custom config)"
    family = "siglip" if s.loss == "siglip" else "clip"
    return ModelSpec(
        key=DEMO_KEY,
        name="photosift demo (procedural shapes)",
        family=family,
        architecture=arch,
        embed_dim=s.embed_dim,
        preprocess=demo_preprocess(s),
        tokenizer=tokenizer_spec(s),
        source=Source(bundled="demo"),
        license="Apache-2.0",
        speed_class="fast",
        description=(
            "A small CLIP-style model that photosift pretrains itself, on its procedural world of "
            "coloured shapes (training/demo/world.py): it knows colours, shapes, counts and positions of "
            "simple objects, not real photos. Used when no real model is available, and by tests."
        ),
        extra={
            "training": {"command": command, "loss": s.loss, "timings": timings},
            "world": {
                "held_out_pairs": [list(p) for p in world.HELD_OUT_PAIRS],
                "reserve_kinds": list(world.RESERVE_KINDS),
                "unnamed_textures": list(world.TEXTURES[1:]),
            },
        },
    )


def export_demo(
    model, settings, stage: Path, out: Path, *, command: str, timings: dict
) -> ModelSpec:
    """Export ``model`` to the model folder ``out``; ``stage`` holds tokenizer.json
    and the checkpoint files, which are copied in (the export replaces ``out`` whole)."""
    from ..export.openclip import export_open_clip

    spec = demo_spec(settings, command=command, timings=timings)
    spec = export_open_clip(model, spec, stage / "tokenizer.json", out)
    for name in CHECKPOINT_FILES:
        if (stage / name).exists():
            shutil.copyfile(stage / name, out / name)
    return finalize(out, spec)


def finalize(
    out: Path,
    spec: ModelSpec | None = None,
    metrics: dict | None = None,
    registry: Path | None = None,
) -> ModelSpec:
    """Record file hashes/sizes (and metrics) in model.json, and copy it as the registry entry."""
    spec = spec or load_spec(out / MODEL_FILE)
    files = {
        n: {"sha256": _sha256(out / n), "size": (out / n).stat().st_size}
        for n in REGISTRY_FILES + CHECKPOINT_FILES[:2]
    }
    size_mb = round(sum((out / n).stat().st_size for n in ("image.onnx", "text.onnx")) / 2**20, 2)
    extra = dict(spec.extra)
    threshold = spec.tag_threshold
    if metrics is not None:
        extra["metrics"] = headline(metrics)
        threshold = metrics.get("tagging", {}).get("threshold", threshold)
    spec = spec.with_(
        source=Source(bundled=spec.source.bundled, files=files),
        size_mb=size_mb,
        tag_threshold=threshold,
        extra=extra,
    )
    save_spec(spec, out / MODEL_FILE)
    if registry is not None:
        registry.parent.mkdir(parents=True, exist_ok=True)
        save_spec(spec, registry)
    return spec


def headline(m: dict) -> dict:
    """The few numbers worth keeping in a registry entry."""
    return {
        "caption_recall": m["caption_recall"],
        "attribute_p@10": m["attributes"]["by_kind"],
        "zero_shot_accuracy": m["zero_shot"],
        "compositions_p@10": {
            k: {"mean": v["mean_p@10"], "base_rate": v["base_rate"]}
            for k, v in m["compositions"].items()
        },
        "panorama_p@10": m["panorama"],
    }


def recipe(s: dict) -> str:
    """The training settings that make this model, as README bullets (``s``: the logged settings)."""
    mix = ", ".join(f"{form} {share:g}" for form, share in s.get("caption_mix", ()))
    names = ("colour", "kind", "count", "position", "size")
    weights = ", ".join(
        f"{n} {w:g}" for n, w in zip(names, s.get("attribute_weights", ()), strict=False)
    )
    lines = [
        f"- {s['loss']} loss, {s['steps']} steps of batch {s['batch_size']}, AdamW lr {s['lr']:g} "
        f"(warm-up {s['warmup']}, cosine), {s['n_train']:,} scenes rendered once",
    ]
    if s.get("twins"):
        lines.append("- every scene beside its kind twin (the same scene with other shapes), so "
                     "captions need their shape words")  # fmt: skip
    if s.get("position_twins"):
        lines.append("- and beside its position twin (objects at the opposite places)")
    if mix:
        lines.append(f"- caption forms: {mix}; single-attribute captions name {weights}")
    if s.get("vision") == "resnet" and s.get("pool_position_scale", 1.0) != 1.0:
        lines.append(f"- the attention pool's position table starts at {s['pool_position_scale']:g}x "
                     "open_clip's scale, so the pooled vector can say where things are")  # fmt: skip
    return "\n".join(lines)


def tag_line(spec: ModelSpec) -> str:
    """The README line on the model's own tag threshold (empty where it has none)."""
    if spec.tag_threshold is None:
        return ""
    return (f"\n- default tag threshold {spec.tag_threshold:g}: the probability of best F1 for "
            "labels typed by name on held-out scenes (`training.demo.evaluation.tag_threshold`)")  # fmt: skip


def write_readme(out: Path, spec: ModelSpec, metrics: dict, log: dict) -> None:
    from .evaluation import summary

    s = log["settings"]
    t = log["timings"]
    text = f"""# photosift demo model

A small CLIP-style model ({spec.family} loss) that photosift pretrains itself on its
procedural world of coloured shapes (`training/demo/world.py`). It knows colours, shapes,
counts and positions of simple objects and nothing about real photos. The app uses it
when no real model is available; tests and benchmarks use it because no pretrained
weights can be downloaded on the machines photosift is built on.

This folder is both a photosift model folder (`model.json`, `image.onnx`, `text.onnx`,
`tokenizer.json`) and an open_clip checkpoint (`open_clip_config.json`,
`open_clip_model.safetensors`: `open_clip.create_model("local-dir:resources/demo")`).

## Reproduce

From the project root, with the training extra installed (CPU only):

    {log["command"]}

The scenes, captions, batches and initialisation are deterministic from the seed; the
weights themselves can differ in the last bits across torch builds and thread counts.
Measured on the {log.get("cpu_count", 2)}-core build machine ({log.get("cpu", "CPU not recorded")}): rendering the
{s["n_train"]:,} training scenes {t["render_s"]} s, {s["steps"]} steps of batch {s["batch_size"]}
{t["train_s"]} s, {t["total_train_s"]} s in all before export and evaluation, with bfloat16
autocast {"on" if t.get("bf16", s.get("bf16")) else "off"}.
By default bf16 is used only on CPUs that compute it natively (avx512_bf16, AMX): torch
emulates it elsewhere, measured 10x slower per step on an AVX2-only EPYC, where the same
run trains in fp32 (`--bf16` / `--no-bf16` override). The demo model is an ordinary registry entry,
`resources/models/demo.json` (a copy of `model.json`, file hashes included).

## Recipe

The choices that matter, each measured in `training/demo/recipe.py` (`Settings`):

{recipe(s)}

## Model

- image: {spec.architecture.split(" + ")[0]}
- text: causal transformer, width {s["text_width"]}, {s["text_layers"]} layers, context {s["context_length"]},
  byte-level BPE of {log["vocab_size"]} tokens (`<end>` is the top id: open_clip pools there)
- embedding {s["embed_dim"]}-d; preprocessing: squash to {s["image_size"]}x{s["image_size"]}, bicubic, mean/std 0.5
- logit scale {spec.logit_scale:.3f}, bias {"none" if spec.logit_bias is None else f"{spec.logit_bias:.3f}"}{tag_line(spec)}
- ONNX files {spec.size_mb} MB in all

## Held-out metrics

Measured through the exported ONNX folder with the engine's own runtime
(`training.demo.evaluation`, {metrics.get("gallery", 1000)} held-out scenes, rendered at varied sizes and aspect ratios):

{summary(metrics)}

Held-out colour-kind pairs ({", ".join(" ".join(p) for p in world.HELD_OUT_PAIRS)}) never
occur in training. The reserve kinds ({", ".join(world.RESERVE_KINDS)}) and the textures
striped and dotted are drawn in training images but never named in training captions:
room for teaching new labels by fine-tuning only the text side.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def evaluate_and_finalize(
    out: Path, log: dict, *, gallery: int = 1000, registry: Path | None = None
) -> ModelSpec:
    """Evaluate the exported folder ``out`` (held-out metrics and the tag threshold), then
    record them in model.json, metrics.json, the README and the registry entry."""
    from .evaluation import evaluate_folder, summary

    metrics = evaluate_folder(out, n_gallery=gallery)
    write_metrics(out, metrics)
    print(summary(metrics), flush=True)
    spec = finalize(out, metrics=metrics, registry=registry)
    write_readme(out, spec, metrics, log)
    return spec


def write_metrics(out: Path, metrics: dict) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
