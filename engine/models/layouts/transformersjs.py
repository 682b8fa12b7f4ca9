"""transformers.js exports on the hub: ``Xenova/<model>`` and ``onnx-community/<model>-ONNX``.

Read from xenova/transformers.js ``scripts/convert.py`` with ``--split_modalities`` and
``scripts/extra/clip.py`` (@f27121d2), ``scripts/extra/siglip.py`` (@ef491fbe):

* files: ``onnx/vision_model.onnx`` and ``onnx/text_model.onnx`` (fp32; ``_fp16``,
  ``_quantized`` ... variants beside them are not fetched), and at the root ``config.json``,
  ``preprocessor_config.json``, ``tokenizer.json``, ``tokenizer_config.json``. A graph too
  big for one protobuf keeps its weights in ``onnx/<graph>.onnx_data`` beside it.
* CLIP (``model_type`` "clip"): ``CLIPVisionModelWithProjection`` ``pixel_values`` ->
  ``image_embeds`` and ``CLIPTextModelWithProjection`` ``input_ids`` -> ``text_embeds``;
  SigLIP (``siglip``, and SigLIP 2 checkpoints with a fixed resolution, also "siglip"):
  ``SiglipVisionModel`` / ``SiglipTextModel``, whose embedding is ``pooler_output`` (the
  MAP head, and the text head over the last token). Ids are int64 (the dummy inputs are
  cast to torch.int64), the text graph takes ``input_ids`` only (no attention mask), every
  axis but the features is dynamic, and nothing is normalised in the graph.
* preprocessing is transformers' image processor, as ``preprocessor_config.json`` says:
  CLIP resizes the short side and centre-crops, SigLIP resizes to a square, no crop.
* text: SigLIP pools the last position, so it must be padded to the full length (64); the
  pad token is tokenizer_config.json's. SigLIP and SigLIP 2 were trained on lower-cased,
  punctuation-free text (open_clip's ``canonicalize``; big_vision issues #186 and #187:
  retrieval drops without it), which transformers' Gemma tokenizer does not do itself.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ...errors import ModelError
from ..registry import ModelSpec, Preprocess, Source, TokenizerSpec
from .base import Graph, Layout, Parts, field, pad_token_of, read_json, unknown_spec

VISION, TEXT = "onnx/vision_model.onnx", "onnx/text_model.onnx"
CONFIGS = ("config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json")
SIGLIP_TYPES = ("siglip", "siglip2")
RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL's numbers, as transformers writes them


class TransformersJsLayout(Layout):
    name = "transformers.js"

    def parts(self, spec: ModelSpec) -> Parts:
        out = (
            ("pooler_output", "pooler_output")
            if spec.family == "siglip"
            else ("image_embeds", "text_embeds")
        )
        return Parts(
            image=Graph(VISION, input="pixel_values", output=out[0]),
            text=Graph(TEXT, input="input_ids", output=out[1], ids_dtype="int64"),
            tokenizer="tokenizer.json",
        )

    def required_files(self, spec: ModelSpec) -> list[str]:
        return [VISION, TEXT, *CONFIGS]

    def _belongs(self, spec: ModelSpec, path: str) -> bool:
        p = PurePosixPath(path)  # external data: onnx/vision_model.onnx_data, ...onnx.data
        return str(p.parent) == "onnx" and any(
            p.name.startswith(g + "_data") or p.name.startswith(g + ".data")
            for g in ("vision_model.onnx", "text_model.onnx")
        )

    @classmethod
    def recognise(cls, folder: Path) -> bool:
        folder = Path(folder)
        return all((folder / f).is_file() for f in ("config.json", "preprocessor_config.json")) \
            and (folder / "onnx").is_dir()  # fmt: skip

    def describe(self, folder: Path, *, key: str, known: ModelSpec | None) -> ModelSpec:
        folder = Path(folder)
        for f in (VISION, TEXT, "tokenizer.json"):
            if not (folder / f).is_file():
                what = (
                    "the image tower"
                    if f == VISION
                    else "the text tower"
                    if f == TEXT
                    else "the tokenizer"
                )
                raise ModelError(f"{folder / f}: missing ({what}; photosift needs the split "
                                 f"vision_model/text_model export)")  # fmt: skip
        cfg = read_json(folder, "config.json")
        where = str(folder / "config.json")
        mtype = field(cfg, "model_type", where, str)
        if mtype == "clip":
            family, embed_dim = "clip", field(cfg, "projection_dim", where, int)
            ctx = field(
                field(cfg, "text_config", where, dict), "max_position_embeddings", where, int
            )
        elif mtype in SIGLIP_TYPES:
            vision = field(cfg, "vision_config", where, dict)
            family, embed_dim = "siglip", field(vision, "hidden_size", where, int)
            ctx = field(
                field(cfg, "text_config", where, dict), "max_position_embeddings", where, int
            )
            if "num_patches" in vision or "max_num_patches" in vision:
                raise ModelError(f"{where}: a SigLIP 2 NaFlex model; photosift runs NaFlex towers "
                                 f"from its own export only")  # fmt: skip
        else:
            raise ModelError(f"{where}: field 'model_type' is {mtype!r}; photosift runs 'clip', "
                             f"'siglip' and 'siglip2' exports")  # fmt: skip
        tok_cfg = read_json(folder, "tokenizer_config.json")
        tokenizer = TokenizerSpec(
            kind="hf", context_length=ctx,
            pad_token=pad_token_of(tok_cfg, str(folder / "tokenizer_config.json")),
            clean="canonicalize" if family == "siglip" else "whitespace",
        )  # fmt: skip
        base = known or unknown_spec(folder, family)
        return base.with_(
            key=key, family=family, embed_dim=embed_dim, recommended=False,
            preprocess=image_processor(read_json(folder, "preprocessor_config.json"),
                                       str(folder / "preprocessor_config.json")),
            tokenizer=tokenizer,
            source=Source(layout=self.name, hf_repo=base.source.hf_repo, revision=base.source.revision),
        )  # fmt: skip


def image_processor(pre: dict, where: str) -> Preprocess:
    """transformers' CLIPImageProcessor / SiglipImageProcessor config as a Preprocess."""
    if (
        pre.get("do_rescale", True)
        and abs(float(pre.get("rescale_factor", 1 / 255)) - 1 / 255) > 1e-9
    ):
        raise ModelError(f"{where}: field 'rescale_factor' must be 1/255")
    if pre.get("do_normalize", True):
        mean = tuple(float(x) for x in field(pre, "image_mean", where, list))
        std = tuple(float(x) for x in field(pre, "image_std", where, list))
        if len(mean) != 3 or len(std) != 3:
            raise ModelError(f"{where}: fields 'image_mean' and 'image_std' must be three numbers")
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    resample = pre.get("resample", 3)
    if resample not in RESAMPLE:
        raise ModelError(f"{where}: field 'resample' is {resample!r}; photosift runs 2 (bilinear) "
                         f"and 3 (bicubic)")  # fmt: skip
    size = field(pre, "size", where, (dict, int))
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if "shortest_edge" in size:
        if not pre.get("do_center_crop", False):
            raise ModelError(f"{where}: a short-side resize without a centre crop is not supported")
        crop = field(pre, "crop_size", where, (dict, int))
        ch, cw = (crop, crop) if isinstance(crop, int) else (crop.get("height"), crop.get("width"))
        if not (ch == cw == size["shortest_edge"]):
            raise ModelError(f"{where}: 'size.shortest_edge' {size['shortest_edge']} and "
                             f"'crop_size' {crop} differ; photosift crops to the resized side")  # fmt: skip
        return Preprocess(size=(ch, cw), mean=mean, std=std, interpolation=RESAMPLE[resample],
                          resize_mode="shortest")  # fmt: skip
    if "height" in size and "width" in size:
        if pre.get("do_center_crop", False):
            raise ModelError(f"{where}: a square resize followed by a centre crop is not supported")
        return Preprocess(size=(int(size["height"]), int(size["width"])), mean=mean, std=std,
                          interpolation=RESAMPLE[resample], resize_mode="squash")  # fmt: skip
    raise ModelError(f"{where}: field 'size' must hold 'shortest_edge' or 'height' and 'width'")
