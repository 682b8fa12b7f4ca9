"""Immich's model repos, ``immich-app/<open_clip arch>__<pretrained tag>``.

Read from immich-app/immich, ``machine-learning/``:

* exporter ``export/immich_model_exporter/exporters/onnx/models/openclip.py``: the root
  ``config.json`` is ``open_clip.get_model_config(name)`` (embed_dim, vision_cfg, text_cfg);
  ``visual/preprocess_cfg.json`` is ``open_clip.get_model_preprocess_cfg(model)`` (size,
  mode, mean, std, interpolation, resize_mode, fill_color); ``textual/`` holds what
  ``AutoTokenizer.from_pretrained(text_cfg.hf_tokenizer_name).save_pretrained`` writes
  (tokenizer.json, tokenizer_config.json, ...). The graphs are ``visual/model.onnx``:
  ``image`` float32 [1, 3, S, S] -> ``embedding`` [1, D] from ``encode_image(normalize=True)``,
  and ``textual/model.onnx``: ``text`` **int32** [1, ctx] -> ``embedding`` from
  ``encode_text(normalize=True)``; both are **fixed to batch 1** (``dynamic_axes`` is
  commented out) and L2-normalised in the graph; opset 19 (``exporters/onnx/__init__.py``).
* ``exporters/constants.py`` ``DELETE_PATTERNS``: what an export writes beside
  ``model.onnx`` when a tower is too big for one protobuf (torch's external-data files:
  ``Constant*``, ``*.weight``, ``*.bias``, UUID-named blobs, ``*onnx*``...). Such files are
  fetched with their graph; ``*.armnn`` and ``*.rknn`` (other runtimes) and the ``rknpu/``
  folders never are (``immich_ml/models/base.py`` ignores them too).
* client ``immich_ml/models/clip/textual.py``: ``Tokenizer.from_file(textual/tokenizer.json)``,
  padded with ``tokenizer_config.json``'s ``pad_token`` and truncated to
  ``text_cfg.context_length`` (77 when absent); text cleaned with ``clean_text``, which for
  ``text_cfg.tokenizer_kwargs.clean == "canonicalize"`` (every SigLIP config) also strips
  punctuation and lower-cases. Both are data of the spec here (``tokenizer.pad_token``,
  ``tokenizer.clean``).

Preprocessing follows ``preprocess_cfg.json``, ``resize_mode`` included: ``squash`` for all
SigLIP models, as open_clip evaluates them and as big_vision trained them (a square resize,
no crop). Immich's client long ignored ``resize_mode`` and centre-cropped every model
(``clip/visual.py`` before commit 0538dd7a; immich-apple-silicon PR #122 reported it); its
newer client reads ``resize_mode`` too. A crop would cut the edges off every photo the model
was trained to see whole, so photosift does what the model was made with.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path, PurePosixPath

from ...errors import ModelError
from ..registry import ModelSpec, Preprocess, Source, TokenizerSpec
from .base import Graph, Layout, Parts, field, pad_token_of, read_json, unknown_spec

VISUAL, TEXTUAL = "visual/model.onnx", "textual/model.onnx"
CONFIGS = ("config.json", "visual/preprocess_cfg.json", "textual/tokenizer.json",
           "textual/tokenizer_config.json")  # fmt: skip
# exporters/constants.py DELETE_PATTERNS, the files an export writes beside model.onnx.
_UUID = "[a-fA-F0-9]" * 8 + "-" + "[a-fA-F0-9]" * 4 + "-" + "[a-fA-F0-9]" * 4 + "-" \
        + "[a-fA-F0-9]" * 4 + "-" + "[a-fA-F0-9]" * 12  # fmt: skip
DATA_PATTERNS = ("*onnx*", "Constant*", "*.weight", "*.bias", "*.proj", "*in_proj_bias", "*.npy",
                 "*.latent", "*.pos_embed", _UUID)  # fmt: skip
OTHER_RUNTIMES = ("*.armnn", "*.rknn")


class ImmichLayout(Layout):
    name = "immich"

    def parts(self, spec: ModelSpec) -> Parts:
        return Parts(
            image=Graph(VISUAL, input="image", output="embedding", batch=1, normalized=True),
            text=Graph(
                TEXTUAL,
                input="text",
                output="embedding",
                ids_dtype="int32",
                batch=1,
                normalized=True,
            ),  # fmt: skip
            tokenizer="textual/tokenizer.json",
        )

    def required_files(self, spec: ModelSpec) -> list[str]:
        return [VISUAL, TEXTUAL, *CONFIGS]

    def _belongs(self, spec: ModelSpec, path: str) -> bool:
        p = PurePosixPath(path)
        if str(p.parent) not in ("visual", "textual"):  # rknpu/<soc>/... and the rest
            return False
        if any(fnmatch.fnmatchcase(p.name, pat) for pat in OTHER_RUNTIMES):
            return False
        return any(fnmatch.fnmatchcase(p.name, pat) for pat in DATA_PATTERNS)

    @classmethod
    def recognise(cls, folder: Path) -> bool:
        folder = Path(folder)
        return all((folder / f).is_file() for f in ("config.json", VISUAL, TEXTUAL))

    def describe(self, folder: Path, *, key: str, known: ModelSpec | None) -> ModelSpec:
        folder = Path(folder)
        cfg = read_json(folder, "config.json")
        where = str(folder / "config.json")
        text_cfg = field(cfg, "text_cfg", where, dict)
        embed_dim = field(cfg, "embed_dim", where, int)
        pre = read_json(folder, "visual/preprocess_cfg.json")
        tok_cfg = read_json(folder, "textual/tokenizer_config.json")
        if not (folder / "textual/tokenizer.json").is_file():
            raise ModelError(
                f"{folder / 'textual/tokenizer.json'}: missing (the text tower's tokenizer)"
            )
        clean = (text_cfg.get("tokenizer_kwargs") or {}).get("clean")
        tokenizer = TokenizerSpec(
            kind="hf",
            context_length=int(text_cfg.get("context_length", 77)),
            pad_token=pad_token_of(tok_cfg, str(folder / "textual/tokenizer_config.json")),
            clean="canonicalize" if clean == "canonicalize" else "whitespace",
        )
        # open_clip's SigLIP configs carry init_logit_bias; no CLIP config does.
        family = "siglip" if "init_logit_bias" in cfg else "clip"
        base = known or unknown_spec(folder, family)
        return base.with_(
            key=key, family=family, embed_dim=embed_dim, recommended=False,
            preprocess=open_clip_preprocess(pre, str(folder / "visual/preprocess_cfg.json")),
            tokenizer=tokenizer,
            source=Source(layout=self.name, hf_repo=base.source.hf_repo or f"immich-app/{folder.name}",
                          revision=base.source.revision),
        )  # fmt: skip


def open_clip_preprocess(pre: dict, where: str) -> Preprocess:
    """open_clip's preprocess config (get_model_preprocess_cfg) as photosift's Preprocess."""
    size = field(pre, "size", where, (int, list))
    if isinstance(size, int):
        size = [size, size]
    if len(size) != 2 or not all(isinstance(x, int) and x > 0 for x in size):
        raise ModelError(f"{where}: field 'size' must be a size in pixels or [height, width]")
    mode = pre.get("resize_mode", "shortest")  # open_clip's default for older configs
    if mode not in ("shortest", "squash"):
        raise ModelError(f"{where}: field 'resize_mode' is {mode!r}; photosift runs 'shortest' "
                         f"and 'squash'")  # fmt: skip
    interp = pre.get("interpolation", "bicubic")
    if interp not in ("bicubic", "bilinear"):
        raise ModelError(f"{where}: field 'interpolation' is {interp!r}; photosift runs 'bicubic' "
                         f"and 'bilinear'")  # fmt: skip
    triple = {}
    for k in ("mean", "std"):
        v = field(pre, k, where, list)
        if len(v) != 3 or not all(isinstance(x, (int, float)) for x in v):
            raise ModelError(f"{where}: field '{k}' must be three numbers")
        triple[k] = tuple(float(x) for x in v)
    return Preprocess(size=(size[0], size[1]), mean=triple["mean"], std=triple["std"],
                      interpolation=interp, resize_mode=mode)  # fmt: skip
