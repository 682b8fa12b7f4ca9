"""Model layouts: one adapter per way of laying a model's files out (see ``base``).

``photosift``        photosift's own export (``training.export.openclip``) and the bundled demo models
``rclip``            ``yurijmikhalevich/rclip-models``
``immich``           ``immich-app/<arch>__<pretrained>``
``transformers.js``  ``Xenova/...`` and ``onnx-community/...-ONNX``
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ModelError
from ..registry import ModelSpec
from .base import Graph, Layout, Parts, external_data_of
from .immich import ImmichLayout
from .photosift import PhotosiftLayout
from .rclip import RclipLayout
from .transformersjs import TransformersJsLayout

LAYOUTS: dict[str, Layout] = {
    cls.name: cls() for cls in (PhotosiftLayout, RclipLayout, ImmichLayout, TransformersJsLayout)
}

__all__ = ["LAYOUTS", "Graph", "Layout", "Parts", "external_data_of", "layout_of", "recognise"]


def layout_of(spec: ModelSpec) -> Layout:
    """The adapter a model's spec names (``source.layout``)."""
    try:
        return LAYOUTS[spec.source.layout]
    except KeyError:
        raise ModelError(f"model {spec.key!r}: unknown layout {spec.source.layout!r}") from None


def recognise(folder: Path) -> Layout | None:
    """The layout a folder is in, from the files it holds (import only; a registry entry
    names its layout). photosift's own folders, which carry a model.json, go first."""
    for layout in LAYOUTS.values():
        if layout.recognise(folder):
            return layout
    return None
