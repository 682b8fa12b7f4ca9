"""Tiny random models laid out exactly as the hub's publishers lay out theirs.

photosift runs three publishers' ready ONNX exports (engine.models.layouts). No hub is reachable
from the machines this is built on, so tests and benchmarks make models in those layouts
themselves, each by re-implementing its publisher's exporter from the published code:

``export_rclip``            yurijmikhalevich/rclip ``scripts/convert_model.py``
``export_immich``           immich-app/immich ``machine-learning/export/immich_model_exporter/
                            exporters/onnx/models/openclip.py`` (+ ``export.py``, ``constants.py``)
``export_transformersjs``   xenova/transformers.js ``scripts/convert.py --split_modalities`` with
                            ``scripts/extra/clip.py`` and ``scripts/extra/siglip.py`` (optimum's
                            ONNX configs: names, dynamic axes, int64 ids, opset 14)

The tokenizers are made the way their hub files were made: CLIP's from the real CLIP BPE
merges through transformers' ``CLIPTokenizer``; an XLM-RoBERTa one from a SentencePiece
unigram model through transformers' ``XLMRobertaConverter`` (how ``xlm-roberta-base``'s
tokenizer.json came to be); a Gemma-shaped one for SigLIP 2 (``training.testmodels.tiny``). Each is
saved by transformers' ``save_pretrained``, as the exporters save theirs.

Sizes are tiny (width 32, one layer, 32 px images) so a test builds one in about a second;
``full_size=True`` where offered builds the real architecture with random weights, which
times exactly like the real model (benchmarks).
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# Queries in the languages the multilingual models are asked in, and English: the corpus of
# the tiny SentencePiece models (so their pieces are real sub-words of these languages).
MULTILINGUAL = [
    "a photo of a cat sleeping on the red sofa",
    "two dogs playing in the snow at the beach",
    "Ein Hund spielt im Schnee am Strand",
    "Kinder auf einer roten Rutsche bei Sonnenuntergang",
    "Eine Katze schläft auf dem Sofa, draußen regnet es",
    "Une photo d'un chat qui dort sur le canapé rouge",
    "des enfants sur un toboggan rouge au crépuscule",
    "Un gâteau d'anniversaire avec des bougies et des ballons",
    "海辺で遊ぶ犬の写真",
    "猫がソファの上で寝ている",
    "夕暮れの赤い滑り台の子供たち",
    "一只猫坐在红色的沙发上",
    "孩子们在公园里玩雪",
    "夜晚城市的天际线倒映在河里",
]


# -- tokenizers, as their hub repos hold them -------------------------------------------------


def clip_tokenizer_dir(out: Path) -> Path:
    """openai/clip-vit-base-patch32's tokenizer files: the CLIP BPE (vocab and merges of
    open_clip's ``bpe_simple_vocab_16e6.txt.gz``) as transformers' CLIPTokenizer, saved."""
    import gzip

    from transformers import CLIPTokenizer

    from engine.models.clip_bpe import N_MERGES, bytes_to_unicode, open_clip_bpe_path

    with gzip.open(open_clip_bpe_path()) as f:
        lines = f.read().decode("utf-8").split("\n")[1 : N_MERGES + 1]
    merges = [tuple(m.split()) for m in lines]
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges)
    tok.save_pretrained(os.fspath(out))
    return Path(out)


class _SlowStandIn:
    """What transformers' slow-to-fast converters read of a slow tokenizer."""

    def __init__(self, vocab_file: str, ids: dict[str, int], **attrs: Any):
        self.vocab_file, self._ids = vocab_file, ids
        self.__dict__.update(attrs)

    def convert_tokens_to_ids(self, token: str) -> int:
        return self._ids[token]


