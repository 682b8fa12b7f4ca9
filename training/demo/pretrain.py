"""Pretrain the small demo model on the procedural world (CPU, minutes).

No pretrained CLIP weights exist on the machines this project is built on, so
the app's fallback model is made here: a small open_clip CLIP (ViT image tower,
causal text transformer) trained from scratch on ``training.demo.world`` scenes with
either loss:

* ``clip``: softmax contrastive (InfoNCE both ways), learnable temperature;
* ``siglip``: pairwise sigmoid, learnable temperature and bias (calibrated
  per-pair scores, which tagging relies on; the shipped demo model uses it).

Every caption carries its meaning, so the loss knows which other images in the
batch a caption also describes ("a red object" fits many): those pairs are
positives, not false negatives.

Images go through ``engine.models.preprocess`` with the demo's own ``Preprocess``: the
model is trained on exactly what the app feeds it at run time. Texts go through
``engine.models.tokenizer`` for the same reason.

    python -m training.demo.pretrain --out resources/demo            # the shipped model
    python -m training.demo.pretrain --loss clip --out demo-clip # the softmax variant
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from . import captions, world
from . import tokenizer as demo_tokenizer
from .optim import adamw, warmup_cosine
from .recipe import (
    LOSSES,
    Settings,
    build_model,
    demo_preprocess,
    image_preprocessor,
    init_model,
    model_config,
    text_tokenizer,
    tokenizer_spec,
)


def _render_size(rng: np.random.Generator, short: tuple[int, int]) -> tuple[int, int]:
    """Mostly near-square, some wide panoramas and tall portraits: the squash
    preprocessing then shows the model the distortions it meets at run time."""
    a = int(rng.integers(*short))
    r = rng.random()
    if r < 0.7:
        return a, int(a * rng.uniform(0.8, 1.25))
    if r < 0.85:
        return a, int(a * rng.uniform(1.5, 3.5))  # panorama
    return int(a * rng.uniform(1.5, 2.5)), a  # portrait


def group_size(s: Settings) -> int:
    """Scenes per group: a scene, its kind twin, its position twin (as the settings ask)."""
    return 1 + int(s.twins) + int(s.position_twins)


def training_scenes(s: Settings) -> list[world.Scene]:
    """``n_train`` train-split scenes in groups of ``group_size``: a scene, then with
    ``twins`` the scene with its kinds redrawn (``world.with_new_kinds``), then with
    ``position_twins`` the scene with its objects at the opposite places (``world.opposite``)."""
    g = group_size(s)
    if g == 1:
        return world.scenes("train", s.n_train, seed=s.seed)
    out: list[world.Scene] = []
    for k, scene in enumerate(world.scenes("train", -(-s.n_train // g), seed=s.seed)):
        out.append(scene)
        if s.twins:
            out.append(world.with_new_kinds(scene, np.random.default_rng([s.seed, 77, k])))
        if s.position_twins:
            out.append(world.opposite(scene))
    return out[: s.n_train]


def _render_chunk(args) -> np.ndarray:
    start, scene_list, s = args
    pre = image_preprocessor(demo_preprocess(s))
    out = np.empty((len(scene_list), 3, s.image_size, s.image_size), dtype=np.float16)
    for k, scene in enumerate(scene_list):
        size = _render_size(np.random.default_rng([s.seed, 99, start + k]), s.render_short_side)
        out[k] = pre(world.render(scene, size))
    return out


def render_training_set(s: Settings) -> tuple[list[world.Scene], np.ndarray]:
    """The training scenes, rendered at varied sizes and preprocessed for the model
    (float16 to halve the memory; the rounding is far below the model's noise)."""
    scene_list = training_scenes(s)
    chunk = 1000
    jobs = [(i, scene_list[i : i + chunk], s) for i in range(0, len(scene_list), chunk)]
    if s.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(s.workers) as pool:
            parts = pool.map(_render_chunk, jobs)
    else:
        parts = [_render_chunk(j) for j in jobs]
    return scene_list, np.concatenate(parts)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (else autocast would emulate it)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:  # torch.cpu's probes are private: absent ones count as "no"
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    except Exception:
        return False


def encode_text_trimmed(model, tokens, groups: int = 2):
    """``model.encode_text(tokens)``, without the padding's cost.

    Captions are short (about 12 tokens of the 64) but a batch always holds a few
    long ones, so the texts are sorted by length, split into ``groups`` and each group
    cut to its own longest text. Exact: under the causal mask no token sees the
    padding after it, and argmax pooling reads the end token. Measured here: the text
    tower's step about 3x cheaper than at full context."""
    import torch
    from open_clip.transformer import text_global_pool

    lengths = (tokens != 0).sum(1)
    order = torch.argsort(lengths)
    out = []
    for part in torch.tensor_split(order, groups):
        if len(part) == 0:
            continue
        n = int(lengths[part].max())
        text = tokens[part, :n]
        x = model.token_embedding(text) + model.positional_embedding[:n]
        x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
        x = text_global_pool(model.ln_final(x), text, model.text_pool_type)
        proj = model.text_projection
        out.append(proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj)
    return torch.cat(out)[torch.argsort(order)]


def pool_with_first_query(pool, x):
    """open_clip's ``AttentionPool2d.forward``, computing only the output it keeps.

    The stock pool lets all 10 tokens (the mean and the 3 x 3 grid) attend and returns
    the first one's result; its backward pays for all ten (measured: 15% of the image
    tower's training step, in torch's CPU flash-attention backward). Here only the mean
    token queries: the same function, with the same parameters."""
    import torch

    x = x.flatten(2).permute(0, 2, 1)  # [N, HW, C]
    x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
    x = x + pool.positional_embedding.to(x.dtype)
    n, t, c = x.shape
    h = pool.num_heads
    q = pool.q_proj(x[:, :1]).view(n, 1, h, c // h).transpose(1, 2)  # [N, h, 1, d]
    k = pool.k_proj(x).view(n, t, h, c // h).transpose(1, 2)  # [N, h, T, d]
    v = pool.v_proj(x).view(n, t, h, c // h).transpose(1, 2)
    attn = torch.softmax((q @ k.transpose(-1, -2)) * (c // h) ** -0.5, dim=-1)
    return pool.c_proj((attn @ v).transpose(1, 2).reshape(n, c))


class _first_query_pool:
    """Within the block, a ModifiedResNet's attention pool runs ``pool_with_first_query``."""

    def __init__(self, model):
        self.pool = getattr(model.visual, "attnpool", None)

    def __enter__(self):
        if self.pool is not None:
            pool = self.pool
            pool.forward = lambda x: pool_with_first_query(pool, x)
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            del self.pool.forward  # back to the class's own forward (what export traces)


def cpu_name() -> str:
    """The processor's name and the features that decide training speed here (AVX2 only,
    AVX-512, native bf16, AMX), for the train log: timings mean little without them."""
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(shown)})" if shown else name


def train(
    s: Settings,
    tokenizer_json: Path,
    *,
    progress: Callable[[dict], None] | None = None,
):
    """Train a model; returns ``(model, history)``. ``history`` holds one dict per logged step.

    The loss is written out here on purpose: it is the whole idea of the model.
    """
    import torch
    import torch.nn.functional as F

    if s.loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {s.loss!r}")
    torch.set_num_threads(s.threads)
    tokenize = text_tokenizer(tokenizer_json, tokenizer_spec(s))
    from tokenizers import Tokenizer

    vocab_size = Tokenizer.from_file(str(tokenizer_json)).get_vocab_size()

    t0 = time.time()
    scene_list, pixels = render_training_set(s)
    arr = world.scene_array(scene_list)
    render_s = time.time() - t0

    model = init_model(s, vocab_size)
    use_bf16 = native_bf16() if s.bf16 is None else s.bf16
    nhwc = s.channels_last and s.vision == "resnet"
    if nhwc:
        model.visual.to(memory_format=torch.channels_last)
    model.train()
    # No weight decay on gains, biases, embeddings' scale parameters and the temperature.
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit" in n]
    opt = adamw(decay, no_decay, s.lr, s.weight_decay)

    def lr_at(step: int) -> float:
        return warmup_cosine(step, s.lr, s.warmup, s.steps)

    rng = np.random.default_rng([s.seed, 1])
    caption_rng = np.random.default_rng([s.seed, 2])

    def sample(scene: world.Scene) -> world.Caption:
        return captions.sample_caption(scene, caption_rng, s.caption_mix, s.attribute_weights)

    fixed_captions = None
    if not s.resample_captions:
        fixed_captions = [sample(sc) for sc in scene_list]
    history: list[dict] = []
    # Batches are drawn in whole groups, so every twin has its original beside it.
    group = group_size(s)
    n_groups, per_batch = s.n_train // group, s.batch_size // group
    order, pos = rng.permutation(n_groups), 0
    t1 = time.time()
    with _first_query_pool(model):  # the same function as the stock pool, cheaper to train
        for step in range(s.steps):
            if pos + per_batch > n_groups:  # new epoch
                order, pos = rng.permutation(n_groups), 0
            idx = (order[pos : pos + per_batch, None] * group + np.arange(group)).reshape(-1)
            pos += per_batch
            batch_scenes = [scene_list[i] for i in idx]
            if fixed_captions is None:
                caps = [sample(sc) for sc in batch_scenes]
            else:
                caps = [fixed_captions[i] for i in idx]
            # positives[i, j]: caption j is true of image i (the diagonal always is)
            positives = torch.from_numpy(
                world.match_matrix(batch_scenes, [c.meaning for c in caps], arr[idx])
            )
            images = torch.from_numpy(pixels[idx].astype(np.float32))
            if nhwc:
                images = images.contiguous(memory_format=torch.channels_last)
            tokens = torch.from_numpy(tokenize([c.text for c in caps]))

            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            # bf16 for the convolutions only: the small text tower measured faster in fp32.
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                img_raw = model.encode_image(images)
            txt_raw = encode_text_trimmed(model, tokens)
            img = F.normalize(img_raw.float(), dim=-1)
            txt = F.normalize(txt_raw.float(), dim=-1)
            scale = model.logit_scale.exp()
            logits = scale * img @ txt.T  # [images, captions]
            if s.loss == "siglip":
                # Sigmoid loss: every (image, caption) pair is its own binary question.
                logits = logits + model.logit_bias
                labels = positives.float() * 2 - 1
                loss = -F.logsigmoid(labels * logits).sum() / len(images)
            else:
                # Softmax loss, both directions, spreading the target over all true pairs.
                p = positives.float()
                loss_i2t = -(p / p.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
                loss_t2i = -(p / p.sum(0, keepdim=True) * F.log_softmax(logits, 0)).sum(0).mean()
                loss = (loss_i2t + loss_t2i) / 2

            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():  # CLIP's cap on the temperature, so the softmax can't collapse
                model.logit_scale.clamp_(0, math.log(100))

            if step % 25 == 0 or step == s.steps - 1:
                rec = {
                    "step": step,
                    "loss": round(loss.item(), 5),
                    "lr": lr_at(step),
                    "scale": round(scale.item(), 3),
                    "elapsed_s": round(time.time() - t1, 1),
                }
                if s.loss == "siglip":
                    rec["bias"] = round(model.logit_bias.item(), 3)
                history.append(rec)
                if progress:
                    progress(rec)
    model.eval()
    timings = {
        "render_s": round(render_s, 1),
        "train_s": round(time.time() - t1, 1),
        "bf16": use_bf16,
        "channels_last": nhwc,
    }
    return model, history, timings


def save_checkpoint(model, s: Settings, vocab_size: int, out_dir: Path) -> None:
    """open_clip's local-dir layout: ``open_clip.create_model("local-dir:<out_dir>")`` loads it."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    p = demo_preprocess(s)
    cfg = {
        "model_cfg": model_config(s, vocab_size),
        "preprocess_cfg": {
            "mean": list(p.mean),
            "std": list(p.std),
            "interpolation": p.interpolation,
            "resize_mode": p.resize_mode,
        },
    }
    (out_dir / "open_clip_config.json").write_text(
        json.dumps(cfg, indent=2) + "\n", encoding="utf-8"
    )
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "open_clip_model.safetensors"))


def load_checkpoint(folder: Path):
    """The trained torch model back from a folder written by ``save_checkpoint``."""
    from safetensors.torch import load_file

    cfg = json.loads((Path(folder) / "open_clip_config.json").read_text(encoding="utf-8"))
    model = build_model(cfg["model_cfg"])
    model.load_state_dict(load_file(str(Path(folder) / "open_clip_model.safetensors")))
    return model.eval()


def _four_ints(text: str) -> tuple[int, int, int, int]:
    try:
        v = tuple(int(x) for x in text.split(","))
    except ValueError:
        v = ()
    if len(v) != 4 or min(v) < 1:
        raise argparse.ArgumentTypeError(
            f"expected four positive integers like 1,2,2,1, not {text!r}"
        )
    return v  # type: ignore[return-value]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    d = Settings()
    ap = argparse.ArgumentParser(
        prog="python -m training.demo.pretrain", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out", type=Path, required=True, help="output folder (the model folder)")
    ap.add_argument("--loss", choices=LOSSES, default=d.loss)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--n-train", type=int, default=d.n_train)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--vision", choices=("resnet", "vit"), default=d.vision)
    ap.add_argument("--image-size", type=int, default=d.image_size)
    ap.add_argument("--patch-size", type=int, default=d.patch_size)
    ap.add_argument("--vision-width", type=int, default=d.vision_width)
    ap.add_argument("--vision-layers", type=int, default=d.vision_layers)
    ap.add_argument(
        "--stage-blocks",
        type=_four_ints,
        default=d.stage_blocks,
        help="resnet: blocks in each of the 4 stages, e.g. 1,2,2,1 (overrides --vision-layers)",
    )
    ap.add_argument(
        "--pool-position-scale",
        type=float,
        default=d.pool_position_scale,
        help="resnet: the attention pool's position table starts this many times open_clip's",
    )
    ap.add_argument(
        "--init-temperature",
        type=float,
        default=d.init_temperature,
        help="siglip: the temperature t the run starts from",
    )
    ap.add_argument("--text-width", type=int, default=d.text_width)
    ap.add_argument("--text-layers", type=int, default=d.text_layers)
    ap.add_argument("--embed-dim", type=int, default=d.embed_dim)
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=d.bf16,
        help="bfloat16 autocast (default: only where the CPU has native bf16)",
    )
    ap.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=d.channels_last,
        help="NHWC convolutions for the resnet image tower (faster on CPU)",
    )
    ap.add_argument("--workers", type=int, default=d.workers)
    ap.add_argument("--smoke", action="store_true", help="tiny settings, a few seconds")
    ap.add_argument(
        "--no-export", action="store_true", help="skip the ONNX model folder and registry entry"
    )
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    ap.add_argument(
        "--eval-gallery",
        type=int,
        default=None,
        help="held-out scenes in the evaluation (default 1000; 100 with --smoke)",
    )
    ap.add_argument(
        "--registry",
        type=Path,
        default=None,
        help="also write the registry entry here (e.g. resources/models/demo.json)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    # The machine is shared: spinning OpenMP threads waiting for a busy core cost
    # half the time in measurements here. Must be set before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    s = (
        Settings.smoke(a.loss)
        if a.smoke
        else Settings(
            loss=a.loss,
            seed=a.seed,
            steps=a.steps,
            batch_size=a.batch_size,
            n_train=a.n_train,
            lr=a.lr,
            vision=a.vision,
            image_size=a.image_size,
            patch_size=a.patch_size,
            vision_width=a.vision_width,
            vision_layers=a.vision_layers,
            stage_blocks=a.stage_blocks,
            init_temperature=a.init_temperature,
            pool_position_scale=a.pool_position_scale,
            text_width=a.text_width,
            text_layers=a.text_layers,
            channels_last=a.channels_last,
            bf16=a.bf16,
            embed_dim=a.embed_dim,
            threads=a.threads,
            workers=a.workers,
        )
    )
    if a.smoke:
        s = replace(s, seed=a.seed)
    out: Path = a.out
    command = "python -m training.demo.pretrain " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.time()
    # Work in a staging folder beside the output: the export replaces ``out`` whole,
    # so a failed run never leaves a half-written model folder.
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.stage.", dir=out.parent))
    try:
        tok = demo_tokenizer.build_tokenizer(s.context_length, s.vocab_size, seed=s.seed)
        demo_tokenizer.save_tokenizer(tok, stage / "tokenizer.json")
        vocab_size = tok.get_vocab_size()
        print(f"tokenizer: {vocab_size} tokens", flush=True)

        model, history, timings = train(
            s, stage / "tokenizer.json", progress=lambda r: print(json.dumps(r), flush=True)
        )
        save_checkpoint(model, s, vocab_size, stage)
        timings["total_train_s"] = round(time.time() - t0, 1)
        print(f"trained in {timings['total_train_s']} s ({timings})", flush=True)
        log = {
            "command": command,
            "settings": asdict(s),
            "vocab_size": vocab_size,
            "timings": timings,
            "history": history,
            "cpu_count": os.cpu_count(),
            "cpu": cpu_name(),
        }
        (stage / "train_log.json").write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")

        from . import bundle as demo_model
        from . import evaluation as demo_eval

        if a.no_export:
            if out.exists():
                shutil.rmtree(out)
            stage.rename(out)
        else:
            spec = demo_model.export_demo(model, s, stage, out, command=command, timings=timings)
            print(f"exported {spec.key} to {out} ({spec.size_mb} MB of ONNX)", flush=True)
        if a.no_eval:
            return 0
        gallery = a.eval_gallery or (100 if a.smoke else 1000)
        if a.no_export:
            metrics = demo_eval.evaluate_torch(model, s, out / "tokenizer.json", n_gallery=gallery)
            demo_model.write_metrics(out, metrics)
            print(demo_eval.summary(metrics), flush=True)
        else:
            demo_model.evaluate_and_finalize(out, log, gallery=gallery, registry=a.registry)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
