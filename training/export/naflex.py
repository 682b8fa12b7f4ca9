"""Export a transformers SigLIP 2 NaFlex checkpoint to a photosift model folder.

The published NaFlex checkpoints (``google/siglip2-base-patch16-naflex``,
``google/siglip2-so400m-patch16-naflex``) are transformers ``Siglip2Model``
weights: ``config.json`` + ``model.safetensors`` + ``preprocessor_config.json``
+ tokenizer files. open_clip has no NaFlex tower, so this exporter works from
transformers' model, which is also the parity reference (its image processor
and vision embeddings are what :mod:`engine.models.naflex` reproduces).

Image graph (``image.onnx``), all axes but the last dynamic::

    patches      float32 [B, S, 3 * patch**2]   engine.models.naflex.preprocess, padded
    mask         int64   [B, S]                 1 for a real patch, 0 for padding
    pos_weights  float32 [B, S, G]              engine.models.naflex.position_weights, padded
    -> embeddings float32 [B, D]

It is transformers' vision tower with one change: the per-image position
embedding resize (a Python loop over ``F.interpolate`` calls, untraceable with
a batch of mixed grids) becomes ``pos_weights @ table``, the same linear map
(see :mod:`engine.models.naflex`). The sequence length is free, so a batch is padded
only to its longest photo, not always to the budget.

Text graph (``text.onnx``): tokens int64 [B, 64] -> embeddings [B, D], the
text tower pooled at the last position as transformers and big_vision do.
The tokenizer.json is the checkpoint's Gemma tokenizer as open_clip's SigLIP 2
``HFTokenizer`` uses it (canonicalised text, ``<eos>`` appended, padded to 64),
baked by :func:`training.export.tokenizer_json.open_clip_tokenizer_json`.

Parity gate: before a folder is written, both graphs are run with ONNX Runtime
and compared with the transformers model (its own ``forward``, default
attention) on inputs built by transformers' own image processor for random
photos of several aspect ratios; a cosine below ``min_cosine`` refuses the export.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelError
from engine.models import naflex
from engine.models.registry import MODEL_FILE, ModelSpec, save_spec

from .openclip import (
    DEFAULT_OPSET,
    MIN_COSINE,
    PARITY_TEXTS,
    _run_onnx,
    check_parity,
    staged_folder,
)

# (height, width) of the parity photos: square, landscape, portrait, panorama, strips.
# Opset 20 has ONNX's Gelu with approximate="tanh" (SigLIP 2's activation), which ONNX
# Runtime fuses with its bias into one FastGelu kernel. At opset 18 the tanh formula is
# exported as a chain of elementwise ops per MLP that ONNX Runtime does not fuse, over the
# largest activation in the network ([B, S, 3072] for B/16).
NAFLEX_OPSET = 20

# No grid one patch wide at either parity budget: see engine.models.naflex on torch's result there.
PARITY_SIZES = ((96, 96), (60, 160), (160, 60), (40, 200), (300, 60), (23, 17))
IMAGE_INPUTS = ("patches", "mask", "pos_weights")


def _image_tower(model: Any):
    """transformers' SigLIP 2 vision tower with the position resize as an input matmul."""
    import torch

    vm = model.vision_model

    class NaflexImageTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vm = vm
            self.heads = vm.config.num_attention_heads

        def forward(self, patches, mask, pos_weights):
            emb = self.vm.embeddings
            table = emb.position_embedding.weight  # [G, D], row-major base grid
            x = emb.patch_embedding(patches) + torch.matmul(pos_weights, table)
            # Additive mask over keys, as transformers builds for eager attention.
            neg = torch.finfo(x.dtype).min
            add = (1.0 - mask.to(x.dtype))[:, None, None, :] * neg  # [B, 1, 1, S]
            for layer in self.vm.encoder.layers:
                x = layer(x, add)
            x = self.vm.post_layernorm(x)
            head = self.vm.head
            y = self._pool(head.probe, x, add, head.attention)
            y = y + head.mlp(head.layernorm(y))
            return y[:, 0]

        def _pool(self, probe, x, add, mha):
            # nn.MultiheadAttention written out: its traced graph bakes the sequence
            # length of the export example into a Reshape, so any other length fails.
            d = x.shape[-1]
            hd = d // self.heads
            wq, wk, wv = mha.in_proj_weight.chunk(3)
            bq, bk, bv = mha.in_proj_bias.chunk(3)
            q = (
                torch.nn.functional.linear(probe, wq, bq)
                .reshape(1, 1, self.heads, hd)
                .transpose(1, 2)
            )
            k = (
                torch.nn.functional.linear(x, wk, bk)
                .reshape(x.shape[0], -1, self.heads, hd)
                .transpose(1, 2)
            )
            v = (
                torch.nn.functional.linear(x, wv, bv)
                .reshape(x.shape[0], -1, self.heads, hd)
                .transpose(1, 2)
            )
            att = torch.matmul(q, k.transpose(-1, -2)) * (hd**-0.5) + add  # [B, H, 1, S]
            y = torch.matmul(att.softmax(-1), v)  # [B, H, 1, hd]
            y = y.transpose(1, 2).reshape(x.shape[0], 1, d)
            return mha.out_proj(y)

    return NaflexImageTower().eval()