def xlmr_tokenizer_dir(out: Path, corpus: list[str] | None = None) -> Path:
    """An XLM-RoBERTa tokenizer (SentencePiece unigram; ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
    ``<unk>`` 3, fairseq offset) made as xlm-roberta-base's tokenizer.json was: a
    SentencePiece model converted by transformers' XLMRobertaConverter, saved."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer
    from transformers.convert_slow_tokenizer import XLMRobertaConverter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = out / "corpus.txt"
    text.write_text("\n".join((corpus or MULTILINGUAL) * 8), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=os.fspath(text), model_prefix=os.fspath(out / "sentencepiece.bpe"),
        vocab_size=600, hard_vocab_limit=False, model_type="unigram",
        character_coverage=1.0, bos_id=0, pad_id=-1, eos_id=2, unk_id=1, minloglevel=2,
    )  # fmt: skip
    ids = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    fast = XLMRobertaConverter(
        _SlowStandIn(os.fspath(out / "sentencepiece.bpe.model"), ids, handle_byte_fallback=False)
    ).converted()
    XLMRobertaTokenizer(tokenizer_object=fast).save_pretrained(os.fspath(out))
    text.unlink()
    (out / "sentencepiece.bpe.vocab").unlink(missing_ok=True)
    return out


def gemma_tokenizer_dir(out: Path) -> Path:
    """A Gemma-shaped tokenizer (SigLIP 2's: BPE with byte fallback, ``<pad>`` 0, ``<eos>``
    appended), saved by transformers' ``save_pretrained`` as Immich's exporter does."""
    from transformers import AutoTokenizer

    from .tiny import write_tiny_hf_tokenizer_repo

    src = write_tiny_hf_tokenizer_repo(Path(out).with_name(Path(out).name + "-src"))
    AutoTokenizer.from_pretrained(os.fspath(src)).save_pretrained(os.fspath(out))
    return Path(out)


# -- rclip -------------------------------------------------------------------------------------

RCLIP_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"


def export_rclip(model: Any, out: Path, *, subfolder: str = RCLIP_SUBDIR) -> Path:
    """rclip's ``scripts/convert_model.py``: ``model.visual(x)`` and ``model.encode_text(x)``
    exported with input ``input``, output ``output``, a dynamic batch axis, opset 18, the
    TorchScript exporter; the BPE merges copied to ``tokenizer/``; licence files at the root."""
    import shutil

    import torch

    from engine.models.clip_bpe import open_clip_bpe_path

    out = Path(out)
    model_dir = out / subfolder
    model_dir.mkdir(parents=True, exist_ok=True)
    image_size = _image_size(model)

    class Visual(torch.nn.Module):
        def __init__(self, visual):
            super().__init__()
            self.visual = visual

        def forward(self, x):
            return self.visual(x)

    class Textual(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip_model = clip

        def forward(self, x):
            return self.clip_model.encode_text(x)

    ctx = int(model.context_length)
    _torchscript(Visual(model.visual).eval(), torch.randn(1, 3, image_size, image_size),
                 model_dir / "visual.onnx", "input", "output", {0: "batch"}, 18)  # fmt: skip
    _torchscript(Textual(model).eval(), torch.zeros(1, ctx, dtype=torch.long),
                 model_dir / "textual.onnx", "input", "output", {0: "batch"}, 18)  # fmt: skip
    (out / "tokenizer").mkdir(exist_ok=True)
    shutil.copy2(open_clip_bpe_path(), out / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz")
    for name in ("LICENSE", "OPENAI-CLIP-MIT.txt", "README.md", "THIRD_PARTY_NOTICES.md"):
        (out / name).write_text(f"{name}: test fixture (rclip-models ships its licences here)\n")
    return out


# -- Immich ------------------------------------------------------------------------------------


def export_immich(
    model: Any,
    model_cfg: dict[str, Any],
    tokenizer_source: Path,
    out: Path,
    *,
    opset: int = 19,
    external_data: str | None = None,
) -> Path:
    """Immich's ``exporters/onnx/models/openclip.py``.

    ``config.json`` = the open_clip model config; ``visual/preprocess_cfg.json`` =
    ``open_clip.get_model_preprocess_cfg(model)``; ``textual/`` = ``AutoTokenizer
    .from_pretrained(tokenizer).save_pretrained(textual/)``; the towers are
    ``encode_image(image, normalize=True)`` -> ``visual/model.onnx`` (input ``image``
    [1, 3, S, S], output ``embedding``) and ``encode_text(text, normalize=True)`` ->
    ``textual/model.onnx`` (input ``text`` int32 [1, ctx]), batch fixed to 1, opset 19.

    ``external_data`` lays the weights out as the big repos do: ``"uuid"``, one UUID-named
    file beside model.onnx (the newer uploads), or ``"tensors"``, one file per tensor named
    after it (torch's >2 GB export, as the older uploads hold them).
    """
    import open_clip
    import torch
    from transformers import AutoTokenizer

    out = Path(out)
    visual_dir, textual_dir = out / "visual", out / "textual"
    visual_dir.mkdir(parents=True, exist_ok=True)
    textual_dir.mkdir(parents=True, exist_ok=True)
    (visual_dir / "preprocess_cfg.json").write_text(
        json.dumps(open_clip.get_model_preprocess_cfg(model))
    )
    (out / "config.json").write_text(json.dumps(model_cfg))
    AutoTokenizer.from_pretrained(os.fspath(tokenizer_source)).save_pretrained(
        os.fspath(textual_dir)
    )
    image_size = model_cfg["vision_cfg"]["image_size"]
    ctx = model_cfg["text_cfg"].get("context_length", 77)

    class EncodeImage(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image):
            return self.m.encode_image(image, normalize=True)

    class EncodeText(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, text):
            return self.m.encode_text(text, normalize=True)

    torch.backends.mha.set_fastpath_enabled(False)
    try:
        _torchscript(EncodeImage(model).eval(), torch.randn(1, 3, image_size, image_size),
                     visual_dir / "model.onnx", "image", "embedding", None, opset)  # fmt: skip
        _torchscript(EncodeText(model).eval(), torch.ones(1, ctx, dtype=torch.int32),
                     textual_dir / "model.onnx", "text", "embedding", None, opset)  # fmt: skip
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    if external_data:
        for d in (visual_dir, textual_dir):
            _to_external_data(d / "model.onnx", external_data)
    (out / "README.md").write_text("# Model Description\n\nThis repo contains ONNX exports for the "
                                   "associated CLIP model by OpenCLIP. (test fixture)\n")  # fmt: skip
    return out


def _to_external_data(graph: Path, how: str) -> None:
    import onnx

    model = onnx.load(os.fspath(graph))
    if how == "uuid":
        onnx.save_model(model, os.fspath(graph), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=str(uuid.uuid1()), size_threshold=0)  # fmt: skip
    elif how == "tensors":
        onnx.save_model(model, os.fspath(graph), save_as_external_data=True,
                        all_tensors_to_one_file=False, size_threshold=0)  # fmt: skip
    else:
        raise ValueError(f"external_data must be 'uuid' or 'tensors', not {how!r}")


# -- transformers.js ---------------------------------------------------------------------------


def export_transformersjs(
    hf_model: Any, tokenizer_source: Path, out: Path, *, external_data: bool = False
) -> Path:
    """transformers.js's ``scripts/convert.py --split_modalities`` for a transformers
    ``CLIPModel`` or ``SiglipModel``: ``onnx/vision_model.onnx`` (``pixel_values`` ->
    ``image_embeds``; SigLIP: ``last_hidden_state``, ``pooler_output``) and
    ``onnx/text_model.onnx`` (``input_ids`` int64 -> ``text_embeds``; SigLIP:
    ``last_hidden_state``, ``pooler_output``), every axis but the features dynamic, opset 14
    (optimum's default for these configs), the TorchScript exporter optimum drove; the
    model's config.json, its image processor's preprocessor_config.json and the tokenizer's
    files at the root. ``external_data`` keeps the weights in ``onnx/<graph>.onnx_data``."""
    import torch
    from transformers import AutoTokenizer

    out = Path(out)
    onnx_dir = out / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    cfg = hf_model.config
    hf_model.config.save_pretrained(os.fspath(out))
    _image_processor(cfg).save_pretrained(os.fspath(out))
    AutoTokenizer.from_pretrained(os.fspath(tokenizer_source)).save_pretrained(os.fspath(out))
    siglip = cfg.model_type in ("siglip", "siglip2")
    size = cfg.vision_config.image_size

    class Vision(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            if siglip:
                o = self.m.vision_model(pixel_values=pixel_values)
                return o.last_hidden_state, o.pooler_output
            return self.m.visual_projection(
                self.m.vision_model(pixel_values=pixel_values).pooler_output
            )

    class Text(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            if siglip:
                o = self.m.text_model(input_ids=input_ids)
                return o.last_hidden_state, o.pooler_output
            return self.m.text_projection(self.m.text_model(input_ids=input_ids).pooler_output)

    v_out = ["last_hidden_state", "pooler_output"] if siglip else ["image_embeds"]
    t_out = ["last_hidden_state", "pooler_output"] if siglip else ["text_embeds"]
    ctx = cfg.text_config.max_position_embeddings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Vision(hf_model).eval(), (torch.randn(1, 3, size, size),), os.fspath(onnx_dir / "vision_model.onnx"),
            input_names=["pixel_values"], output_names=v_out,
            dynamic_axes={"pixel_values": {0: "batch_size", 1: "num_channels", 2: "height", 3: "width"},
                          **{o: {0: "batch_size"} for o in v_out}},
            opset_version=14, do_constant_folding=True, dynamo=False,
        )  # fmt: skip
        torch.onnx.export(
            Text(hf_model).eval(), (torch.ones(1, ctx, dtype=torch.int64),), os.fspath(onnx_dir / "text_model.onnx"),
            input_names=["input_ids"], output_names=t_out,
            dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                          **{o: {0: "batch_size"} for o in t_out}},
            opset_version=14, do_constant_folding=True, dynamo=False,
        )  # fmt: skip
    if external_data:
        import onnx

        for name in ("vision_model.onnx", "text_model.onnx"):
            path = onnx_dir / name
            onnx.save_model(onnx.load(os.fspath(path)), os.fspath(path), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=f"{name}_data", size_threshold=0)  # fmt: skip
    return out


def _image_processor(cfg: Any):
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    size = cfg.vision_config.image_size
    if cfg.model_type == "clip":
        return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                  resample=3, image_mean=list(OPENAI_MEAN), image_std=list(OPENAI_STD))  # fmt: skip
    return SiglipImageProcessor(size={"height": size, "width": size}, resample=2,
                                image_mean=[0.5] * 3, image_std=[0.5] * 3)  # fmt: skip


# -- tiny models ---------------------------------------------------------------------------------


def tiny_hf_clip(seed: int = 0, image_size: int = 32):
    """A tiny transformers CLIPModel on the real CLIP vocabulary (49,408 tokens)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406,
                         eos_token_id=49407, pad_token_id=49407, **small),
        vision_config=dict(image_size=image_size, patch_size=8, **small),
        projection_dim=32,
    )  # fmt: skip
    return CLIPModel(cfg).eval()


