"""A photosift model folder: the files it holds, checking that it runs, pinning its files.

A folder is ``model.json`` beside the towers and the tokenizer (``MODEL_FOLDER_FILES``, or a
hub layout's own paths, see engine.models.layouts). Whoever makes or copies one in (a
download, an import, a conversion, a hub-layout install) runs it once with a tiny input and
records every file's sha256, so that the runtime refuses a file that changes later.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from .registry import MODEL_FILE, ModelSpec, load_spec, save_spec
from .registry import file_sha256 as _sha256

MODEL_FOLDER_FILES = ("model.json", "image.onnx", "text.onnx", "tokenizer.json")


def check_model_folder(folder: Path) -> None:
    """Load both towers and run one tiny input through each; raise ModelError if anything is off."""
    import numpy as np

    from .runtime import OnnxModel

    model = OnnxModel(folder, prefer_cpu=True)
    h, w = model.input_size
    if model.spec.preprocess.resize_mode != "naflex":
        v = model.encode_images(np.zeros((1, 3, h, w), dtype=np.float32))
        if v.shape != (1, model.spec.embed_dim) or not np.isfinite(v).all():
            raise ModelError(f"{folder}: image tower gives {v.shape} / non-finite vectors")
    else:
        from PIL import Image

        v = model.encode_images([model.preprocess(Image.new("RGB", (w, h // 2), (128, 128, 128)))])
        if v.shape != (1, model.spec.embed_dim) or not np.isfinite(v).all():
            raise ModelError(f"{folder}: NaFlex image tower gives {v.shape} / non-finite vectors")
    t = model.encode_texts(["a photo"])
    if t.shape != (1, model.spec.embed_dim) or not np.isfinite(t).all():
        raise ModelError(f"{folder}: text tower gives {t.shape} / non-finite vectors")


def record_hashes(folder: Path, download: dict | None = None) -> ModelSpec:
    """Store the sha256 and size of each file of a model folder in its model.json (trust on
    first use: call it right after the folder was made or checked), so that the runtime
    refuses a file that changes later. ``download`` (repo, revision and the checked hashes of
    the files the folder was converted from) is kept in ``extra["download"]``: a repo's
    tokenizer.json is not the converted folder's, so they cannot share ``source.files``."""
    spec = load_spec(folder / MODEL_FILE)
    files = {f: v for f, v in spec.source.files.items()
             if f not in MODEL_FOLDER_FILES and isinstance(v, dict) and v.get("sha256")}  # fmt: skip
    for f in MODEL_FOLDER_FILES[1:]:
        if (folder / f).is_file():
            files[f] = {"sha256": _sha256(folder / f), "size": (folder / f).stat().st_size}
    if download is not None:
        spec = spec.with_(extra={**spec.extra, "download": download})
    spec = spec.with_(source=spec.source.__class__(**{**spec.source.__dict__, "files": files}))
    save_spec(spec, folder / MODEL_FILE)
    return spec
