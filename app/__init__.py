"""photosift's desktop front end (PySide6).

It never imports torch, onnxruntime or the engine's heavy internals: it talks to the
engine process through :mod:`engine.service.protocol` and :mod:`engine.service.client` only, so the
window comes up fast and an engine crash never takes it down.
"""

__version__ = "0.1.0"

from . import qtcompat as _qtcompat  # noqa: E402  (before any signal is emitted)

_qtcompat.install()
