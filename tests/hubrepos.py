"""Tiny models in each hub layout, for the tests that download, import and run them.

Each repo is made by training.testmodels.hub_layouts (a re-implementation of its publisher's exporter)
from a tiny random model, with the files a real repo holds beside the model that photosift
must *not* fetch (other runtimes' graphs, fp16 and int8 variants, CoreML packages). Building
one takes about a second; ``build`` caches them under a folder for a test session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models.registry import ModelSpec, Source

REPOS = {  # name -> (hub repo, layout)
    "rclip": ("yurijmikhalevich/rclip-models", "rclip"),
    "immich-clip": ("immich-app/ViT-B-32__openai", "immich"),
    "immich-siglip2": ("immich-app/ViT-B-16-SigLIP2__webli", "immich"),
    "immich-siglip2-external": ("immich-app/ViT-SO400M-14-SigLIP2-378__webli", "immich"),
    "immich-xlmr": ("immich-app/XLM-Roberta-Base-ViT-B-32__laion5b_s13b_b90k", "immich"),
    "tfjs-clip": ("Xenova/clip-vit-base-patch32", "transformers.js"),
    "tfjs-siglip": ("onnx-community/siglip2-base-patch16-256-ONNX", "transformers.js"),
}
# Files a real repo of each layout holds that no ONNX Runtime user needs (name -> bytes).
DECOYS = {
    "rclip": {"ViT-B-32-256-datacomp_s34b_b86k/visual.mlpackage/Manifest.json": b"{}",
              "ViT-B-32-256-datacomp_s34b_b86k/visual.mlpackage/Data/weights.bin": b"\0" * 2048},
    "immich": {"visual/model.armnn": b"\1" * 1024, "textual/model.armnn": b"\2" * 1024,
               "visual/rknpu/rk3588/model.rknn": b"\3" * 512, ".gitattributes": b"*.onnx filter=lfs\n"},
    "transformers.js": {"onnx/vision_model_fp16.onnx": b"\4" * 1024, "onnx/text_model_quantized.onnx": b"\5" * 1024,
                        "onnx/model.onnx": b"\6" * 1024, "quantize_config.json": b"{}"},
}  # fmt: skip


@dataclass
class HubRepo:
    name: str
    repo: str  # the hub repo id
    folder: Path  # the repo's files, as `hf download REPO --local-dir` leaves them
    spec: ModelSpec  # a registry entry for it (what resources/models/*.json holds for real ones)
    reference: tuple[str, Any]  # ("open_clip" | "transformers", the torch model)


def build(name: str, root: Path) -> HubRepo:
    """Make repo ``name`` (see REPOS) under ``root``, or reuse the one made there before."""
    root = Path(root)
    cache = _CACHE.setdefault(root, {})
    if name not in cache:
        cache[name] = _build(name, root)
    return cache[name]


_CACHE: dict[Path, dict[str, HubRepo]] = {}


def _build(name: str, root: Path) -> HubRepo:
    from training.testmodels import hub_layouts as hx
    from training.testmodels.tiny import build_tiny

    repo, layout = REPOS[name]
    folder = root / repo.replace("/", "--")
    work = root / "work"
    if name in ("rclip", "immich-clip"):
        tiny = build_tiny("vit-b-32-256", work)
        hx.set_pretrained_preprocess(tiny)
        ref = ("open_clip", tiny.model)
        if name == "rclip":
            hx.export_rclip(tiny.model, folder)
            spec = tiny.spec.with_(key="tiny-rclip", source=Source(layout="rclip", hf_repo=repo,
                                                                   subfolder=hx.RCLIP_SUBDIR))  # fmt: skip
            return _with_decoys(HubRepo(name, repo, folder, spec, ref), layout)
        hx.export_immich(tiny.model, hx.open_clip_cfg(tiny), _tok(root, "clip"), folder)
    elif name.startswith("immich-siglip2"):
        tiny = build_tiny("vit-b-16-siglip2-256", work)
        hx.set_pretrained_preprocess(tiny)
        ref = ("open_clip", tiny.model)
        hx.export_immich(tiny.model, hx.open_clip_cfg(tiny), _tok(root, "gemma"), folder,
                         external_data="uuid" if name.endswith("external") else None)  # fmt: skip
    elif name == "immich-xlmr":
        model, cfg = hx.tiny_open_clip_xlmr(_tok(root, "xlmr"), work)
        ref = ("open_clip", model)
        hx.export_immich(model, cfg, _tok(root, "xlmr"), folder, external_data="tensors")
    elif name == "tfjs-clip":
        model = hx.tiny_hf_clip()
        ref = ("transformers", model)
        hx.export_transformersjs(model, _tok(root, "clip"), folder)
    elif name == "tfjs-siglip":
        from transformers import AutoTokenizer

        model = hx.tiny_hf_siglip(len(AutoTokenizer.from_pretrained(str(_tok(root, "gemma")))))
        ref = ("transformers", model)
        hx.export_transformersjs(model, _tok(root, "gemma"), folder, external_data=True)
    else:
        raise ValueError(f"unknown hub repo {name!r}")
    from engine.models.layouts import LAYOUTS

    described = LAYOUTS[layout].describe(folder, key=f"tiny-{name}", known=None)
    spec = described.with_(name=f"tiny {name}", source=Source(layout=layout, hf_repo=repo))
    if spec.family == "siglip":
        spec = spec.with_(logit_scale=10.0, logit_bias=-5.0)
    return _with_decoys(HubRepo(name, repo, folder, spec, ref), layout)


def _with_decoys(repo: HubRepo, layout: str) -> HubRepo:
    for rel, data in DECOYS[layout].items():
        path = repo.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return repo


def _tok(root: Path, kind: str) -> Path:
    from training.testmodels import hub_layouts as hx

    folder = root / f"tokenizer-{kind}"
    if not (folder / "tokenizer.json").is_file():
        make = {"clip": hx.clip_tokenizer_dir, "gemma": hx.gemma_tokenizer_dir, "xlmr": hx.xlmr_tokenizer_dir}
        make[kind](folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.hubrepos NAME OUT``: make hub repo NAME under OUT (for the installer's
    smoke test, whose frozen app downloads it from a stand-in hub); prints JSON with the repo id,
    its folder and the registry entry to register it under."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in REPOS:
        print(f"usage: python -m tests.hubrepos {{{','.join(REPOS)}}} OUT", file=sys.stderr)
        return 2
    made = build(args[0], Path(args[1]))
    print(json.dumps({"repo": made.repo, "folder": str(made.folder), "entry": made.spec.to_json()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
