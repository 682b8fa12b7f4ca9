"""rclip's model repo, ``yurijmikhalevich/rclip-models``.

Read from rclip's own code (yurijmikhalevich/rclip):

* ``rclip/model_download.py``: the files are ``<MODEL_SUBDIR>/visual.onnx`` and
  ``<MODEL_SUBDIR>/textual.onnx`` with ``MODEL_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"``,
  and ``tokenizer/bpe_simple_vocab_16e6.txt.gz`` at the repo's root (the repo also holds a
  CoreML ``visual.mlpackage`` for macOS, which ONNX Runtime cannot use: not fetched).
  The licence files at the root (``LICENSE``, ``OPENAI-CLIP-MIT.txt``, ``README.md``,
  ``THIRD_PARTY_NOTICES.md``, see ``compliance/model_repository/``) travel with the model.
* ``scripts/convert_model.py``: ``torch.onnx.export(..., input_names=["input"],
  output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
  opset_version=18, dynamo=False)`` of ``model.visual(x)`` (float32 [B, 3, 256, 256]) and of
  ``model.encode_text(x)`` (int64 [B, 77]); neither output is normalised (rclip normalises
  in Python).
* ``rclip/utils/preprocess.py`` and the tokenizer: open_clip's ViT-B-32-256 evaluation
  transform (shortest side to 256, bicubic, centre crop, OpenAI mean/std) and open_clip's
  SimpleTokenizer on the shipped merges, context 77: the registry entry says so as data.

The repo has no config describing the model, so a folder can only be imported as the
registry entry whose ``subfolder`` it holds.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ModelError
from ..registry import ModelSpec
from .base import Graph, Layout, Parts

TOKENIZER = "tokenizer/bpe_simple_vocab_16e6.txt.gz"
LICENCE_FILES = ("LICENSE", "OPENAI-CLIP-MIT.txt", "README.md", "THIRD_PARTY_NOTICES.md")


class RclipLayout(Layout):
    name = "rclip"

    def parts(self, spec: ModelSpec) -> Parts:
        sub = spec.source.subfolder
        if not sub:
            raise ModelError(f"model {spec.key!r}: an rclip-layout entry needs source.subfolder")
        return Parts(
            image=Graph(f"{sub}/visual.onnx", input="input", output="output"),
            text=Graph(f"{sub}/textual.onnx", input="input", output="output", ids_dtype="int64"),
            tokenizer=TOKENIZER,
        )

    def optional_files(self, spec: ModelSpec) -> list[str]:
        return list(LICENCE_FILES)

    @classmethod
    def recognise(cls, folder: Path) -> bool:
        folder = Path(folder)
        return (folder / TOKENIZER).is_file() and any(
            (d / "visual.onnx").is_file() and (d / "textual.onnx").is_file()
            for d in folder.iterdir() if d.is_dir()
        )  # fmt: skip

    def subfolders(self, folder: Path) -> list[str]:
        return sorted(d.name for d in Path(folder).iterdir()
                      if d.is_dir() and (d / "visual.onnx").is_file())  # fmt: skip

    def matches(self, spec: ModelSpec, folder: Path) -> bool:
        return spec.source.layout == self.name and spec.source.subfolder in self.subfolders(folder)

    def describe(self, folder: Path, *, key: str, known: ModelSpec | None) -> ModelSpec:
        subs = self.subfolders(folder)
        if known is None:
            raise ModelError(
                f"{folder}: an rclip model folder holding {', '.join(subs) or 'no model'}, which "
                f"photosift has no registry entry for (an rclip repo does not describe its "
                f"model's preprocessing, so photosift cannot run it without one)"
            )
        if known.source.subfolder not in subs:
            raise ModelError(f"{folder}: holds {', '.join(subs)}, not {known.source.subfolder} "
                             f"(model {known.key!r})")  # fmt: skip
        return known.with_(key=key, recommended=False)