def _text_tower(model: Any):
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tm = model.text_model

        def forward(self, tokens):
            return self.tm(input_ids=tokens).pooler_output

    return TextTower().eval()


def _export(tower, example: tuple, names: list[str], dynamic: dict, path: Path, opset: int) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns about itself
        torch.onnx.export(
            tower,
            example,
            os.fspath(path),
            input_names=names,
            output_names=["embeddings"],
            dynamic_axes={**dynamic, "embeddings": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def parity_photos(seed: int = 0, sizes=PARITY_SIZES):
    """Smooth random RGB photos (PIL) of the parity sizes."""
    from PIL import Image

    from .openclip import random_images

    out = []
    for i, (h, w) in enumerate(sizes):
        x = random_images(1, h, w, seed + i)[0].transpose(1, 2, 0)
        x = np.clip(127.5 + 60 * x, 0, 255).astype(np.uint8)
        out.append(Image.fromarray(x, "RGB"))
    return out


def reference_image_features(model: Any, images, max_patches: int, patch_size: int) -> np.ndarray:
    """transformers' own answer: its PIL image processor, then ``get_image_features``."""
    import torch
    from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

    proc = Siglip2ImageProcessorPil(patch_size=patch_size, max_num_patches=max_patches)
    inp = proc(images=list(images), return_tensors="pt")
    with torch.no_grad():
        out = model.get_image_features(
            pixel_values=inp["pixel_values"],
            pixel_attention_mask=inp["pixel_attention_mask"],
            spatial_shapes=inp["spatial_shapes"],
        )
    return out.pooler_output.numpy()


def base_grid(model: Any) -> int:
    n = int(model.config.vision_config.num_patches)
    side = math.isqrt(n)
    if side * side != n:
        raise ModelError(f"vision num_patches {n} is not a square grid")
    return side


def export_siglip2_naflex(
    model: Any,
    spec: ModelSpec,
    tokenizer_json: Path,
    out_dir: Path,
    *,
    opset: int | None = None,
    min_cosine: float = MIN_COSINE,
    seed: int = 0,
) -> ModelSpec:
    """Export a transformers ``Siglip2Model`` (NaFlex) as a model folder at ``out_dir``.

    Writes image.onnx, text.onnx, tokenizer.json and model.json (``spec`` plus
    logit scale/bias and the parity numbers under ``extra["export"]``). Raises
    ``ModelError`` and writes nothing if either graph disagrees with transformers.
    """
    import torch

    from engine.models.runtime import OnnxModel
    from engine.models.tokenizer import Tokenizer

    opset = opset or NAFLEX_OPSET
    out_dir = Path(out_dir)
    p = spec.preprocess
    if p.resize_mode != "naflex":
        raise ModelError(f"{spec.key}: not a NaFlex model (resize_mode {p.resize_mode!r})")
    if p.patch_size != model.config.vision_config.patch_size:
        raise ModelError(
            f"{spec.key}: registry patch_size {p.patch_size} vs checkpoint "
            f"{model.config.vision_config.patch_size}"
        )
    if not Path(tokenizer_json).is_file():
        raise ModelError(f"{tokenizer_json}: tokenizer file is missing")
    model.eval()
    base = base_grid(model)
    image_tower, text_tower = _image_tower(model), _text_tower(model)

    photos = parity_photos(seed)
    batch = naflex.collate([naflex.preprocess(im, p) for im in photos], base)
    tokens = Tokenizer.from_file(tokenizer_json, spec.tokenizer).encode(PARITY_TEXTS)
    if int(tokens.max()) >= model.config.text_config.vocab_size:
        raise ModelError(f"{spec.key}: tokenizer ids exceed the text tower's vocabulary")

    with staged_folder(out_dir) as tmp:
        report: dict[str, Any] = {
            "exporter": "torchscript",
            "opset": opset,
            "reference": "transformers",
        }
        ex = tuple(torch.from_numpy(a[:2]) for a in (batch.patches, batch.mask, batch.pos_weights))
        _export(
            image_tower,
            ex,
            list(IMAGE_INPUTS),
            {n: {0: "batch", 1: "sequence"} for n in IMAGE_INPUTS},
            tmp / "image.onnx",
            opset,
        )
        _export(
            text_tower,
            (torch.from_numpy(tokens[:2]),),
            ["tokens"],
            {"tokens": {0: "batch"}},
            tmp / "text.onnx",
            opset,
        )
        shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        written = spec.with_(
            logit_scale=float(math.exp(float(model.logit_scale.detach().reshape(-1)[0]))),
            logit_bias=float(model.logit_bias.detach().reshape(-1)[0]),
            extra={**spec.extra, "export": report},
        )
        save_spec(written, tmp / MODEL_FILE)

        # Parity through the runtime users hit (engine preprocessing + ONNX Runtime)
        # against transformers' processor + model.
        # Two budgets: the graph must not have kept the export example's sequence length.
        budgets = (p.max_patches, max(1, p.max_patches // 2))
        want_img = np.concatenate(
            [reference_image_features(model, photos, b, p.patch_size) for b in budgets]
        )
        with torch.no_grad():
            want_txt = model.get_text_features(
                input_ids=torch.from_numpy(tokens)
            ).pooler_output.numpy()
        onnx = OnnxModel(tmp, prefer_cpu=True)
        got_img = np.concatenate(
            [onnx.encode_images([naflex.preprocess(im, p, b) for im in photos], normalize=False)
             for b in budgets]
        )  # fmt: skip
        got_txt = _run_onnx(tmp / "text.onnx", "tokens", tokens)
        check_parity(spec, {"image": (got_img, want_img), "text": (got_txt, want_txt)},
                     report, min_cosine, "transformers")  # fmt: skip
        del onnx
        written = written.with_(extra={**spec.extra, "export": report})
        save_spec(written, tmp / MODEL_FILE)
    return written


def check_preprocessor_config(spec: ModelSpec, weights_dir: Path) -> None:
    """Raise ModelError if the checkpoint's preprocessor_config.json disagrees with ``spec``."""
    path = Path(weights_dir) / "preprocessor_config.json"
    if not path.is_file():
        return
    cfg = json.loads(path.read_text(encoding="utf-8"))
    p = spec.preprocess
    resample = {2: "bilinear", 3: "bicubic"}.get(cfg.get("resample", 2), str(cfg.get("resample")))
    want = {
        "patch_size": p.patch_size,
        "max_num_patches": p.max_patches,
        "image_mean": [round(x, 6) for x in p.mean],
        "image_std": [round(x, 6) for x in p.std],
        "resample": p.interpolation,
    }
    have = {
        "patch_size": cfg.get("patch_size", 16),
        "max_num_patches": cfg.get("max_num_patches", 256),
        "image_mean": [round(float(x), 6) for x in cfg.get("image_mean", (0.5, 0.5, 0.5))],
        "image_std": [round(float(x), 6) for x in cfg.get("image_std", (0.5, 0.5, 0.5))],
        "resample": resample,
    }
    diff = [f"{k}: registry {want[k]} vs checkpoint {have[k]}" for k in want if want[k] != have[k]]
    if diff:
        raise ModelError(
            f"{spec.key}: preprocessing disagrees with the checkpoint ({'; '.join(diff)})"
        )


def naflex_tokenizer_json(weights_dir: Path, path: Path, context_length: int) -> Path:
    """The checkpoint's tokenizer as open_clip's SigLIP 2 text pipeline uses it, as one tokenizer.json."""
    from open_clip.tokenizer import HFTokenizer

    from .tokenizer_json import open_clip_tokenizer_json

    tok = HFTokenizer(os.fspath(weights_dir), context_length=context_length, clean="canonicalize")
    return open_clip_tokenizer_json(tok, path, clean="canonicalize")


def export_from_hf_dir(spec: ModelSpec, weights_dir: Path, out_dir: Path, **options) -> ModelSpec:
    """Export a NaFlex checkpoint laid out as on the hub (config.json, model.safetensors,
    preprocessor_config.json, tokenizer files) to a model folder."""
    from transformers import Siglip2Model

    weights_dir = Path(weights_dir)
    try:
        model = Siglip2Model.from_pretrained(os.fspath(weights_dir), local_files_only=True)
    except Exception as e:  # transformers raises OSError/ValueError/its own types
        raise ModelError(
            f"{spec.key}: cannot load transformers weights from {weights_dir} ({e})"
        ) from e
    check_preprocessor_config(spec, weights_dir)
    if spec.embed_dim != model.config.vision_config.hidden_size:
        raise ModelError(
            f"{spec.key}: registry embed_dim {spec.embed_dim} vs checkpoint "
            f"{model.config.vision_config.hidden_size}"
        )
    with tempfile.TemporaryDirectory(prefix="photosift-tok-") as d:
        tok = naflex_tokenizer_json(
            weights_dir, Path(d) / "tokenizer.json", spec.tokenizer.context_length
        )
        return export_siglip2_naflex(model, spec, tok, out_dir, **options)


def export_random_image_tower(kind: str, folder: Path, seed: int = 0) -> ModelSpec:
    """A full-size B/16 image tower with random weights, for timing (image.onnx + model.json).

    ``kind`` "naflex": transformers' SigLIP 2 NaFlex B/16 vision tower (the
    ``google/siglip2-base-patch16-naflex`` config); "fixed": open_clip's
    ViT-B-16-SigLIP2-256 (timm ViT, same width 768, depth 12, MLP 3072, MAP
    head) at 256 x 256 px. Random weights cost exactly what trained ones do.
    No text tower: the benchmark times images only.
    """
    import torch

    from engine.models.registry import Registry

    from .openclip import _export_tower, _towers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if kind == "naflex":
        from transformers import Siglip2Config, Siglip2Model

        spec = Registry.load().get("siglip2-b-16-naflex")
        small_text = dict(
            vocab_size=64, hidden_size=768, num_hidden_layers=1, num_attention_heads=12
        )
        model = Siglip2Model(Siglip2Config(text_config=small_text, vision_config={})).eval()
        items = [naflex.preprocess(im, spec.preprocess) for im in parity_photos(seed)[:2]]
        batch = naflex.collate(items, base_grid(model))
        ex = tuple(torch.from_numpy(a) for a in (batch.patches, batch.mask, batch.pos_weights))
        dyn = {n: {0: "batch", 1: "sequence"} for n in IMAGE_INPUTS}
        _export(
            _image_tower(model), ex, list(IMAGE_INPUTS), dyn, folder / "image.onnx", NAFLEX_OPSET
        )
    elif kind == "fixed":
        import open_clip

        from .openclip import random_images

        spec = Registry.load().get("vit-b-16-siglip2-256")
        model = open_clip.create_model(spec.architecture, pretrained=None).eval()
        h, w = spec.preprocess.size
        image_tower, _ = _towers(model)
        ex = torch.from_numpy(random_images(2, h, w, seed))
        _export_tower(
            image_tower, ex, "pixels", folder / "image.onnx", DEFAULT_OPSET, "torchscript"
        )
    else:
        raise ValueError(f"kind must be 'naflex' or 'fixed', not {kind!r}")
    spec = spec.with_(key=f"bench-{kind}-b16", source=spec.source.__class__())
    save_spec(spec, folder / MODEL_FILE)
    return spec
