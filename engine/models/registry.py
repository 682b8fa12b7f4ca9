"""Model registry: models are data.

Each model is described by one JSON file in ``resources/models/``. The same
schema describes a *model folder* on disk (``model.json`` beside the model's
files), which is what the runtime actually loads: a registry entry says where a
model comes from, a model folder is a model that is here.

``source.layout`` says how the files are laid out, and so which adapter of
``engine.models.layouts`` maps them onto the runtime: ``photosift`` (photosift's own
export, below), or a ready ONNX export in the layout its publisher uses
(``rclip``, ``immich``, ``transformers.js``), kept as it comes. A photosift
model folder holds::

    model.json        this schema, plus "logit_scale"/"logit_bias" from the export
    image.onnx        pixels float32 [N, 3, H, W]  -> embeddings float32 [N, D]
    text.onnx         tokens int64 [N, L]          -> embeddings float32 [N, D]
    tokenizer.json    Hugging Face `tokenizers` format
    image.int8.onnx   optional, dynamic int8 quantisation of image.onnx

The runtime L2-normalises every embedding (a no-op for graphs that already do).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ModelError

RESIZE_MODES = ("shortest", "squash", "naflex")
INTERPOLATIONS = ("bicubic", "bilinear")
FAMILIES = ("clip", "siglip")
TOKENIZER_KINDS = ("clip_bpe", "hf")
# open_clip's text cleaning modes (open_clip.tokenizer.get_clean_fn): "lower" is the
# SimpleTokenizer's, "whitespace" HFTokenizer's default, "canonicalize" SigLIP's.
CLEAN_MODES = ("lower", "whitespace", "canonicalize")
LAYOUTS = ("photosift", "rclip", "immich", "transformers.js")

MODEL_FILE = "model.json"


@dataclass(frozen=True)
class Preprocess:
    """How a decoded RGB photo becomes the model's input tensor."""

    size: tuple[int, int]  # (height, width) of the network input; for naflex the patch size is used
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"  # shortest side + centre crop | squash | naflex
    patch_size: int | None = None  # naflex only
    max_patches: int | None = None  # naflex only: default patch budget


@dataclass(frozen=True)
class TokenizerSpec:
    kind: str  # clip_bpe | hf
    context_length: int
    hf_repo: str | None = None  # where the tokenizer lives on the hub, for kind "hf"
    # For a hub tokenizer.json that does not configure its own padding (transformers reads
    # the pad token from tokenizer_config.json): the token to pad to context_length with.
    pad_token: str | None = None
    # Cleaning before the tokenizer (CLEAN_MODES); None: the kind's default ("lower" for
    # clip_bpe, "whitespace" for hf, whose tokenizer.json may carry more in its normaliser).
    clean: str | None = None


@dataclass(frozen=True)
class Source:
    """Where a model comes from."""

    hf_repo: str | None = None  # Hugging Face repo holding the weights
    revision: str | None = None
    open_clip_name: str | None = None  # open_clip architecture name
    open_clip_pretrained: str | None = None  # open_clip pretrained tag
    onnx_repo: str | None = None  # a hub repo holding a ready photosift model folder
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {sha256, size}
    bundled: str | None = None  # path under resources/ for models shipped with the app
    layout: str = "photosift"  # how the files are laid out (LAYOUTS; see engine.models.layouts)
    subfolder: str | None = None  # the folder of the repo the layout reads (rclip: the model's)