def tiny_hf_siglip(vocab_size: int, seed: int = 0, image_size: int = 32):
    """A tiny transformers SiglipModel (64-token text, MAP-pooled vision)."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(seed)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cfg = SiglipConfig(
        text_config=dict(vocab_size=vocab_size, max_position_embeddings=64, **small),
        vision_config=dict(image_size=image_size, patch_size=8, **small),
    )
    return SiglipModel(cfg).eval()


def tiny_open_clip_xlmr(tokenizer_dir: Path, workdir: Path, seed: int = 0):
    """A tiny open_clip ``xlm-roberta-base-ViT-B-32``: a ViT and an XLM-RoBERTa text tower
    (open_clip's HFTextEncoder, mean pooling), on ``tokenizer_dir``'s vocabulary. Returns
    (model, the open_clip model config as Immich's config.json holds it)."""
    import open_clip
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig

    from .tiny import _perturb

    tok = AutoTokenizer.from_pretrained(os.fspath(tokenizer_dir))
    hf_dir = Path(workdir) / "xlmr-config"
    XLMRobertaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=80, pad_token_id=tok.pad_token_id,
        bos_token_id=0, eos_token_id=2, type_vocab_size=1,
    ).save_pretrained(os.fspath(hf_dir))  # fmt: skip
    cfg = dict(open_clip.get_model_config("xlm-roberta-base-ViT-B-32"))
    cfg.update(
        embed_dim=32,
        vision_cfg=dict(image_size=32, layers=1, width=32, head_width=16, patch_size=8),
        text_cfg=dict(cfg["text_cfg"], hf_model_name=os.fspath(hf_dir), hf_tokenizer_name=os.fspath(tokenizer_dir),
                      hf_model_pretrained=False),
    )  # fmt: skip
    torch.manual_seed(seed)
    model = open_clip.create_model("xlm-roberta-base-ViT-B-32", pretrained=None, **cfg)
    _perturb(model, seed)
    open_clip.set_model_preprocess_cfg(model, dict(size=32, mode="RGB", mean=OPENAI_MEAN, std=OPENAI_STD,
                                                   interpolation="bicubic", resize_mode="shortest", fill_color=0))  # fmt: skip
    return model.eval(), cfg


def open_clip_cfg(tiny: Any) -> dict[str, Any]:
    """A training.testmodels.tiny model's open_clip config, as ``open_clip.get_model_config`` would give it."""
    import open_clip

    from .tiny import REAL, _shrunk_cfg, _text_vocab

    name, _ = REAL[tiny.family]
    cfg = dict(open_clip.get_model_config(name))
    cfg.update(_shrunk_cfg(tiny.family, _text_vocab(tiny)))
    return cfg


def set_pretrained_preprocess(tiny: Any) -> None:
    """The preprocess config open_clip.create_model(pretrained=...) gives the real model."""
    import open_clip

    p = tiny.spec.preprocess
    open_clip.set_model_preprocess_cfg(tiny.model, dict(
        size=p.size[0], mode="RGB", mean=p.mean, std=p.std, interpolation=p.interpolation,
        resize_mode=p.resize_mode, fill_color=0,
    ))  # fmt: skip


def _image_size(model: Any) -> int:
    size = model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def _torchscript(
    module, example, path: Path, in_name: str, out_name: str, batch_axis, opset: int
) -> None:
    import torch

    axes = None if batch_axis is None else {in_name: batch_axis, out_name: batch_axis}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), os.fspath(path), input_names=[in_name],
                          output_names=[out_name], dynamic_axes=axes, opset_version=opset,
                          dynamo=False)  # fmt: skip


def export_full_size(layout: str, open_clip_name: str, workdir: Path, seed: int = 0) -> Path:
    """A full-size random-weight model of ``open_clip_name`` in ``layout``, for benchmarks (it
    times exactly like the trained model); transformers.js exports transformers' CLIPModel of
    the same shape (its default config is OpenAI's ViT-B/32). Returns the repo folder."""
    import open_clip
    import torch

    workdir = Path(workdir)
    repo = workdir / "repo"
    torch.manual_seed(seed)
    if layout == "transformers.js":
        from transformers import CLIPConfig, CLIPModel

        export_transformersjs(CLIPModel(CLIPConfig()).eval(), clip_tokenizer_dir(workdir / "tok"), repo)
        return repo
    model = open_clip.create_model(open_clip_name, pretrained=None).eval()
    if layout == "rclip":
        return export_rclip(model, repo)
    if layout == "immich":
        cfg = open_clip.get_model_config(open_clip_name)
        return export_immich(model, cfg, clip_tokenizer_dir(workdir / "tok"), repo)
    raise ValueError(f"no full-size export for layout {layout!r}")
