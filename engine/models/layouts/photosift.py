"""photosift's own model folder: what `training.export.openclip` writes (and the bundled demo models).

``image.onnx`` takes ``pixels`` float32 [N, 3, H, W] (NaFlex towers: patch sequences, see
engine.models.naflex) and ``text.onnx`` takes ``tokens`` int64 [N, L]; each gives un-normalised
embeddings ``embeddings`` [N, D], with a free batch axis. The runtime takes the first
input and output of each, as it always has, so older exports keep working.
"""

from __future__ import annotations

from pathlib import Path

from ..registry import MODEL_FILE, ModelSpec
from .base import Graph, Layout, Parts

FILES = ("image.onnx", "text.onnx", "tokenizer.json")


class PhotosiftLayout(Layout):
    name = "photosift"

    def parts(self, spec: ModelSpec) -> Parts:
        return Parts(
            image=Graph("image.onnx", input="", output=""),  # "": the graph's first
            text=Graph("text.onnx", input="", output="", ids_dtype="int64"),
            tokenizer="tokenizer.json",
        )

    @classmethod
    def recognise(cls, folder: Path) -> bool:
        return (Path(folder) / MODEL_FILE).is_file()