@dataclass(frozen=True)
class ModelSpec:
    key: str
    name: str
    family: str  # clip (softmax-trained) | siglip (sigmoid-trained)
    architecture: str
    embed_dim: int
    preprocess: Preprocess
    tokenizer: TokenizerSpec
    source: Source
    license: str
    size_mb: float | None = None
    speed_class: str | None = None  # fast | medium | slow on a laptop CPU
    description: str = ""
    # Models that share an image tower share stored image vectors. A fine-tuned
    # text side keeps its base's image space, so switching needs no re-indexing.
    image_space: str | None = None
    base_model: str | None = None
    logit_scale: float | None = None  # exp() already applied
    logit_bias: float | None = None
    # The probability at or above which a label tags a photo when nothing better is known
    # (no user threshold, no answers, none in the vocabulary), measured for this model; else
    # its family's default (engine.tags.scoring.FAMILY_THRESHOLD).
    tag_threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # metrics, data fingerprint, dates ...
    # The real model to offer a new user first (a registry entry's mark; model folders in the
    # user's models folder never carry it, see engine.models.hub.local_models).
    recommended: bool = False

    @property
    def space(self) -> str:
        """Key under which this model's image vectors are stored."""
        return self.image_space or self.key

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"]["size"] = list(self.preprocess.size)
        if not self.recommended:
            del d["recommended"]  # written only where set
        if d["source"]["layout"] == "photosift":
            del d["source"]["layout"]  # the default: older readers know no other
        d["tokenizer"] = {k: v for k, v in d["tokenizer"].items() if v is not None or k == "hf_repo"}
        return {k: v for k, v in d.items() if v not in (None, {}, "")}

    def with_(self, **changes: Any) -> ModelSpec:
        return replace(self, **changes)


def _need(d: dict[str, Any], key: str, where: str, typ: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise ModelError(f"{where}: missing field '{key}'")
    value = d[key]
    if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
        raise ModelError(f"{where}: field '{key}' has the wrong type ({type(value).__name__})")
    return value


def _triple(d: dict[str, Any], key: str, where: str) -> tuple[float, float, float]:
    v = _need(d, key, where, list)
    if len(v) != 3 or not all(isinstance(x, (int, float)) for x in v):
        raise ModelError(f"{where}: field '{key}' must be three numbers")
    return (float(v[0]), float(v[1]), float(v[2]))


def spec_from_json(d: dict[str, Any], where: str = "model") -> ModelSpec:
    """Validate a registry/model-folder JSON object; errors name the file and field."""
    if not isinstance(d, dict):
        raise ModelError(f"{where}: expected a JSON object")
    key = _need(d, "key", where, str)
    family = _need(d, "family", where, str)
    if family not in FAMILIES:
        raise ModelError(f"{where}: field 'family' must be one of {FAMILIES}, not {family!r}")
    p = _need(d, "preprocess", where, dict)
    pw = f"{where}: preprocess"
    size = _need(p, "size", pw, list)
    if len(size) != 2 or not all(isinstance(x, int) and x > 0 for x in size):
        raise ModelError(f"{pw}: field 'size' must be [height, width] in pixels")
    mode = p.get("resize_mode", "shortest")
    if mode not in RESIZE_MODES:
        raise ModelError(f"{pw}: field 'resize_mode' must be one of {RESIZE_MODES}")
    interp = p.get("interpolation", "bicubic")
    if interp not in INTERPOLATIONS:
        raise ModelError(f"{pw}: field 'interpolation' must be one of {INTERPOLATIONS}")
    if mode == "naflex" and not (p.get("patch_size") and p.get("max_patches")):
        raise ModelError(f"{pw}: naflex needs 'patch_size' and 'max_patches'")
    pre = Preprocess(
        size=(size[0], size[1]),
        mean=_triple(p, "mean", pw),
        std=_triple(p, "std", pw),
        interpolation=interp,
        resize_mode=mode,
        patch_size=p.get("patch_size"),
        max_patches=p.get("max_patches"),
    )
    t = _need(d, "tokenizer", where, dict)
    tw = f"{where}: tokenizer"
    tkind = _need(t, "kind", tw, str)
    if tkind not in TOKENIZER_KINDS:
        raise ModelError(f"{tw}: field 'kind' must be one of {TOKENIZER_KINDS}")
    clean = t.get("clean")
    if clean is not None and clean not in CLEAN_MODES:
        raise ModelError(f"{tw}: field 'clean' must be one of {CLEAN_MODES}, not {clean!r}")
    pad_token = t.get("pad_token")
    if pad_token is not None and not isinstance(pad_token, str):
        raise ModelError(f"{tw}: field 'pad_token' must be a string")
    tok = TokenizerSpec(
        kind=tkind,
        context_length=_need(t, "context_length", tw, int),
        hf_repo=t.get("hf_repo"),
        pad_token=pad_token,
        clean=clean,
    )
    s = d.get("source", {})
    if not isinstance(s, dict):
        raise ModelError(f"{where}: field 'source' must be an object")
    src = Source(**{k: v for k, v in s.items() if k in Source.__dataclass_fields__})
    if src.layout not in LAYOUTS:
        raise ModelError(f"{where}: source: field 'layout' must be one of {LAYOUTS}, not {src.layout!r}")
    recommended = d.get("recommended", False)
    if not isinstance(recommended, bool):
        raise ModelError(f"{where}: field 'recommended' must be true or false")
    tag_threshold = d.get("tag_threshold")
    if tag_threshold is not None and (
        not isinstance(tag_threshold, (int, float))
        or isinstance(tag_threshold, bool)
        or not 0 < tag_threshold < 1
    ):
        raise ModelError(f"{where}: field 'tag_threshold' must be a probability between 0 and 1")
    known = set(ModelSpec.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ModelError(f"{where}: unknown field(s) {sorted(unknown)}")
    return ModelSpec(
        key=key,
        name=_need(d, "name", where, str),
        family=family,
        architecture=_need(d, "architecture", where, str),
        embed_dim=_need(d, "embed_dim", where, int),
        preprocess=pre,
        tokenizer=tok,
        source=src,
        license=_need(d, "license", where, str),
        size_mb=d.get("size_mb"),
        speed_class=d.get("speed_class"),
        description=d.get("description", ""),
        image_space=d.get("image_space"),
        base_model=d.get("base_model"),
        logit_scale=d.get("logit_scale"),
        logit_bias=d.get("logit_bias"),
        tag_threshold=None if tag_threshold is None else float(tag_threshold),
        extra=d.get("extra", {}),
        recommended=recommended,
    )


def load_spec(path: Path) -> ModelSpec:
    """Read one model JSON file (a registry entry or a model folder's model.json)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelError(f"{path}: no such model file") from e
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    return spec_from_json(data, where=str(path))


def save_spec(spec: ModelSpec, path: Path) -> None:
    """Write a spec atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(spec.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    tmp.replace(path)


def resources_dir() -> Path:
    """The resources/ folder, in a source checkout, an installed tree or a frozen bundle."""
    import sys

    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"  # engine/models/registry.py


class Registry:
    """All known models: the bundled registry plus models the user imported or trained."""

    def __init__(self, specs: dict[str, ModelSpec]):
        self._specs = dict(specs)

    @classmethod
    def load(cls, *dirs: Path) -> Registry:
        specs: dict[str, ModelSpec] = {}
        for d in dirs or (resources_dir() / "models",):
            for f in sorted(Path(d).glob("*.json")):
                spec = load_spec(f)
                if spec.key in specs:
                    raise ModelError(f"{f}: model key {spec.key!r} is defined twice")
                specs[spec.key] = spec
        return cls(specs)

    def get(self, key: str) -> ModelSpec:
        try:
            return self._specs[key]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            raise ModelError(f"unknown model {key!r}; known models: {known}") from None

    def add(self, spec: ModelSpec) -> None:
        self._specs[spec.key] = spec

    def __iter__(self):
        return iter(sorted(self._specs.values(), key=lambda s: s.key))

    def __contains__(self, key: str) -> bool:
        return key in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def recommended(self) -> ModelSpec | None:
        """The model to offer a new user first, or None; two marked ones are an error."""
        marked = [s for s in self if s.recommended]
        if len(marked) > 1:
            raise ModelError(
                f"more than one model is marked recommended: {[s.key for s in marked]}"
            )
        return marked[0] if marked else None


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 4 MB chunks (model files run to gigabytes)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()
